// The browser host's Web Worker. Modules run here, not on the page: a Go
// guest blocks its thread while it runs (and the WASI shim's poll_oneoff
// busy-waits), and the imports it calls must answer synchronously.
//
// Messages from the page are {id, op, args}; replies {id, ok, value} or
// {id, ok: false, error: {code, message}}. Unsolicited {notify} messages
// tell the page that state changed or events were published; {restart}
// asks it for a new worker, when the IndexedDB connection is gone.

import { Runtime, fetchModule } from './runtime.js';
import { Store, openDB } from './store.js';
import { Internal, Unavailable, RoamError, errorBody } from './wire.js';

let rt = null;
let ready = null; // init's promise
let channel = null;

// pageEvent is what pages see of a published event.
const pageEvent = (r) => ({
  id: r.id, source: r.source, type: r.type, time: r.time, pubsub: r.pubsubname, topic: r.topic,
  datacontenttype: r.datacontenttype, data: r.data,
});

// start opens the database and the runtime: init's work.
async function start(opts) {
  const store = new Store(await openDB(opts.db));
  // Memory no longer matches a database that was closed under us (site
  // data cleared) or is being deleted: a new worker reopens and reads it.
  store.onClosed = (why) => self.postMessage({ restart: why });
  rt = new Runtime(store, opts);
  await rt.init();
  // Other tabs' workers share the IndexedDB database: take their
  // committed changes into memory so every tab reads the same state.
  channel = new BroadcastChannel('roam:' + opts.db);
  channel.onmessage = (e) => {
    if (e.data?.kind === 'commit') rt.store.applyRemote(e.data.recs);
  };
  rt.onCommit = (recs, published) => {
    if (recs.length === 0 && published.length === 0) return;
    const msg = { kind: 'commit', recs, events: published.map(pageEvent) };
    channel.postMessage(msg);
    self.postMessage({ notify: { kind: 'commit', keys: recs.map((r) => [r.app, r.store, r.key]), events: msg.events } });
  };
  return true;
}

const handlers = {
  init(opts) {
    ready = start(opts);
    return ready;
  },

  // load fetches and compiles the module while init may still be opening
  // IndexedDB: on a warm start that overlap is a good part of the time.
  async load({ url }) {
    const m = fetchModule(url);
    m.catch(() => {});
    await ready;
    return rt.load(await m);
  },

  async call({ app, method, body, trace }) {
    if (rt.store.closed) return { status: 503, body: errorBody(Unavailable, `${rt.store.closed}; the roam worker is restarting: try again`) };
    const r = rt.callHTTP(app, method, body, trace);
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
    rt.store.pushed(app, store, ops, items);
    await rt.commit();
  },
  async conflict({ app, store, key, server }) {
    rt.store.conflict(app, store, key, server);
    await rt.commit();
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

self.onmessage = async (e) => {
  const { id, op, args } = e.data;
  try {
    if (!ready && op !== 'init') throw new RoamError(Unavailable, 'roam worker is not initialised');
    if (op !== 'init' && op !== 'load') await ready;
    const value = await handlers[op](args ?? {});
    self.postMessage({ id, ok: true, value });
  } catch (err) {
    if (!(err instanceof RoamError)) console.error(err);
    self.postMessage({ id, ok: false, error: { code: err.code ?? Internal, message: err.message ?? String(err) } });
  }
};
