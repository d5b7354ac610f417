// Roam's browser host: the page-side API.
//
//	import * as roam from '@roam/web';
//	const orders = await roam.load('/web/modules/orders.wasm', { remote: 'http://127.0.0.1:8080' });
//	const reply = await orders.call('Create', { customer: 'ada', sku: 'apple', quantity: 1 });
//
// A Host owns one Web Worker in which every module it loads runs, so that
// apps in the same page invoke each other in-process, as on the native host.
// State lives in IndexedDB (database options.db). With options.remote, the
// host syncs that state with the server and forwards events no module here
// subscribes to; see web/README.md for the protocol.

import {
  RoamError, Unavailable, FailedPrecondition, DeadlineExceeded, Internal, utf8, fromUTF8, base64, fromBase64, statusCode, errorBody,
  httpStatus, forwardBody, forwardBytes, fetchModule, sendTrace, redirectError,
} from './wire.js';

export { RoamError } from './wire.js';

const empty = new Uint8Array(0);

// grace is how long past its deadline a guest may hold the worker before
// the page ends the worker, and how long a worker has to answer a ping.
const grace = 1000;

export class Host {
  // options: db (IndexedDB name, default 'roam'), remote (the server's base
  // URL), config ({key: value}), secrets ({store: {key: value}}), retry
  // ({maxAttempts, initialBackoffMs, maxBackoffMs}), timeoutMs,
  // maxBodyBytes, remoteMaxBodyBytes (the server's --max-body-bytes,
  // default 4 MiB), syncTimeoutMs (the most one sync request may take,
  // reply included, default 60 s), loadTimeoutMs (the same for fetching a
  // module, default 60 s), deadLetterTopic, workerURL, traceHeaders (to which
  // servers a call's trace context is sent: 'same-origin', the default,
  // 'always' or 'never'; see "Trace context" in web/README.md), stateToken
  // (the bearer token of the server's state sync API, ROAM_STATE_API_TOKEN
  // there: a string, or a function returning one or a promise of one,
  // called before each sync request; see stateToken below). stateToken
  // stays in the page: the worker, which runs the guests, never sees it.
  constructor(options = {}) {
    this.options = { db: 'roam', ...options };
    this.remote = (options.remote ?? '').replace(/\/+$/, '');
    this.listeners = new Map();
    this.next = 0;
    this.waiting = new Map(); // id -> operation, in the order they were sent
    this.pings = new Map(); // id -> resolve
    this.syncing = null;
    this.tokenRefused = false; // the server refused (401) the last stateToken sent
    this.online = typeof navigator === 'undefined' ? true : navigator.onLine;
    // The modules loaded, compiled, to load again into a new worker
    // without the network: [{url, name, module, app}].
    this.modules = [];
    this.loaded = new Map(); // url -> Promise<App>
    this.unloadable = {}; // app -> why a new worker cannot load it again
    this.looped = new Set(); // queue keys of events whose handler never returned
    this.delivering = null; // the event the worker says it is delivering
    this.workerSource = null; // a blob: URL of the worker's script, for restarts offline
    // The database's Web Lock, held by the page and lent to its worker
    // (see Lease in lease.js): held, requested, and how to let go.
    this.lock = { held: false, requested: false, release: null };
    this.start();
  }

  timeoutMs() {
    return this.options.timeoutMs ?? 30000;
  }

  // start makes a new worker, opens the database in it, and loads the
  // modules again (restart), before any operation sent after.
  start() {
    this.channel?.close();
    const fromBlob = this.workerSource !== null;
    const url = this.workerSource ?? this.workerURL();
    const worker = new Worker(url, { type: 'module', name: 'roam' });
    this.worker = worker;
    this.broken = null;
    this.delivering = null;
    worker.onmessage = (e) => {
      if (worker === this.worker) this.onMessage(e.data);
    };
    let started = false;
    worker.onerror = (e) => {
      if (worker !== this.worker) return;
      const err = new RoamError(Internal, `roam worker failed: ${e.message ?? 'error'}`);
      if (started) {
        // An error the worker did not catch, after it started: it goes on,
        // and answers what it was sent.
        console.error(err.message);
        this.emit('error', err);
        return;
      }
      // It did not start (its script did not load). One from the kept
      // script (a Content Security Policy without blob: workers) starts
      // from its URL next; the next operation starts one.
      if (fromBlob) this.workerSource = null;
      this.broken = err;
      if (this.lock.held) this.onLease('release');
      this.fail(err);
      this.emit('error', err);
    };
    this.channel = new BroadcastChannel('roam:' + this.options.db);
    this.channel.onmessage = (e) => {
      if (e.data?.kind === 'commit') this.emit('change', { events: e.data.events, remote: true });
    };
    const { db, remote, config, secrets, retry, timeoutMs, maxBodyBytes, remoteMaxBodyBytes, deadLetterTopic, traceHeaders } = this.options;
    const init = this.rpc('init', {
      db, remote, config, secrets, retry, timeoutMs, maxBodyBytes, remoteMaxBodyBytes, deadLetterTopic, traceHeaders,
      looped: [...this.looped], unloadable: { ...this.unloadable },
      locks: !!globalThis.navigator?.locks, leaseHeld: this.lock.held,
    });
    init.then(() => {
      started = true;
      this.keepSource();
    }, (e) => {
      if (worker !== this.worker) return;
      this.broken = e;
      // A page that cannot open the database (a newer page upgraded it)
      // must not keep the other tabs from it.
      if (this.lock.held) this.onLease('release');
      this.emit('error', e);
    });
    // Not answered late by the worker: waiting to open the database
    // (behind another tab deleting it, say) must not cost the page an app.
    const loads = this.modules.map((m) => this.rpc('load', { url: m.url, name: m.name, module: m.module, app: m.app }, { label: `the setup of ${m.name}`, reload: m, patient: true })
      .catch((e) => {
        console.error(`roam: loading ${m.name} into the new worker failed: ${e.message}`);
        this.emit('error', e);
      }));
    // ready: the worker opened the database (or failed to: it rejects) and
    // loaded again the modules it is to (each one's failure is an 'error').
    this.ready = init.then(() => Promise.all(loads)).then(() => true);
    this.ready.catch(() => {});
  }

  workerURL() {
    return this.options.workerURL ?? new URL('./roam-worker.js', import.meta.url);
  }

  // keepSource keeps the worker's script, once a worker started from it,
  // so that a new worker starts offline too (Host.restart).
  keepSource() {
    if (this.sourceTried || typeof fetch === 'undefined' || typeof URL.createObjectURL !== 'function') return;
    this.sourceTried = true;
    // Not a redirect (to a sign-in page), which is not ok with 'manual':
    // a new worker then starts from the URL.
    fetch(new URL(this.workerURL(), globalThis.location?.href), { redirect: 'manual' })
      .then((r) => (r.ok ? r.blob() : null))
      .then((b) => {
        if (b) this.workerSource = URL.createObjectURL(new Blob([b], { type: 'text/javascript' }));
      })
      .catch(() => {});
  }

  onMessage(m) {
    if (m.pong !== undefined) {
      this.pings.get(m.pong)?.(true);
      return;
    }
    if (m.lease) {
      this.onLease(m.lease);
      return;
    }
    if (m.restart) {
      // The worker's IndexedDB connection is gone (site data cleared,
      // another tab deleting or upgrading the database). It has answered
      // every operation it had; a new worker reopens the database.
      this.restart(m.restart);
      return;
    }
    if (m.delivering) {
      this.delivering = { ...m.delivering, event: true };
      this.watch();
      return;
    }
    if (m.delivered) {
      this.delivering = null;
      for (const k of m.delivered) this.looped.delete(k);
      this.watch();
      return;
    }
    if (m.notify) {
      this.emit('change', m.notify);
      for (const e of m.notify.events ?? []) this.emit('event', e);
      return;
    }
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(new RoamError(m.error.code, m.error.message));
    this.watch();
  }

  // rpc sends an operation to the worker. The worker runs them one at a
  // time, in this order; one still waiting at its deadline is answered
  // DeadlineExceeded there without running. A worker that failed to start
  // is replaced first.
  //
  // deadline is for the watchdog (below); patient operations are not
  // answered late by the worker.
  rpc(op, args, { deadline = op === 'init' ? 0 : Date.now() + this.timeoutMs(), label = op, reload = null, patient = false } = {}) {
    if (this.broken && op !== 'init') this.restart(`the last one failed: ${this.broken.message}`);
    return new Promise((resolve, reject) => {
      const id = ++this.next;
      this.waiting.set(id, { resolve, reject, op, label, deadline, reload });
      this.worker.postMessage({ id, op, args, deadline: patient ? 0 : deadline }, []);
      this.watch();
    });
  }

  // onLease takes or lets go of the database's Web Lock for the worker
  // (Lease). It outlives the worker: a new one is told it holds it.
  onLease(what) {
    const l = this.lock;
    if (what === 'release') {
      if (!l.held) return;
      l.held = false;
      const r = l.release;
      l.release = null;
      r();
      return;
    }
    if (l.held) {
      this.worker.postMessage({ lease: 'granted' });
      return;
    }
    if (l.requested) return;
    l.requested = true;
    navigator.locks.request(`roam:${this.options.db}`, { mode: 'exclusive' }, () => new Promise((release) => {
      l.requested = false;
      l.held = true;
      l.release = release;
      this.worker.postMessage({ lease: 'granted' });
    })).catch((e) => console.error('roam: the database lock failed', e));
  }

  // ---- the watchdog ----
  //
  // A guest that never returns holds the worker's only thread, and nothing
  // can interrupt wasm there: the page ends the worker. What runs in the
  // worker is the first operation not answered yet (they run one at a time,
  // in order), or the event it said it is delivering. When that is more
  // than grace ms past its deadline, the page pings the worker: a worker
  // that answers is waiting (for IndexedDB, for another tab), not held; one
  // that does not is restarted, and the page knows exactly what became of
  // every operation (restart).

  head() {
    if (this.delivering) return this.delivering;
    for (const w of this.waiting.values()) if (w.deadline) return w;
    return null;
  }

  watch() {
    const head = this.head();
    if (head === this.watched) return;
    clearTimeout(this.dog);
    this.watched = head;
    if (head) this.dog = setTimeout(() => this.bark(head), Math.max(0, head.deadline + grace - Date.now()));
  }

  async bark(head) {
    const alive = await this.ping();
    if (this.head() !== head) {
      this.watched = null;
      this.watch();
      return;
    }
    if (alive) {
      this.dog = setTimeout(() => this.bark(head), grace);
      return;
    }
    this.restart(this.overdue(head), head);
  }

  ping() {
    return new Promise((resolve) => {
      const id = ++this.next;
      const done = (alive) => {
        clearTimeout(timer);
        this.pings.delete(id);
        resolve(alive);
      };
      const timer = setTimeout(done, grace, false);
      this.pings.set(id, done);
      this.worker.postMessage({ id, op: 'ping' });
    });
  }

  // overdue says what held the worker.
  overdue(head) {
    const past = Date.now() - head.deadline;
    if (head.event) return `the handler of event ${head.id} (${head.pubsub}/${head.topic}) in ${head.app} did not return, ${past} ms past its deadline`;
    return `${head.label} did not return, ${past} ms past its deadline`;
  }

  // restart replaces the worker, loads the same modules into the new one
  // (compiled: no network needed), and tells every operation the old one
  // had what became of it. The one that held the worker (head) fails with
  // DeadlineExceeded: it was stopped, and nothing of it was saved (its
  // writes were not committed: commits happen when a call returns). The
  // others did not run: Unavailable, to send again. An event whose
  // handler held the worker is dead-lettered by the new worker, not
  // delivered again. Everything answered before is saved.
  restart(why, head = null) {
    this.worker.terminate();
    clearTimeout(this.dog);
    this.watched = null;
    for (const done of [...this.pings.values()]) done(false);
    const waiting = this.waiting;
    this.waiting = new Map();
    if (head?.event) this.looped.add(head.key);
    if (head?.reload) {
      // A module whose setup held the worker: not loaded again.
      this.modules = this.modules.filter((m) => m !== head.reload);
      this.unloadable[head.reload.app] = why;
    }
    for (const w of waiting.values()) {
      if (w === head) w.reject(new RoamError(DeadlineExceeded, `${why}: the roam worker running it was restarted, and nothing of it was saved`));
      else w.reject(new RoamError(Unavailable, `the roam worker was restarted (${why}); ${w.label} did not run: try again`));
    }
    this.start();
    this.emit('restart', why);
  }

  // fail rejects every operation sent to a worker that is gone.
  fail(err) {
    const waiting = this.waiting;
    this.waiting = new Map();
    for (const w of waiting.values()) w.reject(err);
    this.watch();
  }

  // on registers fn for 'change' (state committed here or in another tab),
  // 'event' (an event published here), 'sync' (a sync finished, with its
  // counts), 'online' (the server became reachable or not), 'restart' (the
  // worker was replaced, with why) or 'error'. It returns a function that
  // removes it.
  on(kind, fn) {
    if (!this.listeners.has(kind)) this.listeners.set(kind, new Set());
    this.listeners.get(kind).add(fn);
    return () => this.listeners.get(kind).delete(fn);
  }

  emit(kind, v) {
    for (const fn of this.listeners.get(kind) ?? []) {
      try {
        fn(v);
      } catch (e) {
        console.error(e);
      }
    }
  }

  // load fetches and compiles a module, sets its app up in the worker and
  // returns it. Loading the same URL again returns the same App. The page
  // keeps the compiled module: a new worker (restart) loads the same
  // version again without the network. A second module of an app loaded
  // here (another version, another URL) is refused (FailedPrecondition):
  // a page serves a new version when it is loaded again.
  load(url) {
    const abs = new URL(url, globalThis.location?.href).href;
    let p = this.loaded.get(abs);
    if (!p) {
      // Fetched and compiled here while the worker opens IndexedDB.
      p = fetchModule(abs, this.options.loadTimeoutMs ?? 60000).then(({ compiled, name }) => this.rpc('load', { url: abs, name, module: compiled },
        { label: `the setup of ${name}` }).then((m) => {
        this.modules.push({ url: abs, name, module: compiled, app: m.app });
        delete this.unloadable[m.app];
        return new App(this, m);
      }));
      p.catch(() => this.loaded.delete(abs));
      this.loaded.set(abs, p);
    }
    return p;
  }

  // callRaw sends a request body (bytes or a string) and returns the
  // status and body the host's HTTP API would answer; it does not throw.
  //
  // trace, optional, is the W3C trace context the call continues:
  // {traceparent, tracestate}, as the headers of an HTTP call (an
  // OpenTelemetry propagation carrier is one). The host records no spans;
  // it passes the context to the guest and on to the server with the
  // guest's invocations there. A traceparent that does not parse is
  // ignored, as the server hosts ignore one.
  //
  // The call's deadline (timeoutMs) counts from now. A guest that ignores
  // it holds the worker's only thread, and nothing can interrupt wasm
  // there: grace ms after the deadline the page ends the worker. The call
  // answers DeadlineExceeded (504), and nothing of it is saved; calls sent
  // after it answer Unavailable (503): they did not run. A new worker
  // loads the same modules. Nothing acknowledged is lost: a call's writes
  // are on disk before it answers.
  async callRaw(app, method, body = empty, trace = undefined) {
    try {
      if (typeof body === 'string') body = utf8(body);
      return await this.rpc('call', { app, method, body, trace: traceArg(trace) }, { label: `${app}.${method}` });
    } catch (e) {
      // The worker was restarted or failed, or did not start.
      const code = e instanceof RoamError ? e.code : Internal;
      return { status: httpStatus(code), body: errorBody(code, e?.message ?? String(e)) };
    }
  }

  // call sends req as JSON and returns the decoded reply, or throws a
  // RoamError with the app's code and message. trace is callRaw's.
  async call(app, method, req, trace = undefined) {
    const r = await this.callRaw(app, method, req === undefined ? empty : utf8(JSON.stringify(req)), trace);
    const text = fromUTF8(r.body);
    if (r.status >= 300) {
      let eb;
      try {
        eb = JSON.parse(text);
      } catch {
        eb = { code: statusCode(r.status), message: text };
      }
      throw new RoamError(eb.code, eb.message, r.status);
    }
    return text === '' ? undefined : JSON.parse(text);
  }

  // status reports local changes not yet on the server: dirty (keys to
  // push), rejected (keys whose change the server refused for good, with
  // its status and message; pushed again once the app writes them again,
  // or the page retries them), conflicts, events (how many are queued for
  // the server) and parked (events the server refused, or that failed on
  // their own dead-letter topic, with the reason and pos; kept, not sent
  // until the page retries them).
  async status() {
    return this.rpc('status');
  }

  // resolve ends a conflict: 'mine' pushes the local version at the next
  // sync, 'theirs' takes the server's.
  async resolve(app, store, key, choice) {
    await this.rpc('resolve', { app, store, key, choice });
  }

  // retry takes back what sync set aside, so that the next sync sends it
  // again: for after the server's limit was raised or the data fixed.
  // what names it: keys, refused changes as status().rejected lists them
  // ({app, store, key}), and events, parked events as status().parked
  // lists them (or their pos); with no argument, everything set aside. A
  // parked event whose topic a module in this page now subscribes to is
  // delivered here instead. It resolves to how many of each it took back
  // ({keys, events}), once that is saved in IndexedDB; it throws NotFound,
  // and changes nothing, when something named is not set aside (any more).
  // It sends nothing itself: sync() does.
  async retry(what = null) {
    return this.rpc('retry', { what });
  }

  // discard drops what sync set aside, for good, named as for retry; there
  // is no default, so nothing is dropped that the page did not name. A
  // refused change is dropped for the server's version: a key the server
  // never had goes, one it has reads as absent until the next sync (or
  // pull) brings the server's version back. A parked event is deleted
  // unsent.
  async discard(what) {
    return this.rpc('discard', { what });
  }

  // pull fetches keys of an app's store from the server into local state
  // (unless changed locally) and returns the server's items.
  //
  // It takes the sync lock, as sync does: a pull read before a push (of this
  // tab or another) landed, and recorded after it, would replace the pushed
  // version with the server's previous one.
  async pull(app, store, keys) {
    return this.syncLocked(async () => {
      const items = await this.fetchItems(app, store, keys);
      await this.rpc('pulled', { app, store, items });
      return items;
    });
  }

  // syncLocked runs fn holding the database's sync lock (roam:<db>:sync),
  // shared by every tab: one sync or pull at a time.
  syncLocked(fn) {
    const locks = globalThis.navigator?.locks;
    return locks ? locks.request(`roam:${this.options.db}:sync`, fn) : fn();
  }

  // sync pushes local changes, forwards queued events and refreshes every
  // known key (plus options.pull: [{app, store, keys}]). Concurrent calls
  // share one run. It resolves to counts ({pushed, conflicts, rejected,
  // events, parked, pulled}) and pullFailed, the stores the server refused
  // to read ([{app, store, status, message}]; see pullRefused). It throws a
  // RoamError with .offline set when the server cannot be reached; local
  // changes then stay queued.
  sync(options = {}) {
    if (!this.remote) return Promise.reject(new RoamError(FailedPrecondition, 'sync: no remote host configured'));
    if (!this.syncing) {
      // One tab syncs at a time: two pushing the same change would each
      // find the other's push a conflict.
      const p = this.syncLocked(() => this.runSync(options));
      this.syncing = p.finally(() => { this.syncing = null; });
    }
    return this.syncing;
  }

  async runSync({ pull = [] }) {
    const out = await this.rpc('syncOut');
    const res = { pushed: 0, conflicts: 0, rejected: 0, pulled: 0, events: 0, parked: 0, pullFailed: [] };
    try {
      const again = new Set();
      for (const s of out.stores) await this.push(s, res, again);
      if (again.size > 0) {
        // Keys whose lost push was found on the server, changed here since:
        // their change goes out now, on the server's ETag of that push.
        const more = await this.rpc('syncOut');
        for (const s of more.stores) if (again.has(JSON.stringify([s.app, s.store]))) await this.push(s, res, new Set());
      }
      // A refused event is parked, not retried first at every sync for
      // ever: the events behind it go out. Anything else (offline, 5xx)
      // stops here, and what was sent so far is recorded either way.
      const sent = [], parked = [];
      const limit = this.remoteLimit();
      try {
        for (const e of out.events) {
          // Publish refuses these; an event queued before it did is parked
          // unsent (a server may reset the connection of a body over its
          // limit before answering 413, which would look like offline).
          const n = forwardBytes(e.rec);
          if (n > limit) {
            parked.push({ pos: e.pos, reason: `forwarding it takes a ${n}-byte request, over the server's limit of ${limit} bytes (remoteMaxBodyBytes)` });
            continue;
          }
          const path = `/v1/apps/${enc(e.app)}/publish/${enc(e.rec.pubsubname)}/${enc(e.rec.topic)}`;
          // A redirect (to a gateway's sign-in page) is refused by post:
          // the event was not published, and stays.
          const r = await this.post(path, forwardBody(e.rec), this.eventTrace(e.rec, path));
          if (r.ok) sent.push(e.pos);
          else if (refused(r.status)) parked.push({ pos: e.pos, reason: `the server refused it with ${r.status}: ${r.error.message}` });
          else throw r.error;
        }
      } finally {
        if (sent.length || parked.length) await this.rpc('eventsDone', { sent, parked });
        res.events = sent.length;
        res.parked = parked.length;
      }
      const want = new Map();
      for (const s of [...out.stores, ...pull]) {
        const k = JSON.stringify([s.app, s.store]);
        if (!want.has(k)) want.set(k, { app: s.app, store: s.store, keys: new Set() });
        for (const key of s.keys) want.get(k).keys.add(key);
      }
      // A store the server refuses to read is reported, and the other
      // stores are still pulled: one app the server does not have, or one
      // store it will not read, must not keep every other store stale.
      for (const w of want.values()) {
        if (w.keys.size === 0) continue;
        const { items, error } = await this.readItems(w.app, w.store, [...w.keys]);
        if (items.length > 0) res.pulled += await this.rpc('pulled', { app: w.app, store: w.store, items });
        if (!error) continue;
        if (!pullRefused(error.status)) throw error;
        console.warn(`roam sync: ${w.app}/${w.store}: the server refused to read it (${error.status}): ${error.message}`);
        res.pullFailed.push({ app: w.app, store: w.store, status: error.status, message: error.message });
      }
    } catch (e) {
      this.emit('sync', { ...res, error: e });
      throw e;
    }
    this.setOnline(true);
    this.emit('sync', res);
    return res;
  }

  // push sends a store's outgoing ops in requests the server accepts: at
  // most maxSyncOps ops and remoteMaxBodyBytes bytes each (host/statesync.go).
  // Each key has one op, so no request writes a key twice. Every op is
  // conditional on its own key's base, so splitting a push loses nothing
  // the conflict rules rely on: a request is all-or-nothing, the push as a
  // whole never was (conflicting keys are set aside and the rest pushed).
  //
  // An op that alone makes a request over the limit is rejected unsent, as
  // the server would refuse it with 413 (or reset the connection before
  // answering, which would look like being offline, at every sync).
  async push(s, res, again) {
    const limit = this.remoteLimit();
    const tooBig = [], fit = [];
    for (const op of s.ops) {
      const wire = wireOp(op);
      const n = jsonBytes(wire);
      if (n > limit - requestFrame) {
        tooBig.push({
          key: op.key, seq: op.seq, tomb: op.tomb, status: 413,
          message: `the change takes a ${n + requestFrame}-byte request, over the server's limit of ${limit} bytes (remoteMaxBodyBytes)`,
        });
        continue;
      }
      fit.push({ op, wire, n });
    }
    for (const chunk of chunks(fit, maxSyncOps, limit, (o) => o.n)) await this.pushChunk(s, chunk, res, again);
    if (tooBig.length > 0) {
      for (const o of tooBig) console.warn(`roam sync: ${s.app}/${s.store}: not pushing ${JSON.stringify(o.key)}: ${o.message}`);
      await this.rpc('rejected', { app: s.app, store: s.store, ops: tooBig });
      res.rejected += tooBig.length;
    }
  }

  remoteLimit() {
    return this.options.remoteMaxBodyBytes ?? 4 << 20;
  }

  // pushChunk pushes ops in one transact request. Keys the server reports
  // as conflicts are recorded and the rest pushed again. A request the
  // server refuses for good (400, 413) is split until the op it refuses is
  // alone, and that op is recorded as rejected: the other keys, stores
  // and events still go out. Any other failure throws.
  //
  // Before it sends a request, the changes it holds are marked sent
  // (Store.sending), durably: a reply lost with the tab (closed, crashed)
  // or the network leaves the page unsure whether the server applied them,
  // and the next push of those keys, refused as a conflict with the page's
  // own write, is then recognised as pushed instead of reported.
  async pushChunk(s, ops, res, again) {
    for (let round = 0; ops.length > 0 && round < 3; round++) {
      const fresh = await this.rpc('sending', { app: s.app, store: s.store, ops: ops.map(({ op }) => ({ key: op.key, seq: op.seq, tomb: op.tomb })) });
      const unsend = () => (fresh.length > 0 ? this.rpc('unsend', { app: s.app, store: s.store, keys: fresh }) : null);
      let r;
      try {
        r = await this.post(`/v1/apps/${enc(s.app)}/state/${enc(s.store)}/transact`, { ops: ops.map((o) => o.wire) });
      } catch (e) {
        // A request the browser could not send at all (it is offline), or
        // that the page never sent (its stateToken failed), was not
        // applied: its marks go.
        if (e.notSent || (e.unsent && globalThis.navigator?.onLine === false)) await unsend()?.catch(() => {});
        throw e;
      }
      if (r.ok) {
        // One item per op, of its key: a reply of another shape records
        // nothing (the changes stay to push), and one in another order
        // must not give a key another's ETag and value.
        const items = replyItems(r, 'items', ops.map((o) => o.op.key), true);
        const conflicts = await this.rpc('pushed', { app: s.app, store: s.store, ops: ops.map((o) => o.op), items });
        res.pushed += ops.length - conflicts;
        res.conflicts += conflicts;
        return;
      }
      if (refused(r.status)) {
        await unsend();
        if (ops.length === 1) {
          const { key, seq, tomb } = ops[0].op;
          console.warn(`roam sync: ${s.app}/${s.store}: the server refused the change of ${JSON.stringify(key)} (${r.status}): ${r.error.message}`);
          await this.rpc('rejected', { app: s.app, store: s.store, ops: [{ key, seq, tomb, status: r.status, message: r.error.message }] });
          res.rejected++;
          return;
        }
        const half = ops.length >> 1;
        await this.pushChunk(s, ops.slice(0, half), res, again);
        await this.pushChunk(s, ops.slice(half), res, again);
        return;
      }
      if (r.status !== 409) {
        // A 401 is answered before the body is read (host/statesync.go,
        // stateAuth): nothing was applied.
        if (r.status === 401) await unsend();
        throw r.error;
      }
      // Only keys this request wrote, each once: a conflict named on any
      // other key would mark it, unchanged here, a conflict.
      const cs = r.body?.conflicts == null ? [] : replyItems(r, 'conflicts', ops.map((o) => o.op.key), false);
      if (cs.length === 0) {
        await unsend();
        return; // raced with another writer: next sync
      }
      // A key whose earlier push's reply was lost may meet that push here:
      // pushed, not a conflict.
      const n = await this.rpc('conflicts', { app: s.app, store: s.store, items: cs, fresh });
      res.conflicts += n.conflicts;
      res.pushed += n.pushed;
      if (n.again > 0) again.add(JSON.stringify([s.app, s.store]));
      const bad = new Set(cs.map((c) => c.key));
      ops = ops.filter((o) => !bad.has(o.op.key));
    }
  }

  // fetchItems reads keys in requests of at most 500 keys and the
  // server's body limit (keys may be up to 16 KiB each).
  async fetchItems(app, store, keys) {
    const { items, error } = await this.readItems(app, store, keys);
    if (error) throw error;
    return items;
  }

  // readItems is fetchItems that stops at a request the server answers
  // with an error and returns it with the items read before it, which are
  // as good as any. It throws when the server cannot be reached.
  async readItems(app, store, keys) {
    const items = [];
    for (const chunk of chunks(keys, 500, this.remoteLimit(), jsonBytes)) {
      const r = await this.post(`/v1/apps/${enc(app)}/state/${enc(store)}/bulk`, { keys: chunk });
      if (!r.ok) return { items, error: r.error };
      // The keys asked for, each once: an item of another key would be
      // written into the page's state.
      try {
        items.push(...replyItems(r, 'items', chunk, true));
      } catch (e) {
        return { items, error: e };
      }
    }
    return { items, error: null };
  }

  // eventTrace returns the trace headers of the call that published rec
  // (the traceparent extension the worker recorded), for its forwarding
  // to path, when options.traceHeaders allows: the server's publish then
  // traces it as the Go hosts trace an app's publish.
  eventTrace(rec, path) {
    if (!rec.traceparent || !sendTrace(this.options.traceHeaders ?? 'same-origin', this.remote + path)) return {};
    return rec.tracestate ? { traceparent: rec.traceparent, tracestate: rec.tracestate } : { traceparent: rec.traceparent };
  }

  // post sends one state sync request and reads its reply, within
  // syncTimeoutMs (default 60 s) from sending to the reply's last byte, and
  // at most maxReplyBytes of it: a server that never finishes answering
  // must not hold the sync (and the sync lock of every tab) for good, nor
  // one that answers without end fill the tab's memory. Both fail the sync,
  // which leaves everything queued. So does a redirect, which is not
  // followed (redirectError): what it leads to is not the server's reply,
  // and a push or a publish sent on there is not one the server took.
  //
  // It carries the stateToken as Authorization: Bearer, when there is one:
  // only here, to the server's state sync API (this.remote), never with the
  // module fetch of load or an invocation. A 401 fails it with
  // FailedPrecondition (unauthorized).
  async post(path, body, headers = {}) {
    if (!this.remote) throw new RoamError(FailedPrecondition, 'no remote host configured');
    const url = this.remote + path;
    const ms = this.options.syncTimeoutMs ?? 60000;
    const token = await this.stateToken(url, ms);
    if (token) headers = { ...headers, Authorization: `Bearer ${token}` };
    // ctl is readReply's, for a reply too big; timeout is the deadline.
    const ctl = new AbortController();
    const timeout = AbortSignal.timeout(ms);
    const unreachable = (why) => {
      this.setOnline(false);
      const err = new RoamError(Unavailable, why);
      err.offline = true;
      return err;
    };
    let res, text;
    try {
      res = await fetch(url, {
        method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body),
        signal: AbortSignal.any([ctl.signal, timeout]), redirect: 'manual',
      });
    } catch (e) {
      if (timeout.aborted) throw unreachable(`${url}: no complete reply in ${ms} ms (syncTimeoutMs): the changes stay queued`);
      const err = unreachable(`${this.remote} is unreachable: ${e.message}`);
      err.unsent = true; // no reply at all (maybe not sent: see pushChunk)
      throw err;
    }
    const redirected = redirectError(`sync: ${url}`, url, res);
    if (redirected) {
      ctl.abort(); // its body, if any (not in a browser), is not read
      throw redirected;
    }
    try {
      text = await readReply(res, this.maxReplyBytes(), ctl);
    } catch (e) {
      if (e instanceof RoamError) throw e;
      if (timeout.aborted) throw unreachable(`${url}: no complete reply in ${ms} ms (syncTimeoutMs): the changes stay queued`);
      throw unreachable(`${url}: the reply was cut off: ${e.message}`);
    }
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch { /* not JSON */ }
    const r = { ok: res.ok, status: res.status, body: parsed, url, notJSON: parsed === null && text.trim() !== '' && text.trim() !== 'null' };
    if (res.ok) {
      if (token) this.tokenRefused = false;
      return r;
    }
    const code = typeof parsed?.code === 'string' ? parsed.code : statusCode(res.status);
    const message = typeof parsed?.message === 'string' ? parsed.message : `HTTP ${res.status}: ${text.slice(0, 200)}`;
    if (res.status === 401) {
      if (token) this.tokenRefused = true;
      return { ...r, body: parsed ?? {}, error: unauthorized(url, !!token, message) };
    }
    return { ...r, body: parsed ?? {}, error: new RoamError(code, message, res.status) };
  }

  // stateToken returns the token a state sync request to url carries
  // (options.stateToken), or '' for none. A function is called for every
  // request, with {refused}: true when the server refused (401) the last
  // token it gave, so that a page that keeps a short-lived token knows to
  // fetch a new one; it has ms (syncTimeoutMs) to answer, since a sync
  // waiting on it holds every tab's sync lock. A token that cannot be sent
  // (not a string; not printable ASCII, or spaces at either end, which
  // fetch would refuse or trim) or a function that fails or does not
  // answer fails the request unsent (notSent: a push's sent marks go), with
  // FailedPrecondition. No message ever quotes the token.
  async stateToken(url, ms) {
    const opt = this.options.stateToken;
    if (opt == null || opt === '') return '';
    let t = opt;
    if (typeof opt === 'function') {
      let timer;
      try {
        t = await Promise.race([
          (async () => opt({ refused: !!this.tokenRefused }))(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(tokenError(url, `the stateToken function did not answer in ${ms} ms (syncTimeoutMs)`)), ms);
          }),
        ]);
      } catch (e) {
        if (e?.notSent) throw e;
        throw tokenError(url, `the stateToken function failed: ${e?.message ?? String(e)}`);
      } finally {
        clearTimeout(timer);
      }
      if (t == null || t === '') return '';
    }
    if (typeof t !== 'string') throw tokenError(url, `stateToken gave ${t === null ? 'null' : `a ${typeof t}`}, not a string`);
    if (!bearerToken.test(t)) {
      throw tokenError(url, 'the stateToken has a character an Authorization header cannot carry as it is: a token is printable ASCII, without spaces at either end');
    }
    return t;
  }

  // maxReplyBytes bounds a sync reply: a bulk read's values add up to at
  // most 8 times the server's body limit (host/statesync.go), base64 in
  // JSON, with its keys (at most one request's worth) around them.
  maxReplyBytes() {
    return this.remoteLimit() * 12 + (64 << 10);
  }

  setOnline(v) {
    if (this.online === v) return;
    this.online = v;
    this.emit('online', v);
  }

  // bench runs n calls inside the worker and returns the mean ms per call.
  async bench(app, method, req, n) {
    return this.rpc('bench', { app, method, body: utf8(JSON.stringify(req)), n });
  }

  close() {
    this.worker?.terminate();
    this.channel?.close();
    clearTimeout(this.dog);
    if (this.lock.held) this.onLease('release');
    this.fail(new RoamError(Unavailable, 'host closed'));
  }
}

// App is a module loaded in a Host.
export class App {
  constructor(host, manifest) {
    this.host = host;
    this.id = manifest.app;
    this.methods = manifest.methods;
    this.subscriptions = manifest.subscriptions;
  }
  call(method, req, trace) { return this.host.call(this.id, method, req, trace); }
  callRaw(method, body, trace) { return this.host.callRaw(this.id, method, body, trace); }
}

const hosts = new Map();

// load loads a module into the host of options.db (created on first use)
// and returns its App.
export async function load(url, options = {}) {
  let h = options.host ?? hosts.get(options.db ?? 'roam');
  if (!h) {
    h = new Host(options);
    hosts.set(options.db ?? 'roam', h);
  }
  return h.load(url);
}

const enc = encodeURIComponent;

// bearerToken is a stateToken that a header carries unchanged: printable
// ASCII (the server compares bytes; fetch refuses control characters and
// sends other characters as Latin-1 where the server's environment has
// UTF-8), without spaces at either end (fetch trims them).
const bearerToken = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

// tokenError fails a state sync request to url, unsent, for its token.
function tokenError(url, why) {
  const err = new RoamError(FailedPrecondition, `sync: ${url}: not sent: ${why}`);
  err.notSent = true;
  return err;
}

// unauthorized is the error of a state sync request the server answered
// 401: FailedPrecondition, as host/statesync.go's stateAuth answers it
// (status 401, .unauthorized set), saying whether the page sent a token,
// with the server's message. The sync ends there; what it had to push and
// forward stays queued, and the next sync, with the token fixed, sends it.
function unauthorized(url, sent, message) {
  const why = sent
    ? 'the server refused the page\'s token (the Host\'s stateToken option)'
    : 'the server wants a token and the page sent none (set the Host\'s stateToken option)';
  const err = new RoamError(FailedPrecondition, `sync: ${url} answered 401 Unauthorized: ${why}: ${message}`, 401);
  err.unauthorized = true;
  return err;
}

// traceArg keeps the string fields of a call's trace context, the only
// ones the worker reads (and a carrier may hold what cannot be posted).
function traceArg(t) {
  if (!t || typeof t.traceparent !== 'string') return undefined;
  return { traceparent: t.traceparent, tracestate: typeof t.tracestate === 'string' ? t.tracestate : '' };
}

// maxSyncOps is host/statesync.go's maxSyncKeys: the most ops (or keys) of
// one state sync request.
const maxSyncOps = 1000;

// requestFrame is what a sync request's body adds around its list
// ({"ops":[...]}, {"keys":[...]}), with room to spare.
const requestFrame = 16;

// jsonBytes is the size of v in a JSON list: its encoding and a comma.
const jsonBytes = (v) => utf8(JSON.stringify(v)).length + 1;

// chunks splits items into runs of at most max items whose sizes add up to
// a request body of at most limit bytes; an item too big for any request
// goes alone.
function* chunks(items, max, limit, size) {
  const budget = limit - requestFrame;
  let run = [], bytes = 0;
  for (const it of items) {
    const n = size(it);
    if (run.length > 0 && (run.length === max || bytes + n > budget)) {
      yield run;
      run = [];
      bytes = 0;
    }
    run.push(it);
    bytes += n;
  }
  if (run.length > 0) yield run;
}

// refused tells a request the server refuses for what it is (400, 413),
// which sending it again cannot change, from a failure of the moment
// (offline, 5xx, 408, 429) or of the setup (404: an app the server does
// not have; 401, 403), after which everything is sent again later.
const refused = (status) => status === 400 || status === 413;

// pullRefused tells a pull the server refuses for that store (4xx: 400, a
// 404 for an app it does not have, 413, ...), which is reported while the
// other stores are pulled, from one that ends the sync as a push's does:
// offline, 5xx, and the 4xx of the moment (408, 425, 429), to be tried
// again later; and 401, 403 and 407, which are about the page's
// credentials, not the store: a gateway in front of the server answers
// them for every request alike, so going on would only collect the same
// answer for every store and report a sync that read nothing as done,
// where the page has to learn that it must sign in again.
const pullRefused = (status) => status >= 400 && status < 500 && ![401, 403, 407, 408, 425, 429].includes(status);

// wireOp and fromWire convert to and from the state sync API's JSON, where
// values are base64 (Go's encoding of []byte).
function wireOp(o) {
  const w = { op: o.op, key: o.key };
  if (o.op === 'set') w.value = base64(o.value);
  if (o.etag) w.etag = o.etag;
  if (o.if_absent) w.if_absent = true;
  if (o.ttl_ms) w.ttl_ms = o.ttl_ms;
  return w;
}

function fromWire(it) {
  return { key: it.key, found: !!it.found, etag: it.etag ?? '', value: it.value ? fromBase64(it.value) : empty };
}

// badReply is the error of a sync reply that does not follow the protocol
// (web/README.md, "Sync protocol"): nothing of it is recorded, and the
// sync ends, to be tried again later, with everything still queued.
function badReply(r, detail) {
  return new RoamError(Unavailable, `sync: the reply of ${r.url}, ${r.status}, does not follow the state sync protocol: ${detail}`, 502);
}

// replyItems returns the items r.body[field] lists, decoded, checked
// against keys, the keys of the request: every item is one of them, named
// at most once, and, with all, each key has its item; they come in the
// order of keys. Anything else throws badReply.
function replyItems(r, field, keys, all) {
  const list = r.body?.[field];
  if (r.notJSON) throw badReply(r, 'its body is not JSON');
  if (!Array.isArray(list)) throw badReply(r, `${JSON.stringify(field)} is not a list`);
  const wanted = new Set(keys);
  const byKey = new Map();
  for (const it of list) {
    const bad = itemError(it);
    if (bad) throw badReply(r, bad);
    if (!wanted.has(it.key)) throw badReply(r, `it names key ${JSON.stringify(it.key).slice(0, 200)}, which the request did not`);
    if (byKey.has(it.key)) throw badReply(r, `it names key ${JSON.stringify(it.key).slice(0, 200)} twice`);
    byKey.set(it.key, fromWire(it));
  }
  if (all && byKey.size !== wanted.size) {
    const missing = keys.find((k) => !byKey.has(k));
    throw badReply(r, `it has no item of key ${JSON.stringify(missing).slice(0, 200)}`);
  }
  return keys.filter((k) => byKey.has(k)).map((k) => byKey.get(k));
}

// itemError says what is wrong with an item of a sync reply
// ({key, found, value, etag}, host.SyncItem), or ''.
function itemError(it) {
  if (it === null || typeof it !== 'object' || Array.isArray(it)) return 'an item is not an object';
  if (typeof it.key !== 'string') return 'an item\'s key is not a string';
  const k = JSON.stringify(it.key).slice(0, 200);
  if (typeof it.found !== 'boolean') return `the item of ${k}: found is not true or false`;
  if (it.etag != null && typeof it.etag !== 'string') return `the item of ${k}: its etag is not a string`;
  if (it.found && !it.etag) return `the item of ${k} is found, without an etag`;
  if (it.value != null && (typeof it.value !== 'string' || !isBase64(it.value))) return `the item of ${k}: its value is not base64`;
  return '';
}

// isBase64 is what Go's encoding/json takes for []byte: standard base64,
// padded.
function isBase64(s) {
  if (s.length % 4 !== 0 || /[^A-Za-z0-9+/=]/.test(s)) return false;
  try {
    atob(s);
    return true;
  } catch {
    return false;
  }
}

// readReply reads a reply's body as text, and cancels it (ctl) once it is
// over max bytes: a reply without end, or far larger than the protocol's,
// must not take the tab's memory.
async function readReply(res, max, ctl) {
  const tooBig = () => {
    ctl.abort();
    return badReply({ url: res.url, status: res.status }, `its body is over ${max} bytes, more than any reply of the protocol (maxReplyBytes: 12 times remoteMaxBodyBytes, and 64 KiB)`);
  };
  const declared = Number(res.headers.get('Content-Length'));
  if (declared > max) throw tooBig();
  if (!res.body) return res.text();
  const reader = res.body.getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) throw tooBig();
    parts.push(value);
  }
  const all = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder().decode(all);
}
