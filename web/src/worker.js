// The browser host's Web Worker. Modules run here, not on the page: a Go
// guest blocks its thread while it runs (and the WASI shim's poll_oneoff
// busy-waits), and the imports it calls must answer synchronously.
//
// Messages from the page are {id, op, args, deadline}; replies {id, ok,
// value} or {id, ok: false, error: {code, message}}. Unsolicited messages:
// {notify} tells the page that state changed or events were published;
// {restart} asks it for a new worker, when the IndexedDB connection is gone;
// {delivering}, {delivered} frame an event's delivery (see below); {pong}
// answers {op: 'ping'} at once, whatever runs.
//
// Operations run one at a time, in the order they arrive, each to its end
// (its commit, and its reply posted) before the next starts: a guest that
// never returns then holds only what it was running. Everything before it
// answered and is saved, nothing after it ran, and nothing of it reached
// IndexedDB; so when the page ends this worker (Host.restart), it can
// tell every caller exactly what happened. (A guest did run on top of a
// commit still in flight before: a call answered "restarted" could turn up
// saved.) Commits are one at a time anyway, so little is lost: only the
// overlap of one call's guest with the commit before it.
//
// An operation still waiting at its deadline (behind a slow one, for the
// database held by another tab, for IndexedDB to open) is answered then,
// DeadlineExceeded, and never runs.

import { Runtime } from './runtime.js';
import { Store, openDB } from './store.js';
import { Lease } from './lease.js';
import { Internal, Unavailable, DeadlineExceeded, RoamError, errorBody, httpStatus } from './wire.js';

let rt = null;
let ready = null; // init's promise
let channel = null;
let lease = null;

// The operations, one at a time.
let tail = Promise.resolve();
let queued = 0; // operations admitted and not finished
let whenIdle = []; // run when queued drops to 0

function admit(fn) {
  queued++;
  const p = tail.then(fn);
  tail = p.catch(() => {}).then(() => {
    if (--queued > 0) return;
    lease?.idle();
    const fns = whenIdle;
    whenIdle = [];
    for (const f of fns) f();
  });
  return p;
}

// pageEvent is what pages see of a published event.
const pageEvent = (r) => ({
  id: r.id, source: r.source, type: r.type, time: r.time, pubsub: r.pubsubname, topic: r.topic,
  datacontenttype: r.datacontenttype, data: r.data,
});

// start opens the database and the runtime: init's work.
async function start(opts) {
  channel = new BroadcastChannel('roam:' + opts.db);
  const store = new Store(await openDB(opts.db));
  rt = new Runtime(store, opts);
  await rt.init();
  // Memory no longer matches a database that was closed under us (site
  // data cleared) or is being deleted or upgraded: a new worker reopens and
  // reads it. The operation running finishes first (its commit, already
  // in flight, completes; one not begun fails: "not saved"), and those
  // queued answer Unavailable without running, so that every caller
  // knows exactly what became of its call.
  store.onClosed = (why) => {
    lease?.abort(new RoamError(Unavailable, `${why}; the roam worker is restarting: try again`));
    const restart = () => self.postMessage({ restart: why });
    if (queued === 0) restart();
    else whenIdle.push(restart);
  };
  const ask = opts.locks ? (what) => self.postMessage({ lease: what }) : null;
  lease = new Lease(channel, ask, () => rt.refresh(), () => queued > 0, opts.leaseHeld);
  store.onStale = () => lease.stale();
  if (store.closed) lease.abort(new RoamError(Unavailable, `${store.closed}; the roam worker is restarting: try again`));
  // Other tabs' workers commit to the same database: this one reads their
  // changes when it next takes its turn (Lease, Runtime.refresh).
  channel.onmessage = (e) => {
    if (e.data?.kind === 'want') lease.onWant();
  };
  rt.serial = (fn) => admit(async () => {
    if (rt.store.closed) return;
    try {
      await lease.enter();
    } catch {
      return; // the database is gone: this worker is ending
    }
    await fn();
  });
  rt.onDeliver = (what) => self.postMessage({ delivering: what });
  rt.onDelivered = (settled) => self.postMessage({ delivered: settled });
  rt.onCommit = (recs, published) => {
    if (recs.length === 0 && published.length === 0) return;
    const msg = { kind: 'commit', recs, events: published.map(pageEvent) };
    channel.postMessage(msg);
    self.postMessage({ notify: { kind: 'commit', keys: recs.map((r) => [r.app, r.store, r.key]), events: msg.events } });
  };
  return true;
}

// Every operation but init works on the database, so it waits for init
// and for this tab's turn at the database (lease).
const handlers = {
  // load sets up a module the page fetched and compiled (fetchModule),
  // and keeps, to load it again into a new worker without the network.
  // app names the app when the page loads it again.
  async load(args) {
    try {
      return await rt.load({ compiled: args.module, name: args.name });
    } catch (e) {
      // An app this page had loaded, that a new worker cannot load again:
      // its calls say why, instead of "no app here".
      if (args.app && !rt.modules.has(args.app)) rt.unloadable.set(args.app, e.message ?? String(e));
      throw e;
    }
  },

  async call({ app, method, body, trace }, m) {
    if (rt.store.closed) return { status: 503, body: errorBody(Unavailable, `${rt.store.closed}; the roam worker is restarting: try again`) };
    const r = rt.callHTTP(app, method, body, trace, m.deadline);
    try {
      await rt.commit();
    } catch (e) {
      // The call's writes and events are undone (Store.flush).
      const msg = e instanceof RoamError ? e.message : `state was not saved: ${e.message}`;
      return { status: 503, body: errorBody(Unavailable, msg) };
    }
    return r;
  },

  status: () => rt.status(),
  syncOut: () => rt.syncOut(),

  async pushed({ app, store, ops, items }) {
    const conflicts = rt.store.pushed(app, store, ops, items);
    await rt.commit();
    return conflicts;
  },
  // sending marks the changes a push is about to send (Store.sending).
  async sending({ app, store, ops }) {
    const fresh = rt.store.sending(app, store, ops);
    await rt.commit();
    return fresh;
  },
  async unsend({ app, store, keys }) {
    rt.store.unsend(app, store, keys);
    await rt.commit();
  },
  // conflicts records the keys a push's 409 named ({conflicts, pushed,
  // again}: see Store.conflict).
  // fresh: the keys the refused request marked sent afresh (not applied).
  async conflicts({ app, store, items, fresh }) {
    rt.store.unsend(app, store, fresh);
    const n = { conflicts: 0, pushed: 0, again: 0 };
    for (const c of items) n[{ conflict: 'conflicts', pushed: 'pushed', again: 'again' }[rt.store.conflict(app, store, c.key, c)]]++;
    await rt.commit();
    return n;
  },
  async pulled({ app, store, items }) {
    const n = rt.store.pulled(app, store, items);
    await rt.commit();
    return n;
  },
  async rejected({ app, store, ops }) {
    for (const o of ops) rt.store.rejected(app, store, o, o.status, o.message);
    await rt.commit();
  },
  async eventsDone({ sent, parked }) {
    rt.eventsDone(sent, parked);
    await rt.commit();
  },
  async resolve({ app, store, key, choice }) {
    rt.store.resolve(app, store, key, choice);
    await rt.commit();
  },
  // retry and discard take what is set aside (null: all of it, for retry).
  async retry({ what }) {
    const n = rt.retry(what);
    await rt.commit();
    rt.schedule(0); // events put back on the queues of modules here
    return n;
  },
  async discard({ what }) {
    const n = rt.discard(what);
    await rt.commit();
    return n;
  },

  // bench times n calls inside the worker, without the page round trip,
  // and returns the mean ms per call. (performance.now() is coarsened to
  // 0.1 ms in pages that are not cross-origin isolated, so single calls
  // cannot be timed one by one.)
  async bench({ app, method, body, n }) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = rt.callHTTP(app, method, body);
      if (r.status >= 300) throw new RoamError(Internal, `bench: ${app}.${method} answered ${r.status}`);
    }
    const ms = (performance.now() - t0) / n;
    await rt.commit();
    return ms;
  },
};

const post = (id, value) => self.postMessage({ id, ok: true, value });
const postError = (id, err) => {
  if (!(err instanceof RoamError)) console.error(err);
  self.postMessage({ id, ok: false, error: { code: err.code ?? Internal, message: err.message ?? String(err) } });
};

// late answers an operation still waiting at its deadline: it did not run.
function late(m) {
  const waited = `did not run: at its deadline it was still waiting (for the operations before it, or for the database: another tab's turn at it, or IndexedDB opening)`;
  if (m.op === 'call') {
    const { app, method } = m.args;
    const msg = `${app}.${method} ${waited}`;
    return { status: httpStatus(DeadlineExceeded), body: errorBody(DeadlineExceeded, msg) };
  }
  return new RoamError(DeadlineExceeded, `${m.op} ${waited}`);
}

self.onmessage = (e) => {
  const m = e.data;
  const { id, op } = m;
  if (op === 'ping') {
    self.postMessage({ pong: id });
    return;
  }
  if (m.lease === 'granted') {
    lease?.onGranted();
    return;
  }
  if (op === 'init') {
    if (ready) return postError(id, new RoamError(Internal, 'roam worker initialised twice'));
    ready = start(m.args);
    ready.then(() => post(id, true), (err) => postError(id, err));
    return;
  }
  if (!handlers[op]) return postError(id, new RoamError(Internal, `unknown operation ${op}`));
  let state = 'queued';
  let timer = null;
  if (m.deadline) {
    timer = setTimeout(() => {
      if (state !== 'queued') return;
      state = 'late';
      const r = late(m);
      if (r instanceof RoamError) postError(id, r);
      else post(id, r);
    }, Math.max(0, m.deadline - Date.now()));
  }
  admit(async () => {
    try {
      if (!ready) throw new RoamError(Unavailable, 'roam worker is not initialised');
      await ready;
      if (state === 'late') return;
      await lease.enter();
      if (state === 'late') return;
      state = 'running';
      clearTimeout(timer);
      post(id, await handlers[op](m.args ?? {}, m));
    } catch (err) {
      if (state === 'late') return;
      state = 'done';
      clearTimeout(timer);
      postError(id, err);
    }
  });
};
