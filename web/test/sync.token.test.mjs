// The state sync API's bearer token (Host option stateToken), in node: a
// Host's sync (src/index.js) against a small server that checks the token
// as host/statesync.go's stateAuth does (401, FailedPrecondition, before it
// reads the body), with the worker's side (syncOut, sending, unsend,
// pushed, pulled, eventsDone) played by a fake that keeps the queue in
// memory. The browser test (web/webtest/statesync_token_test.go) runs the
// same against a real host in Chromium. Run by TestStoreUnit (web/webtest),
// or alone: node --test test/*.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Host } from '../src/index.js';
import { FailedPrecondition, utf8 } from '../src/wire.js';

const token = 's3cret-T0ken.~+/=';
const stateAuthMessage = 'unauthorized: the state sync API wants the header Authorization: Bearer <token>, with the token the host was given in ROAM_STATE_API_TOKEN';

// server answers the state sync API for one store, with the token (or, with
// gateway, a 401 that is not JSON, as a proxy in front would answer), and
// records every request: {path, auth}.
async function server({ gateway = false } = {}) {
  const seen = [];
  const items = new Map(); // key -> {value, etag}
  let seq = 0;
  const srv = createServer((req, res) => {
    seen.push({ path: req.url, auth: req.headers.authorization ?? null });
    if (req.headers.authorization !== `Bearer ${token}`) {
      if (gateway) {
        res.writeHead(401, { 'Content-Type': 'text/html', 'WWW-Authenticate': 'Basic' });
        res.end('<html>sign in</html>');
        return;
      }
      res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer realm="roam state API"' });
      res.end(JSON.stringify({ code: 'FailedPrecondition', message: stateAuthMessage }));
      return;
    }
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const b = JSON.parse(body);
      const item = (key) => (items.has(key) ? { key, found: true, ...items.get(key) } : { key, found: false });
      if (req.url.endsWith('/transact')) {
        for (const o of b.ops) items.set(o.key, { value: o.value, etag: String(++seq) });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ items: b.ops.map((o) => item(o.key)) }));
      } else if (req.url.endsWith('/bulk')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ items: b.keys.map(item) }));
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, seen, items, close: () => srv.close() };
}

// fakeWorker keeps one store's changes (key -> {value, seq, dirty, sent})
// and the outbox, and answers the page's sync operations as the worker's
// Store does, recording them in ops.
function fakeWorker() {
  const w = { items: new Map(), events: [], ops: [] };
  w.put = (key, value) => {
    const old = w.items.get(key);
    w.items.set(key, { value: utf8(value), seq: (old?.seq ?? 0) + 1, dirty: true, sent: old?.sent ?? null, base: old?.base ?? '' });
  };
  w.rpc = async (op, args) => {
    w.ops.push({ op, args });
    switch (op) {
      case 'syncOut': {
        const dirty = [...w.items].filter(([, r]) => r.dirty);
        return {
          stores: [{
            app: 'a', store: 's', keys: [...w.items.keys()],
            ops: dirty.map(([key, r]) => ({ op: 'set', key, value: r.value, seq: r.seq, tomb: false, etag: r.base, if_absent: r.base === '' })),
          }],
          events: w.events.map((rec, pos) => ({ pos, app: 'a', rec })),
        };
      }
      case 'sending': {
        const fresh = [];
        for (const o of args.ops) {
          const r = w.items.get(o.key);
          if (r && !r.sent) {
            r.sent = { seq: o.seq };
            fresh.push(o.key);
          }
        }
        return fresh;
      }
      case 'unsend':
        for (const k of args.keys) w.items.get(k).sent = null;
        return undefined;
      case 'pushed':
        args.ops.forEach((o, i) => {
          const r = w.items.get(o.key);
          r.base = args.items[i].etag;
          r.sent = null;
          if (r.seq === o.seq) r.dirty = false;
        });
        return 0;
      case 'eventsDone':
        w.events = w.events.filter((_, pos) => !args.sent.includes(pos) && !args.parked.includes(pos));
        return undefined;
      case 'pulled':
        return args.items.length;
      default:
        throw new Error(`fake worker: no ${op}`);
    }
  };
  return w;
}

// host is a Host without its Web Worker (node has none): the page's side
// of sync, on the fake worker.
function host(remote, worker, options = {}) {
  const h = Object.create(Host.prototype);
  Object.assign(h, {
    options: { db: 'token', remote, ...options }, remote, listeners: new Map(), syncing: null, online: true, tokenRefused: false,
  });
  h.rpc = worker.rpc;
  return h;
}

const event = () => ({ type: 'com.example.x', datacontenttype: 'application/json', data: utf8('{"n":1}'), metadata: {}, pubsubname: 'ps', topic: 'out' });

async function syncError(h, options) {
  try {
    await h.sync(options);
  } catch (e) {
    return e;
  }
  assert.fail('sync succeeded');
}

test('a string stateToken goes with every push, publish and pull', async () => {
  const s = await server();
  try {
    const w = fakeWorker();
    w.put('k', '"v"');
    w.events.push(event());
    const h = host(s.url, w, { stateToken: token });
    const r = await h.sync();
    assert.equal(r.pushed, 1);
    assert.equal(r.events, 1);
    assert.equal(r.pulled, 1);
    assert.deepEqual(s.seen.map((x) => x.path), ['/v1/apps/a/state/s/transact', '/v1/apps/a/publish/ps/out', '/v1/apps/a/state/s/bulk']);
    for (const x of s.seen) assert.equal(x.auth, `Bearer ${token}`, x.path);
    assert.equal(w.items.get('k').dirty, false);
    assert.equal(w.events.length, 0);
  } finally {
    s.close();
  }
});

test('a 401 fails the sync with FailedPrecondition, keeps the changes and events queued, and the next sync with the token sends them', async () => {
  const s = await server();
  try {
    const w = fakeWorker();
    w.put('k', '"v"');
    w.events.push(event());
    let current; // what the page's token function gives
    const calls = [];
    const h = host(s.url, w);
    const syncs = [];
    h.on('sync', (r) => syncs.push(r));

    // No token at all.
    let e = await syncError(h);
    assert.equal(e.code, FailedPrecondition);
    assert.equal(e.codeName, 'FailedPrecondition');
    assert.equal(e.status, 401);
    assert.equal(e.unauthorized, true);
    assert.equal(e.message, `sync: ${s.url}/v1/apps/a/state/s/transact answered 401 Unauthorized: the server wants a token and the page sent none (set the Host's stateToken option): ${stateAuthMessage}`);
    assert.equal(syncs.at(-1).error, e, "the 'sync' event has the error");
    assert.equal(s.seen.at(-1).auth, null);
    // Not pushed, not left marked sent (the server applied nothing), and
    // the event not forwarded.
    assert.ok(!w.ops.some((o) => o.op === 'pushed'), 'nothing recorded as pushed');
    assert.deepEqual(w.ops.filter((o) => o.op === 'unsend').map((o) => o.args.keys), [['k']]);
    assert.deepEqual({ dirty: w.items.get('k').dirty, sent: w.items.get('k').sent }, { dirty: true, sent: null });
    assert.equal(w.events.length, 1);

    // A function that gives a wrong token, then (told it was refused) the
    // right one, as a page fetching a short-lived token would.
    h.options.stateToken = async (info) => {
      calls.push(info);
      await new Promise((r) => setTimeout(r, 1));
      return current;
    };
    current = 'wrong';
    e = await syncError(h);
    assert.equal(e.code, FailedPrecondition);
    assert.equal(e.status, 401);
    assert.match(e.message, /answered 401 Unauthorized: the server refused the page's token \(the Host's stateToken option\): unauthorized: /);
    assert.ok(!e.message.includes('wrong'), 'the message does not quote the token');
    assert.equal(s.seen.at(-1).auth, 'Bearer wrong');
    assert.deepEqual(calls, [{ refused: false }]);
    assert.deepEqual({ dirty: w.items.get('k').dirty, sent: w.items.get('k').sent }, { dirty: true, sent: null });
    assert.equal(w.events.length, 1);
    assert.equal(s.items.size, 0, 'nothing reached the store');

    current = token;
    const r = await h.sync();
    assert.deepEqual([r.pushed, r.events, r.pulled, r.conflicts, r.rejected, r.parked], [1, 1, 1, 0, 0, 0]);
    assert.deepEqual(calls.slice(1), [{ refused: true }, { refused: false }, { refused: false }], 'told once that its last token was refused');
    assert.equal(w.items.get('k').dirty, false);
    assert.equal(w.events.length, 0);
    assert.deepEqual([...s.items.keys()], ['k']);
  } finally {
    s.close();
  }
});

test('a pull without the token ends the sync: it is not a store the server refuses to read', async () => {
  const s = await server();
  try {
    const w = fakeWorker();
    const h = host(s.url, w, { stateToken: () => 'nope' });
    const pull = [{ app: 'a', store: 's', keys: ['x'] }];
    let e = await syncError(h, { pull });
    assert.equal(e.status, 401);
    assert.equal(e.code, FailedPrecondition);
    assert.ok(e.message.startsWith(`sync: ${s.url}/v1/apps/a/state/s/bulk answered 401 Unauthorized: the server refused the page's token`), e.message);
    e = await h.pull('a', 's', ['x']).then(() => null, (x) => x);
    assert.equal(e?.status, 401);
    assert.ok(!w.ops.some((o) => o.op === 'pulled'));
    h.options.stateToken = () => Promise.resolve(token);
    assert.equal((await h.sync({ pull })).pulled, 1);
    assert.deepEqual(await h.pull('a', 's', ['x']), [{ key: 'x', found: false, etag: '', value: new Uint8Array(0) }]);
  } finally {
    s.close();
  }
});

test("a gateway's 401 that is not JSON is FailedPrecondition too", async () => {
  const s = await server({ gateway: true });
  try {
    const w = fakeWorker();
    w.put('k', '1');
    const e = await syncError(host(s.url, w));
    assert.equal(e.code, FailedPrecondition);
    assert.equal(e.status, 401);
    assert.match(e.message, /answered 401 Unauthorized: the server wants a token and the page sent none .*: HTTP 401: <html>sign in<\/html>$/);
    assert.equal(w.items.get('k').sent, null);
  } finally {
    s.close();
  }
});

test('a token that cannot be sent, or a function that fails or does not answer, fails the sync unsent', async () => {
  const s = await server();
  try {
    const cases = [
      [42, /not sent: stateToken gave a number, not a string$/],
      [() => ({ token }), /not sent: stateToken gave a object, not a string$/],
      [`${token}\n`, /not sent: the stateToken has a character an Authorization header cannot carry as it is/],
      [` ${token}`, /cannot carry as it is/],
      [`t\u00e9${token}`, /cannot carry as it is/],
      [() => { throw new Error('no session'); }, /not sent: the stateToken function failed: no session$/],
      [() => Promise.reject(new Error('fetch failed')), /not sent: the stateToken function failed: fetch failed$/],
      [() => new Promise(() => {}), /not sent: the stateToken function did not answer in 50 ms \(syncTimeoutMs\)$/],
    ];
    for (const [stateToken, want] of cases) {
      const w = fakeWorker();
      w.put('k', '1');
      const e = await syncError(host(s.url, w, { stateToken, syncTimeoutMs: 50 }));
      assert.equal(e.code, FailedPrecondition, String(stateToken));
      assert.equal(e.notSent, true);
      assert.match(e.message, want);
      assert.ok(!e.message.includes(token), 'the message does not quote the token');
      assert.equal(w.items.get('k').sent, null, 'the sent mark is taken back');
      assert.equal(w.items.get('k').dirty, true);
    }
    assert.equal(s.seen.length, 0, 'nothing was sent');
    // '' or null from the function: no token, and the server's 401.
    for (const none of [() => '', async () => null, '']) {
      const w = fakeWorker();
      w.put('k', '1');
      const e = await syncError(host(s.url, w, { stateToken: none }));
      assert.equal(e.status, 401);
      assert.match(e.message, /the page sent none/);
    }
  } finally {
    s.close();
  }
});
