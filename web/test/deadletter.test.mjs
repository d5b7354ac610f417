// Dead-letter cycles in the browser host's delivery pump (src/runtime.js),
// in node, with a module built byte by byte (wasm.mjs) whose manifest
// subscribes to two topics that name each other as dead-letter topics, and
// whose handler always fails, and a small in-memory IndexedDB (fakeIDB) that
// stores values as IndexedDB does, by structured clone, so that a "reload"
// (a new Store and Runtime on the same database) reads what was committed.
// The Go backends' counterpart is backendtest's DeadLetterCycleParked. Run
// by TestStoreUnit (web/webtest), or alone: node --test test/*.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { module, sleb, I32, I64 } from './wasm.mjs';
import { Runtime } from '../src/runtime.js';
import { Store } from '../src/store.js';
import { Writer, OK, Internal, utf8, forwardBody } from '../src/wire.js';

const MPTR = 1024, EPTR = 4096;
const i64c = (v) => [0x42, ...sleb(BigInt.asIntN(64, BigInt(v)))];
const frame = (ptr, n) => (BigInt(ptr) << 32n) | BigInt(n);
const maxAttempts = 3;

// cycler is app "cycler", subscribed to ps/cyc-a (dead-letter topic cyc-b)
// and ps/cyc-b (dead-letter topic cyc-a); every event fails with Internal.
function cycler() {
  const manifest = new Writer().uvarint(OK).string('cycler').uvarint(0).uvarint(2)
    .string('ps').string('cyc-a').string('cyc-b')
    .string('ps').string('cyc-b').string('cyc-a').finish();
  const fail = [Internal, ...utf8('poison fails everywhere')];
  return new WebAssembly.Module(module({
    // 0: (i32 i32) -> i64, 1: () -> i32, 2: (i32) -> i32, 3: () -> i64
    types: [[[I32, I32], [I64]], [[], [I32]], [[I32], [I32]], [[], [I64]]],
    imports: [],
    funcs: [
      { type: 1, code: [0x41, ...sleb(0x10000)] }, // roam_abi_version: 1.0
      { type: 2, code: [0x41, ...sleb(8192)] }, // roam_alloc
      { type: 3, code: i64c(frame(MPTR, manifest.length)) }, // roam_init
      { type: 0, code: i64c(frame(EPTR, fail.length)) }, // roam_handle
    ],
    memPages: 1,
    exports: [['memory', 2, 0], ['roam_abi_version', 0, 0], ['roam_alloc', 0, 1], ['roam_init', 0, 2], ['roam_handle', 0, 3]],
    data: [[MPTR, [...manifest]], [EPTR, fail]],
  }));
}

// cmp orders IndexedDB keys: numbers, then strings, then arrays.
function cmp(a, b) {
  const rank = (k) => (typeof k === 'number' ? 0 : typeof k === 'string' ? 1 : 2);
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (!Array.isArray(a)) return a < b ? -1 : a > b ? 1 : 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = cmp(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}
globalThis.IDBKeyRange ??= { bound: (lower, upper) => ({ lower, upper }) };

// fakeIDB is the part of IndexedDB the Store and Runtime use: object stores
// of structured-cloned values, read-only transactions, and read-write ones
// whose writes land when they complete.
function fakeIDB() {
  const stores = new Map(); // name -> Map JSON key -> [key, value]
  const os = (name) => stores.get(name) ?? stores.set(name, new Map()).get(name);
  const answer = (f) => {
    const r = {};
    queueMicrotask(() => {
      r.result = f();
      r.onsuccess?.();
    });
    return r;
  };
  const within = (range) => (k) => !range || (cmp(range.lower, k) <= 0 && cmp(k, range.upper) <= 0);
  const sorted = (name, range) => [...os(name).values()].filter(([k]) => within(range)(k)).sort((x, y) => cmp(x[0], y[0]));
  return {
    name: 'fake', stores,
    close() {},
    transaction() {
      const writes = [];
      let aborted = false;
      const tx = {
        error: null,
        objectStore: (name) => ({
          get: (k) => answer(() => structuredClone(os(name).get(JSON.stringify(k))?.[1])),
          getAll: (range) => answer(() => sorted(name, range).map(([, v]) => structuredClone(v))),
          getAllKeys: (range) => answer(() => sorted(name, range).map(([k]) => structuredClone(k))),
          put: (v, k) => writes.push([name, k, structuredClone(v)]),
          delete: (k) => writes.push([name, k, undefined]),
        }),
        abort() { aborted = true; },
      };
      setTimeout(() => {
        if (aborted) return tx.onabort?.();
        for (const [name, k, v] of writes) {
          if (v === undefined) os(name).delete(JSON.stringify(k));
          else os(name).set(JSON.stringify(k), [k, v]);
        }
        tx.oncomplete?.();
      }, 0);
      return tx;
    },
  };
}

// open starts a Runtime on db with the cycler loaded, counting deliveries
// by topic; its pump runs until stop() (or a parked event, when waited for).
async function open(db) {
  const rt = new Runtime(new Store(db), { retry: { maxAttempts, initialBackoffMs: 1, maxBackoffMs: 2 } });
  await rt.init();
  const counts = { 'cyc-a': 0, 'cyc-b': 0 };
  rt.onDeliver = (d) => { counts[d.topic]++; };
  let running = true;
  rt.serial = (fn) => (running ? fn() : undefined);
  await rt.load({ compiled: cycler(), name: 'cycler.wasm' });
  const stop = async () => {
    running = false;
    clearTimeout(rt.pumpTimer);
    await rt.store.tail; // the last round's commit
  };
  return { rt, counts, stop };
}

const parked = (rt) => [...rt.outbox].filter(([, o]) => o.parked);
const queued = (rt) => rt.allSubs.reduce((n, s) => n + s.queue.length, 0);

// until waits for cond, or for a cycle's deliveries to pass any bound.
async function until(cond, counts) {
  for (let i = 0; i < 2000 && !cond(); i++) {
    if (counts['cyc-a'] + counts['cyc-b'] > 6 * maxAttempts) break; // it went round
    await new Promise((r) => setTimeout(r, 1));
  }
}

async function publishPoison(rt) {
  rt.publish('cycler', { pubsub: 'ps', topic: 'cyc-a', data: utf8('{"k":"poison"}') });
  await rt.commit();
}

// Two subscriptions whose dead-letter topics name each other's topics, and
// a handler that always fails: the event is delivered MaxAttempts times on
// each topic, then parked (status().parked), where the page can retry or
// discard it. Before, it went from one topic to the other for ever.
test('a dead-letter cycle parks the event after MaxAttempts on each topic', async () => {
  const { rt, counts, stop } = await open(fakeIDB());
  await publishPoison(rt);
  await until(() => parked(rt).length > 0 && queued(rt) === 0, counts);
  await stop();
  assert.deepEqual(counts, { 'cyc-a': maxAttempts, 'cyc-b': maxAttempts }, 'deliveries by topic');
  assert.equal(queued(rt), 0, 'events still queued');
  const [[pos, o]] = parked(rt);
  assert.equal(o.rec.topic, 'cyc-b');
  assert.deepEqual(o.rec.deadletters, ['cyc-a']);
  assert.match(o.reason, /^failed on cyc-a -> cyc-b after 3 attempts, and its dead-letter topic cyc-a is one of those: poison fails everywhere$/);
  const st = rt.status();
  assert.equal(st.events, 0, 'events for the server');
  assert.deepEqual(st.parked.map((p) => [p.pos, p.app, p.pubsub, p.topic, p.reason]), [[pos, 'cycler', 'ps', 'cyc-b', o.reason]]);
  // What forwarding would send of it (were nothing here subscribed): the
  // backend's bookkeeping stays behind; the server's publish takes these.
  assert.deepEqual(Object.keys(forwardBody(o.rec)).sort(), ['data_base64', 'datacontenttype', 'metadata', 'type']);
});

// The dead-letter trail is saved with the queued event: an event
// dead-lettered from cyc-a, then the page reloaded, is parked after its
// attempts on cyc-b, not sent back to cyc-a. Host.retry of the parked event
// delivers it again on cyc-b (MaxAttempts), and parks it again; discard
// drops it.
test('the dead-letter trail survives a reload, and a retried parked event is parked again', async () => {
  const db = fakeIDB();
  let { rt, counts, stop } = await open(db);
  await publishPoison(rt);
  await until(() => counts['cyc-b'] > 0, counts);
  await stop();
  assert.equal(counts['cyc-a'], maxAttempts, 'deliveries on cyc-a');
  const saved = [...db.stores.get('queue').values()].map(([k, v]) => [k[2], v.deadletters]);
  assert.deepEqual(saved, [['cyc-b', ['cyc-a']]], 'the queue in IndexedDB');

  ({ rt, counts, stop } = await open(db)); // a reload
  await until(() => parked(rt).length > 0 && queued(rt) === 0, counts);
  await stop();
  assert.deepEqual(counts, { 'cyc-a': 0, 'cyc-b': maxAttempts }, 'deliveries after the reload');
  let [[pos, o]] = parked(rt);
  assert.deepEqual([o.rec.topic, o.rec.deadletters], ['cyc-b', ['cyc-a']]);

  ({ rt, counts, stop } = await open(db)); // parked, it stays so
  assert.equal(parked(rt).length, 1);
  assert.deepEqual(rt.retry({ events: [pos] }), { keys: 0, events: 1 });
  await rt.commit();
  rt.schedule(0);
  await until(() => parked(rt).length > 0 && queued(rt) === 0, counts);
  await stop();
  assert.deepEqual(counts, { 'cyc-a': 0, 'cyc-b': maxAttempts }, 'deliveries after retry');
  [[pos, o]] = parked(rt);
  assert.deepEqual([o.rec.topic, o.rec.deadletters], ['cyc-b', ['cyc-a']]);
  assert.deepEqual(rt.discard({ events: [pos] }), { keys: 0, events: 1 });
  await rt.commit();
  assert.equal(rt.outbox.size, 0);
  assert.equal(db.stores.get('outbox').size, 0, 'the outbox in IndexedDB');
});
