// The worker side of the browser host: it loads Roam wasip1 modules, serves
// their roam_v1 imports (see abi/wire.go and sdk/guest_wasip1.go), runs
// calls, and delivers events. It mirrors host.Server (the HTTP transport's
// checks and messages), the edge host's import decoding, and the embedded
// backend's pub/sub rules (backend/internal/core/deliver.go), so that a call
// answers here with the same bytes as on the native host.

import { WASI, OpenFile, File, ConsoleStdout, WASIProcExit } from '@bjorn3/browser_wasi_shim';
import {
  Reader, Writer, RoamError, utf8, fromUTF8, goQuote, quoteName, sendTrace, errorBody, httpStatus, validJSON, base64, parseCode, statusCode, forwardBytes,
  traceContext, redirectError,
  OK, InvalidArgument, NotFound, FailedPrecondition, Unavailable, DeadlineExceeded, Internal,
} from './wire.js';

export const ImportModule = 'roam_v1';
const importPrefix = 'roam_v';
const abiMajor = 1;
const KindMethod = 1;
const KindEvent = 2;
const importNames = ['state_get', 'state_bulk_get', 'state_set', 'state_delete', 'state_transact',
  'publish', 'invoke', 'config_get', 'secret_get', 'log', 'take_result'];
const requiredExports = ['memory', 'roam_abi_version', 'roam_alloc', 'roam_init', 'roam_handle'];

const empty = new Uint8Array(0);

// readTrace reads the optional trace context that ABI v1.1 appends to
// invoke and publish requests (abi.ReadTrace), or null when there is none
// or its traceparent does not parse. A guest sends it only when its call
// carried one.
function readTrace(r) {
  if (r.done()) return null;
  const tp = r.string(), ts = r.string();
  return traceContext(tp, ts);
}
const pack = (code, n) => (BigInt(code) << 32n) | BigInt(n >>> 0);

export const defaults = {
  maxBodyBytes: 4 << 20, // host.Options.MaxBodyBytes
  // The remote's host.Options.MaxBodyBytes (--max-body-bytes): an event
  // for the server must fit in one request of the state sync API.
  remoteMaxBodyBytes: 4 << 20,
  timeoutMs: 30000, // host.Options.RequestTimeout
  retry: { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 2000 }, // backend.DefaultRetryPolicy
  deadLetterTopic: 'deadletter',
  config: {},
  secrets: {},
  remote: '',
  traceHeaders: 'same-origin', // 'always', 'never': see sendTrace (wire.js)
};

// Trap is a guest that can no longer run: a wasm trap, proc_exit, or a
// host error raised inside it. Its instance is discarded.
class Trap extends Error {
  constructor(inst, detail) {
    super(detail);
    this.inst = inst;
  }
}

function describe(e) {
  if (e instanceof WASIProcExit) return `exited with status ${e.code}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : ([1e7] + -1e3 + -4e3 + -8e3 + -1e11)
  .replace(/[018]/g, (c) => (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16)));

function requestID() {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// isJSONType is the SDK's: which content types carry JSON data.
function isJSONType(ct) {
  if (!ct) return true;
  ct = ct.split(';')[0];
  return ct === 'application/json' || ct === 'text/json' || (ct.length > 5 && ct.endsWith('+json'));
}

// eventJSON is sdk.Event.MarshalJSON of the event a record delivers.
export function eventJSON(r) {
  let s = `{"specversion":"1.0","id":${JSON.stringify(r.id)},"source":${JSON.stringify(r.source)},"type":${JSON.stringify(r.type)}`;
  if (r.time) s += `,"time":${JSON.stringify(r.time)}`;
  if (r.datacontenttype) s += `,"datacontenttype":${JSON.stringify(r.datacontenttype)}`;
  if (r.pubsubname) s += `,"pubsubname":${JSON.stringify(r.pubsubname)}`;
  if (r.topic) s += `,"topic":${JSON.stringify(r.topic)}`;
  if (r.data.length > 0) {
    if (isJSONType(r.datacontenttype) && validJSON(r.data)) s += `,"data":${fromUTF8(r.data)}`;
    else s += `,"data_base64":"${base64(r.data)}"`;
  }
  return utf8(s + '}');
}

// A Module is one loaded app: its compiled code and one instance, re-created
// after a trap. The worker is single-threaded, so one instance serves every
// call; a call that invokes its own app re-enters it, as wazero allows.
class Module {
  constructor(rt, compiled, name) {
    this.rt = rt;
    this.compiled = compiled;
    this.name = name;
    this.app = null;
    this.manifest = null;
    this.inst = null;
    this.stderr = [];
    this.settingUp = false; // roam_init is running
  }

  label() { return this.app ?? this.name; }

  // instantiate makes the module's instance afresh (after a trap): it
  // starts one, checks it still names the module's app, and sets it up.
  // Runtime.load does the same steps for a first load, with the app's
  // store loaded in between.
  instantiate() {
    const inst = this.start();
    const id = this.appID(inst);
    if (id !== null && id !== this.app) throw new RoamError(FailedPrecondition, `${this.name}: holds app ${id} now, ${this.app} before`);
    return this.setup(inst);
  }

  // start creates an instance and runs the Go runtime's start-up
  // (_initialize, which registers the app). The instance is not set up.
  start() {
    const tail = (line) => {
      this.stderr.push(line);
      if (this.stderr.length > 50) this.stderr.shift();
    };
    // fds 0-2 must exist: without them a Go panic, which writes to fd 2,
    // recurses until the JS stack overflows.
    const fds = [
      new OpenFile(new File([])),
      ConsoleStdout.lineBuffered((l) => console.log(`[${this.label()}] ${l}`)),
      ConsoleStdout.lineBuffered((l) => { tail(l); console.warn(`[${this.label()}] ${l}`); }),
    ];
    const wasi = new WASI([this.name], [], fds, { debug: false });
    const inst = { exports: null, memory: null, pending: null, depth: 0, dead: false, minor: 0 };
    const imports = { wasi_snapshot_preview1: wasi.wasiImport, [ImportModule]: this.rt.imports(this, inst) };
    this.stderr = [];
    this.guard(() => {
      const instance = new WebAssembly.Instance(this.compiled, imports);
      inst.exports = instance.exports;
      inst.memory = instance.exports.memory;
      wasi.initialize(instance);
      const v = inst.exports.roam_abi_version() >>> 0;
      if (v >>> 16 !== abiMajor) {
        throw new RoamError(FailedPrecondition, `${this.name} speaks ABI ${v >>> 16}.${v & 0xffff}; this host implements ${abiMajor}.x`);
      }
      inst.minor = v & 0xffff;
    });
    return inst;
  }

  // appID returns the id of the app a started instance holds, from
  // roam_app_id (ABI v1.2), without running its setup; null when the
  // module does not export it (built before v1.2).
  appID(inst) {
    if (typeof inst.exports.roam_app_id !== 'function') return null;
    const frame = this.guard(() => this.readFrame(inst, inst.exports.roam_app_id()));
    if (frame.code !== OK) throw this.setupFailed(frame);
    const id = fromUTF8(frame.payload);
    const bad = appIDError(id);
    if (bad) throw new RoamError(FailedPrecondition, `${this.name}: roam_app_id: ${bad}`);
    return id;
  }

  // setup runs the app's setup (roam_init) on a started instance, makes it
  // the module's instance and returns the manifest. When the app is known
  // (this.app), the setup's state, publish and invoke are served for it;
  // otherwise they fail (see Runtime.appOf).
  setup(inst) {
    this.settingUp = true;
    let frame;
    try {
      frame = this.guard(() => this.readFrame(inst, inst.exports.roam_init()));
    } finally {
      this.settingUp = false;
    }
    if (frame.code !== OK) throw this.setupFailed(frame);
    const r = new Reader(frame.payload);
    const m = { app: r.string(), methods: [], subscriptions: [] };
    for (let n = r.count(), i = 0; i < n; i++) m.methods.push(r.string());
    for (let n = r.count(), i = 0; i < n; i++) m.subscriptions.push({ pubsub: r.string(), topic: r.string(), deadLetterTopic: r.string() });
    if (!r.done()) throw new RoamError(FailedPrecondition, `${this.name}: roam_init returned a malformed manifest`);
    const bad = appIDError(m.app);
    if (bad) throw new RoamError(FailedPrecondition, `${this.name}: roam_init: ${bad}`);
    if (this.app && m.app !== this.app) {
      throw new RoamError(FailedPrecondition, this.manifest
        ? `${this.name}: holds app ${m.app} now, ${this.app} before`
        : `${this.name}: named app ${this.app} (roam_app_id), then set up ${m.app}`);
    }
    this.inst = inst;
    return m;
  }

  // guard runs fn, a call into the guest while it starts or is set up: a
  // trap or a host error there fails the load, with what the guest wrote
  // to stderr.
  guard(fn) {
    try {
      return fn();
    } catch (e) {
      if (this.rt.store.open) this.rt.store.rollback(); // as in handle
      if (e instanceof RoamError) throw e;
      throw new RoamError(FailedPrecondition, `${this.name}: starting the module failed: ${describe(e)}${this.stderrDetail()}`);
    }
  }

  setupFailed(frame) {
    return new RoamError(frame.code, `${this.name}: app setup failed: ${fromUTF8(frame.payload)}`);
  }

  stderrDetail() {
    const lines = this.stderr.filter((l) => l.trim() !== '').slice(0, 3);
    return lines.length ? ': ' + lines.join(' | ') : '';
  }

  // readFrame copies out an export's reply frame. Views are made afresh:
  // memory.buffer is replaced whenever the guest's memory grows.
  readFrame(inst, v) {
    const ptr = Number(BigInt.asUintN(64, v) >> 32n);
    const n = Number(BigInt.asUintN(32, v));
    const b = new Uint8Array(inst.memory.buffer, ptr, n).slice();
    if (b.length === 0) return { code: Internal, payload: utf8('empty reply frame') };
    return { code: b[0], payload: b.subarray(1) };
  }

  // handle runs one roam_handle call and returns {code, payload}. A trap
  // discards the instance and is thrown as a Trap. The trace context
  // ({traceparent, tracestate} or null) goes into the Call only for a
  // guest that reads it (ABI minor ≥ 1): a v1.0 guest refuses the
  // trailing fields.
  handle(kind, name, body, deadlineMs, trace) {
    if (this.settingUp) {
      // Only a new instance's setup can get here (a first load's app is not
      // callable yet), by invoking its own app: making yet another instance
      // for that call would recurse.
      throw new RoamError(FailedPrecondition, `app ${this.label()} was called during its own setup: a setup cannot call its own app`);
    }
    let inst = this.inst;
    if (!inst || inst.dead) {
      this.inst = null;
      this.instantiate();
      inst = this.inst;
    }
    const w = new Writer(body.length + name.length + 48)
      .uvarint(kind).string(name).string(requestID()).uvarint(deadlineMs).bytes(body);
    if (trace && inst.minor >= 1) w.string(trace.traceparent).string(trace.tracestate);
    const call = w.finish();
    inst.depth++;
    if (inst.depth === 1) this.stderr = [];
    try {
      const ptr = inst.exports.roam_alloc(call.length) >>> 0;
      new Uint8Array(inst.memory.buffer, ptr, call.length).set(call);
      return this.readFrame(inst, inst.exports.roam_handle(ptr, call.length));
    } catch (e) {
      // A savepoint whose rollback ran out of stack in dispatch is
      // finished here, higher up.
      if (this.rt.store.open) this.rt.store.rollback();
      inst.dead = true;
      if (this.inst === inst) this.inst = null;
      if (e instanceof Trap) throw e;
      throw new Trap(inst, describe(e) + this.stderrDetail());
    } finally {
      inst.depth--;
    }
  }
}

export class Runtime {
  constructor(store, opts = {}) {
    this.store = store;
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined && v !== null));
    this.opts = { ...defaults, ...given, retry: { ...defaults.retry, ...(given.retry ?? {}) } };
    this.modules = new Map(); // app id -> Module
    this.loading = new Set(); // app ids of loads in progress: two modules of one app would share its state
    this.subs = new Map(); // "pubsub\0topic" -> [subscription]
    this.allSubs = [];
    this.deadlines = []; // deadline of each call in progress, innermost last
    this.traces = []; // trace context of each call in progress (or null), innermost last
    this.published = []; // events published since the last commit
    this.pos = 0; // last queue/outbox position
    this.outbox = new Map(); // position -> {app, rec}: events for the server
    this.pumpTimer = null;
    this.pumpAt = Infinity;
    // serial runs the delivery pump as one of the worker's operations, one
    // at a time with the page's (worker.js): by default, at once.
    this.serial = (fn) => fn();
    // onDeliver(what) is told of each event about to be delivered, before
    // the guest runs: the page must know what the worker was doing if the
    // handler never returns (see Host.restart). onDelivered(cleared) when a
    // round of deliveries is saved, with the looped events it settled.
    this.onDeliver = null;
    this.onDelivered = null;
    // looped: queue keys (JSON) of events whose handler, in an earlier
    // worker, did not return by its deadline, so that worker was ended.
    this.looped = new Set((this.opts.looped ?? []).map(String));
    // app id -> why its module could not be loaded again into this worker
    this.unloadable = new Map(Object.entries(this.opts.unloadable ?? {}));
  }

  async init() {
    const tx = this.store.db.transaction(['meta', 'outbox'], 'readonly');
    const [pos, gen, keys, vals] = await Promise.all([
      req(tx.objectStore('meta').get('pos')),
      req(tx.objectStore('meta').get('gen')),
      req(tx.objectStore('outbox').getAllKeys()),
      req(tx.objectStore('outbox').getAll()),
    ]);
    this.pos = pos ?? 0;
    this.store.gen = gen ?? 0;
    keys.forEach((k, i) => this.outbox.set(k, vals[i]));
  }

  // refresh makes memory match the database again when another tab has
  // committed since this one last did (meta gen moved): the items of the
  // apps loaded here, the event queues of their subscriptions, the outbox
  // and the queue position. Only called while this tab holds the
  // database (Lease), with nothing staged, so memory and disk agree as
  // of this tab's last commit; it returns whether anything was read.
  async refresh() {
    const gen = await req(this.store.db.transaction(['meta'], 'readonly').objectStore('meta').get('gen')) ?? 0;
    if (gen === this.store.gen) return false;
    const tx = this.store.db.transaction(['meta', 'items', 'seqs', 'conflicts', 'queue', 'outbox'], 'readonly');
    const apps = [...new Set(this.allSubs.map((s) => s.app))];
    const [pos, okeys, ovals, queues] = await Promise.all([
      req(tx.objectStore('meta').get('pos')),
      req(tx.objectStore('outbox').getAllKeys()),
      req(tx.objectStore('outbox').getAll()),
      Promise.all(apps.map((app) => {
        const range = IDBKeyRange.bound([app], [app, []]);
        return Promise.all([req(tx.objectStore('queue').getAllKeys(range)), req(tx.objectStore('queue').getAll(range))]);
      })),
      this.store.reload(tx),
    ]);
    this.pos = pos ?? 0;
    this.outbox = new Map();
    okeys.forEach((k, i) => this.outbox.set(k, ovals[i]));
    let waiting = false;
    for (const s of this.allSubs) {
      const [keys, vals] = queues[apps.indexOf(s.app)];
      const head = s.queue[0] ? JSON.stringify(s.queue[0].key) : null;
      s.queue = [];
      keys.forEach((k, i) => { if (k[1] === s.pubsub && k[2] === s.topic) s.queue.push({ key: k, rec: vals[i] }); });
      if (!s.queue[0] || JSON.stringify(s.queue[0].key) !== head) {
        s.failures = 0; // another tab delivered the head since
        s.nextAt = 0;
      }
      waiting ||= s.queue.length > 0;
    }
    this.store.gen = gen;
    if (waiting) this.schedule(0);
    return true;
  }

  appIDs() { return [...this.modules.keys()].sort(); }

  // load sets up a module fetched and compiled by fetchModule, registers
  // its subscriptions, and returns its manifest. It fails with a message
  // that names the problem: another ABI version, not a Roam module, setup.
  //
  // A module that names its app before its setup (roam_app_id, ABI v1.2)
  // is set up with the app's own capabilities, as on the other hosts: its
  // store is loaded first, since state must answer synchronously. Without
  // the export the app is known only from the manifest, so the setup's
  // state, publish and invoke fail (appOf). What the setup wrote or
  // published is saved before the app serves.
  async load({ compiled, name }) {
    checkShape(compiled, name);
    const mod = new Module(this, compiled, name);
    const inst = mod.start();
    let id = mod.appID(inst); // null before v1.2
    let reserved = false;
    const reserve = () => {
      if (this.modules.has(id) || this.loading.has(id)) throw new RoamError(FailedPrecondition, `app ${id} is already loaded here`);
      this.loading.add(id);
      reserved = true;
      mod.app = id;
    };
    try {
      if (id !== null) {
        reserve();
        await this.store.loadApp(id);
      }
      const m = mod.setup(inst);
      if (id === null) {
        id = m.app;
        reserve();
        await this.store.loadApp(id);
      }
      mod.manifest = m;
      try {
        await this.commit();
      } catch (e) {
        throw new RoamError(Unavailable, `${name}: the app's setup ran, but ${e.message}`);
      }
      this.modules.set(id, mod);
    } finally {
      if (reserved) this.loading.delete(id);
    }
    await this.subscribe(mod);
    return mod.manifest;
  }

  // subscribe registers a module's subscriptions and reloads their queues.
  async subscribe(mod) {
    const tx = this.store.db.transaction(['queue'], 'readonly');
    const range = IDBKeyRange.bound([mod.app], [mod.app, []]);
    const [keys, vals] = await Promise.all([req(tx.objectStore('queue').getAllKeys(range)), req(tx.objectStore('queue').getAll(range))]);
    for (const s of mod.manifest.subscriptions) {
      const sub = {
        app: mod.app, pubsub: s.pubsub, topic: s.topic,
        dl: s.deadLetterTopic || this.opts.deadLetterTopic, queue: [], failures: 0, nextAt: 0,
      };
      keys.forEach((k, i) => { if (k[1] === s.pubsub && k[2] === s.topic) sub.queue.push({ key: k, rec: vals[i] }); });
      const rk = s.pubsub + '\0' + s.topic;
      this.subs.set(rk, [...(this.subs.get(rk) ?? []), sub]);
      this.allSubs.push(sub);
    }
    // Events published before this subscriber was loaded wait in the
    // outbox; take back those of its topics.
    let taken = false;
    for (const [pos, o] of this.outbox) {
      if (!o.parked && this.subs.has(o.rec.pubsubname + '\0' + o.rec.topic)) {
        this.unbox(pos);
        this.route(o.rec, o.app);
        taken = true;
      }
    }
    if (taken) {
      try {
        await this.commit();
      } catch (e) {
        // Undone: the events stay in the outbox, and the next load of a
        // subscriber takes them again.
        console.error(`roam: moving ${mod.app}'s events from the outbox to its queues was not saved`, e);
      }
    }
    this.schedule(0);
  }

  // ---- calls ----

  // callHTTP is host.Server.serveCall: it returns the status and body the
  // HTTP transport would. trace is the caller's W3C trace context
  // ({traceparent, tracestate}, as the traceparent and tracestate headers of
  // an HTTP call), ignored when its traceparent does not parse.
  callHTTP(app, method, body, trace, deadline) {
    const mod = this.modules.get(app);
    if (!mod && this.unloadable.has(app)) {
      return reply(new RoamError(Unavailable, `app ${quoteName(app)} could not be loaded again into the new roam worker: ${this.unloadable.get(app)}`));
    }
    if (!mod) return reply(new RoamError(NotFound, `no app ${quoteName(app)} here; apps: ${this.appIDs().join(', ')}`));
    if (body.length > this.opts.maxBodyBytes) {
      return { status: 413, body: errorBody(InvalidArgument, `request body exceeds ${this.opts.maxBodyBytes} bytes`) };
    }
    if (body.length > 0 && !validJSON(body)) return reply(new RoamError(InvalidArgument, 'request body is not valid JSON'));
    const r = this.call(mod, method, body, traceContext(trace?.traceparent, trace?.tracestate), deadline);
    if (r.code !== OK) return reply(new RoamError(r.code, r.message));
    if (r.body.length === 0) return { status: 204, body: empty };
    return { status: 200, body: r.body };
  }

  // call is host.Server.call: method lookup, deadline, and the guest call.
  // deadline, when given, is the one the page set when it sent the call
  // (its time waiting for the calls before it counts, as a server's
  // request timeout counts from the request's arrival).
  call(mod, method, body, trace = null, given = undefined) {
    if (!mod.manifest.methods.includes(method)) {
      return { code: NotFound, message: `app ${goQuote(mod.app)} has no method ${quoteName(method)}; it has: ${mod.manifest.methods.join(', ')}` };
    }
    const outer = this.deadlines[this.deadlines.length - 1];
    const deadline = outer ?? given ?? Date.now() + this.opts.timeoutMs;
    const r = this.run(mod, KindMethod, method, body, deadline, undefined, trace);
    if (r.code !== OK && r.code !== DeadlineExceeded && Date.now() >= deadline) {
      r.message = `${mod.app}.${method}: deadline exceeded: ${r.message}`;
      r.code = DeadlineExceeded;
    }
    return r;
  }

  // run calls into a module and returns {code, body} or {code, message}.
  // A trap of another instance than the caller's becomes an Internal error;
  // one of the caller's own instance (re-entered) unwinds through it.
  run(mod, kind, name, body, deadline, callerInst, trace = null) {
    this.deadlines.push(deadline);
    this.traces.push(trace);
    try {
      const f = mod.handle(kind, name, body, deadline, trace);
      if (f.code === OK) return { code: OK, body: f.payload };
      return { code: f.code < 8 ? f.code : Internal, message: fromUTF8(f.payload) };
    } catch (e) {
      if (e instanceof RoamError) return { code: e.code, message: e.message }; // re-creating the instance failed
      if (!(e instanceof Trap)) throw e;
      if (callerInst && e.inst === callerInst) throw e;
      const what = kind === KindMethod ? name : `event ${name}`;
      console.error(`[${mod.label()}] ${what}: the module trapped (${e.message}); its instance was discarded`);
      return { code: Internal, message: `${mod.label()} ${what}: the module trapped (${e.message}); its instance was discarded and will be re-created` };
    } finally {
      this.deadlines.pop();
      this.traces.pop();
    }
  }

  // ---- imports ----

  imports(mod, inst) {
    const op = (name, fn) => (ptr, len) => this.dispatch(mod, inst, name, fn, ptr >>> 0, len >>> 0);
    return {
      state_get: op('state_get', this.opStateGet),
      state_bulk_get: op('state_bulk_get', this.opStateBulkGet),
      state_set: op('state_set', this.opStateSet),
      state_delete: op('state_delete', this.opStateDelete),
      state_transact: op('state_transact', this.opStateTransact),
      publish: op('publish', this.opPublish),
      invoke: op('invoke', this.opInvoke),
      config_get: op('config_get', this.opConfigGet),
      secret_get: op('secret_get', this.opSecretGet),
      log: op('log', this.opLog),
      take_result: (ptr) => {
        const p = inst.pending;
        inst.pending = null;
        // Out of bounds throws a RangeError: the guest traps, as on wazero.
        if (p && p.length) new Uint8Array(inst.memory.buffer).set(p, ptr >>> 0);
      },
    };
  }

  // dispatch runs one operation import: every failure becomes a code and a
  // message for the guest, except traps, which must unwind it.
  //
  // An operation that writes (state, publish) runs in a savepoint
  // (Store.begin): one that throws anything but its RoamError (the JS
  // stack exhausted by a guest that recursed through its imports, say) is
  // undone whole first, so that no item is left changed in memory but not
  // staged, nor a transaction half applied.
  dispatch(mod, inst, name, fn, ptr, len) {
    let out;
    const writes = mutating.has(name);
    const published = this.published.length;
    try {
      if (ptr + len > inst.memory.buffer.byteLength) throw new RoamError(InvalidArgument, `${name}: request [${ptr}, +${len}) is outside the module's memory`);
      const req = new Uint8Array(inst.memory.buffer, ptr, len).slice();
      if (writes) this.store.begin();
      out = fn.call(this, mod, new Reader(req), inst, name) ?? empty;
      if (writes) this.store.end();
    } catch (e) {
      if (writes && this.store.open) {
        this.store.rollback();
        this.published.length = Math.min(this.published.length, published);
      }
      if (e instanceof Trap || e instanceof WASIProcExit) throw e;
      const err = e instanceof RoamError ? e : new RoamError(Internal, `${name}: host error: ${e?.message ?? e}`);
      if (!(e instanceof RoamError)) console.error(e);
      out = utf8(err.message);
      inst.pending = out;
      return pack(err.code, out.length);
    }
    inst.pending = out;
    return pack(OK, out.length);
  }

  appOf(mod) {
    if (!mod.app) {
      throw new RoamError(FailedPrecondition, 'state, publish and invoke are not available while the host reads a module\'s manifest (during roam_init): use them from handlers, not from setup');
    }
    return mod.app;
  }

  opStateGet(mod, r, inst, name) {
    const store = r.string(), key = r.string();
    if (!r.done()) throw malformed(name);
    const it = this.store.get(this.appOf(mod), store, key);
    return new Writer(it.value.length + 16).bytes(it.value).string(it.etag).finish();
  }

  opStateBulkGet(mod, r, inst, name) {
    const store = r.string();
    const keys = [];
    for (let n = r.count(), i = 0; i < n; i++) keys.push(r.string());
    if (!r.done()) throw malformed(name);
    const w = new Writer();
    for (const it of this.store.bulkGet(this.appOf(mod), store, keys)) w.bytes(it.value).string(it.etag);
    return w.finish();
  }

  opStateSet(mod, r, inst, name) {
    const store = r.string(), key = r.string(), value = r.bytes();
    const o = readOptions(r, name);
    if (!r.done()) throw malformed(name);
    this.store.set(this.appOf(mod), store, key, value, o);
  }

  opStateDelete(mod, r, inst, name) {
    const store = r.string(), key = r.string();
    const o = readOptions(r, name);
    if (!r.done()) throw malformed(name);
    this.store.delete(this.appOf(mod), store, key, o);
  }

  opStateTransact(mod, r, inst, name) {
    const store = r.string();
    const ops = [];
    for (let n = r.count(), i = 0; i < n; i++) {
      const kind = r.uvarint(), key = r.string(), value = r.bytes();
      const o = readOptions(r, name);
      if (kind !== 1 && kind !== 2) throw new RoamError(InvalidArgument, `state_transact: unknown op kind ${kind}`);
      ops.push({ kind, key, value, ...o });
    }
    if (!r.done()) throw malformed(name);
    this.store.transact(this.appOf(mod), store, ops);
  }

  opPublish(mod, r, inst, name) {
    const m = { pubsub: r.string(), topic: r.string(), data: r.bytes(), contentType: r.string(), type: r.string(), metadata: {} };
    for (let n = r.count(), i = 0; i < n; i++) m.metadata[r.string()] = r.string();
    // The trace context is read and dropped: events do not carry one here,
    // as the server's publish API (host/statesync.go) would not read it.
    readTrace(r);
    if (!r.done()) throw malformed(name);
    this.publish(this.appOf(mod), m);
  }

  // opInvoke runs an invocation under the trace context the guest sent
  // with it or, when it sent none that parses, under its call's (as the
  // edge host's callState.traced): the callee's Call carries it, and so do
  // the traceparent and tracestate headers of a remote invocation.
  opInvoke(mod, r, inst, name) {
    const app = r.string(), method = r.string(), data = r.bytes();
    const sent = readTrace(r);
    if (!r.done()) throw malformed(name);
    const trace = sent ?? this.traces[this.traces.length - 1] ?? null;
    const caller = this.appOf(mod);
    const target = this.modules.get(app);
    if (!target) return this.remoteInvoke(caller, app, method, data, trace);
    if (!target.manifest.methods.includes(method)) {
      throw new RoamError(NotFound, `app ${goQuote(app)} has no method ${quoteName(method)}; it has: ${target.manifest.methods.join(', ')}`);
    }
    const deadline = this.deadlines[this.deadlines.length - 1] ?? Date.now() + this.opts.timeoutMs;
    const res = this.run(target, KindMethod, method, data, deadline, inst, trace);
    if (res.code !== OK) throw new RoamError(res.code, res.message);
    return res.body;
  }

  opConfigGet(mod, r, inst, name) {
    const key = r.string();
    if (!r.done()) throw malformed(name);
    const v = this.opts.config[key];
    if (typeof v !== 'string') throw new RoamError(NotFound, `config key ${goQuote(key)} is not set`);
    return utf8(v);
  }

  opSecretGet(mod, r, inst, name) {
    const store = r.string(), key = r.string();
    if (!r.done()) throw malformed(name);
    const st = this.opts.secrets[store];
    if (!st) throw new RoamError(NotFound, `secret store ${goQuote(store)} does not exist`);
    if (typeof st[key] !== 'string') throw new RoamError(NotFound, `secret ${goQuote(key)} not found in store ${goQuote(store)}`);
    return utf8(st[key]);
  }

  opLog(mod, r, inst, name) {
    const zz = r.uvarint();
    const level = zz % 2 ? -(zz + 1) / 2 : zz / 2; // zigzag
    const msg = r.string();
    const attrs = {};
    for (let n = r.count(), i = 0; i < n; i++) attrs[r.string()] = r.string();
    if (!r.done()) throw malformed(name);
    const line = `[${mod.label()}] ${msg}`;
    if (level >= 8) console.error(line, attrs);
    else if (level >= 4) console.warn(line, attrs);
    else if (level >= 0) console.info(line, attrs);
    else console.debug(line, attrs);
  }

  // remoteInvoke calls an app that is not loaded here on the remote host,
  // synchronously (the guest is waiting inside its import call; workers may
  // block on XMLHttpRequest). The trace context goes in the traceparent and
  // tracestate headers, which the server's ingress parents its spans on,
  // when sendTrace (wire.js) allows. The request follows redirects, as
  // every synchronous XMLHttpRequest does; a reply that came through one
  // (a gateway's sign-in page) is refused (redirectError), whatever it
  // says: the guest gets Unavailable, as sync does for a redirect.
  remoteInvoke(caller, app, method, data, trace) {
    const remote = this.opts.remote;
    if (!remote) throw new RoamError(Unavailable, `invoke ${app}.${method}: app ${app} is not loaded in this page and no remote host is configured`);
    const url = `${remote.replace(/\/+$/, '')}/v1/apps/${encodeURIComponent(app)}/methods/${encodeURIComponent(method)}`;
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url, false);
    xhr.responseType = 'arraybuffer';
    const left = (this.deadlines[this.deadlines.length - 1] ?? Date.now() + this.opts.timeoutMs) - Date.now();
    xhr.timeout = Math.max(1, left);
    xhr.setRequestHeader('Content-Type', 'application/json');
    if (trace && sendTrace(this.opts.traceHeaders, url)) {
      xhr.setRequestHeader('traceparent', trace.traceparent);
      if (trace.tracestate) xhr.setRequestHeader('tracestate', trace.tracestate);
    }
    try {
      xhr.send(data);
    } catch (e) {
      throw new RoamError(Unavailable, `invoke ${app}.${method}: app ${app} at ${remote} is unreachable: ${e.message}`);
    }
    const redirected = redirectError(`invoke ${app}.${method}: app ${app} at ${remote}`, url, xhr);
    if (redirected) throw redirected;
    const body = new Uint8Array(xhr.response ?? new ArrayBuffer(0));
    if (xhr.status >= 200 && xhr.status < 300) return body;
    try {
      const eb = JSON.parse(fromUTF8(body));
      if (eb.code) {
        const c = parseCode(eb.code);
        throw new RoamError(c === OK ? Internal : c, eb.message);
      }
    } catch (e) {
      if (e instanceof RoamError) throw e;
    }
    throw new RoamError(statusCode(xhr.status), `invoke ${app}.${method}: HTTP ${xhr.status}: ${fromUTF8(body).slice(0, 200)}`);
  }

  // ---- pub/sub ----

  // publish wraps a message in a CloudEvents record and routes it.
  publish(app, m) {
    if (!m.pubsub || !m.topic) {
      throw new RoamError(InvalidArgument, `publish: pubsub and topic are required (got ${goQuote(m.pubsub)}/${goQuote(m.topic)})`);
    }
    if (m.pubsub.includes('\0')) throw new RoamError(InvalidArgument, `pubsub name ${goQuote(m.pubsub)} contains NUL`);
    const rec = {
      id: uuid(), source: app, type: m.type || 'roam.event', time: new Date().toISOString(),
      datacontenttype: m.contentType || 'application/json', pubsubname: m.pubsub, topic: m.topic,
      data: m.data.slice(), metadata: m.metadata ?? {},
    };
    // The call's trace context goes with the event (the CloudEvents
    // traceparent extension), as the Go hosts put their producer span's
    // there; sync forwards it to the server's publish as headers.
    const trace = this.traces[this.traces.length - 1];
    if (trace) {
      rec.traceparent = trace.traceparent;
      if (trace.tracestate) rec.tracestate = trace.tracestate;
    }
    // An event for the server that could never be forwarded is refused
    // now, while the app can still be told, rather than accepted and then
    // parked by sync.
    if (!this.subs.has(rec.pubsubname + '\0' + rec.topic)) {
      const why = this.unforwardable(rec);
      if (why) throw new RoamError(InvalidArgument, `publish ${rec.pubsubname}/${rec.topic}: ${why}`);
    }
    this.route(rec, app);
  }

  // unforwardable says why rec cannot be forwarded to the server, or ''.
  unforwardable(rec) {
    const n = forwardBytes(rec), max = this.opts.remoteMaxBodyBytes;
    if (n <= max) return '';
    return `no module in this page subscribes to the topic, so the event goes to the server, but forwarding it takes a ${n}-byte request (its ${rec.data.length} bytes of data base64-encoded in JSON), over the server's limit of ${max} bytes`;
  }

  // route appends rec to the queue of every subscription on its topic in
  // this worker, or, when there is none, to the outbox the page forwards to
  // the server. Both are written with the call's state, in one transaction.
  // Every change to the queues and the outbox in memory registers its undo
  // (store.onUndo): a commit that fails takes them back with the state.
  route(rec, from) {
    const subs = this.subs.get(rec.pubsubname + '\0' + rec.topic) ?? [];
    this.enqueue(rec, subs);
    if (subs.length === 0) {
      // Only a dead-lettered event gets here too big (publish refuses
      // others): parked, as it could never be forwarded.
      const why = this.unforwardable(rec);
      if (why) console.warn(`[${from}] pubsub: parking event ${rec.id} of ${rec.pubsubname}/${rec.topic}: ${why}`);
      this.box(this.nextPos(), why ? { app: from, rec, parked: true, reason: why } : { app: from, rec });
    }
    this.published.push(rec);
  }

  // enqueue appends rec to the queue of each of subs.
  enqueue(rec, subs) {
    for (const s of subs) {
      const key = [s.app, s.pubsub, s.topic, this.nextPos()];
      const entry = { key, rec };
      s.queue.push(entry);
      this.store.onUndo(() => {
        const i = s.queue.lastIndexOf(entry);
        if (i >= 0) s.queue.splice(i, 1);
      });
      this.store.stage('queue', key, rec);
    }
  }

  // box puts an entry into the outbox at pos, unbox takes it out.
  box(pos, o) {
    const old = this.outbox.get(pos);
    this.outbox.set(pos, o);
    this.store.onUndo(() => (old ? this.outbox.set(pos, old) : this.outbox.delete(pos)));
    this.store.stage('outbox', pos, o);
  }

  unbox(pos) {
    const old = this.outbox.get(pos);
    if (!old) return;
    this.outbox.delete(pos);
    this.store.onUndo(() => this.outbox.set(pos, old));
    this.store.stage('outbox', pos, undefined);
  }

  nextPos() {
    this.store.stage('meta', 'pos', ++this.pos);
    return this.pos;
  }

  // schedule runs the delivery pump after ms, unless it is due sooner.
  schedule(ms) {
    const at = Date.now() + ms;
    if (this.pumpTimer !== null && this.pumpAt <= at) return;
    clearTimeout(this.pumpTimer);
    this.pumpAt = at;
    this.pumpTimer = setTimeout(() => {
      this.pumpTimer = null;
      this.pumpAt = Infinity;
      this.serial(() => this.pump());
    }, ms);
  }

  // pump delivers the head of every subscription queue that is due, one
  // event each, then commits. Calls from the page interleave between pumps.
  // The rules are core.Loop's: an error retries with backoff, and after
  // MaxAttempts, or at once for InvalidArgument, the event moves to the
  // dead-letter topic, or is parked if that topic is one it already failed
  // on for good (its own, or one of a cycle of dead-letter topics).
  async pump() {
    const settled = []; // looped events dead-lettered in this round
    this.announced = false;
    try {
      await this.deliver(settled);
    } finally {
      // The page watches what was announced (onDeliver) until this.
      if (this.announced || settled.length > 0) this.onDelivered?.(settled);
    }
  }

  // deliver is one round of pump.
  async deliver(settled) {
    const now = Date.now();
    let next = Infinity, delivered = false;
    for (const s of this.allSubs) {
      if (s.queue.length === 0) continue;
      if (s.nextAt > now) {
        next = Math.min(next, s.nextAt);
        continue;
      }
      delivered = true;
      const head = s.queue[0];
      const mod = this.modules.get(s.app);
      const key = JSON.stringify(head.key);
      let r;
      if (this.looped.has(key)) {
        // Its handler held the worker past its deadline last time, and the
        // page had to end that worker: delivering it again would do the same,
        // at every start. It is dead-lettered, as undeliverable.
        r = { code: DeadlineExceeded, message: `its handler did not return by its deadline (${this.opts.timeoutMs} ms) and held the roam worker, which was restarted` };
        settled.push(key);
      } else {
        const deadline = Date.now() + this.opts.timeoutMs;
        this.announced = true;
        this.onDeliver?.({ key, app: s.app, pubsub: s.pubsub, topic: s.topic, id: head.rec.id, deadline });
        r = this.run(mod, KindEvent, `${s.pubsub}/${s.topic}`, eventJSON(head.rec), deadline);
      }
      if (r.code === OK) {
        this.ack(s);
        continue;
      }
      s.failures++;
      const p = this.opts.retry;
      if (r.code === InvalidArgument || s.failures >= p.maxAttempts || this.looped.has(key)) {
        // An event dead-lettered back to a topic where it already failed
        // for good (its own, or one that dead-lettered it here: two
        // subscriptions naming each other's topics) is parked, as the Go
        // backends park it (core.Record.Loops); it would otherwise go round
        // for ever. deadletters are the topics it was dead-lettered from.
        const from = head.rec.deadletters ?? [];
        if (s.dl === s.topic || from.includes(s.dl)) {
          const reason = `failed on ${[...from, s.topic].join(' -> ')} after ${s.failures} attempts, and its dead-letter topic ${s.dl} is one of those: ${r.message}`;
          console.error(`[${s.app}] pubsub: parking event ${head.rec.id} of ${s.pubsub}/${s.topic}, not delivered again: ${reason}`);
          this.box(this.nextPos(), { app: s.app, rec: head.rec, parked: true, reason });
        } else {
          console.warn(`[${s.app}] pubsub: dead-lettering event ${head.rec.id} of ${s.pubsub}/${s.topic} to ${s.dl} after ${s.failures} attempts: ${r.message}`);
          this.route({ ...head.rec, topic: s.dl, deadletters: [...from, head.rec.topic] }, s.app);
        }
        this.ack(s);
        continue;
      }
      let d = p.initialBackoffMs;
      for (let i = 1; i < s.failures && d < p.maxBackoffMs; i++) d *= 2;
      s.nextAt = Date.now() + Math.min(d, p.maxBackoffMs);
      next = Math.min(next, s.nextAt);
    }
    try {
      await this.commit();
    } catch (e) {
      // Undone: the events are back at the heads of their queues, to be
      // delivered again (at least once) when saving works again.
      console.error('roam: saving deliveries failed; trying again later', e);
      settled.length = 0;
      this.schedule(this.opts.retry.maxBackoffMs);
      return;
    }
    for (const k of settled) this.looped.delete(k);
    if (delivered) this.schedule(0);
    else if (next < Infinity) this.schedule(Math.max(0, next - Date.now()));
  }

  ack(s) {
    const head = s.queue.shift();
    this.store.onUndo(() => s.queue.unshift(head));
    s.failures = 0;
    s.nextAt = 0;
    this.store.stage('queue', head.key, undefined);
  }

  // commit makes the writes of the calls so far durable, tells the other
  // tabs, and wakes the delivery pump for events they published.
  async commit() {
    const changed = this.store.takeChanged();
    const published = this.published;
    this.published = [];
    await this.store.flush();
    if (this.onCommit) this.onCommit(changed, published);
    if (published.length) this.schedule(0);
  }

  // ---- sync support (the page does the network I/O) ----

  // syncOut lists what to push and pull: every store's outgoing changes,
  // its keys to refresh, and the events waiting for the server.
  syncOut() {
    const stores = [];
    for (const app of this.appIDs()) {
      for (const store of this.store.stores(app)) {
        stores.push({ app, store, ops: this.store.outgoing(app, store), keys: this.store.keys(app, store) });
      }
    }
    // In publish order: an entry put back by an undo is at the Map's end.
    const events = [];
    for (const [pos, o] of this.outbox) if (!o.parked) events.push({ pos, app: o.app, rec: o.rec });
    events.sort((a, b) => a.pos - b.pos);
    return { stores, events };
  }

  // eventsDone records what sync did with outbox events: sent (positions)
  // are gone; parked ({pos, reason}) will never be accepted by the server.
  eventsDone(sent, parked) {
    for (const pos of sent) this.unbox(pos);
    for (const p of parked) {
      const o = this.outbox.get(p.pos);
      if (!o) continue;
      console.warn(`[${o.app}] pubsub: parking event ${o.rec.id} of ${o.rec.pubsubname}/${o.rec.topic}: ${p.reason}`);
      this.box(p.pos, { ...o, parked: true, reason: p.reason });
    }
  }

  // retry takes back what sync set aside, as the page asks (Host.retry):
  // the changes the server refused are pushed again at the next sync, and
  // the parked events are sent again. what names them ({keys: [{app, store,
  // key}], events: [pos or {pos}]}); null means all of both. Everything
  // named is checked before anything changes, so a name that is not set
  // aside (any more) throws NotFound and changes nothing. The caller
  // commits, as for every change.
  retry(what) {
    const { keys, events } = this.setAside(what, 'retry');
    for (const r of keys) this.store.retryRejected(r);
    for (const pos of events) this.unpark(pos);
    return { keys: keys.length, events: events.length };
  }

  // discard drops what sync set aside, for good: a refused change gives way
  // to the server's version (Store.discardRejected), a parked event is
  // deleted unsent. Nothing is dropped that what does not name: a page
  // that means everything names it all (status() lists it).
  discard(what) {
    if (!what || ((what.keys ?? []).length === 0 && (what.events ?? []).length === 0)) {
      throw new RoamError(InvalidArgument, 'discard: name the refused changes ({keys: [{app, store, key}]}) or parked events ({events: [pos]}) to drop; status() lists them');
    }
    const { keys, events } = this.setAside(what, 'discard');
    for (const r of keys) this.store.discardRejected(r);
    for (const pos of events) {
      const o = this.outbox.get(pos);
      console.warn(`[${o.app}] pubsub: discarding parked event ${o.rec.id} of ${o.rec.pubsubname}/${o.rec.topic}, as the page asked`);
      this.unbox(pos);
    }
    return { keys: keys.length, events: events.length };
  }

  // setAside resolves what (see retry) to the refused items and the
  // positions of the parked events it names, each once.
  setAside(what, op) {
    if (what === null || what === undefined) {
      const events = [];
      for (const [pos, o] of this.outbox) if (o.parked) events.push(pos);
      return { keys: this.store.allRejected(), events: events.sort((a, b) => a - b) };
    }
    const list = (v, name) => {
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v)) throw new RoamError(InvalidArgument, `${op}: ${name} must be a list`);
      return v;
    };
    const keys = new Map();
    for (const k of list(what.keys, 'keys')) {
      if (typeof k?.app !== 'string' || typeof k.store !== 'string' || typeof k.key !== 'string') {
        throw new RoamError(InvalidArgument, `${op}: a key is named {app, store, key}, as status().rejected lists it`);
      }
      keys.set(JSON.stringify([k.app, k.store, k.key]), this.store.rejectedItem(k.app, k.store, k.key));
    }
    const events = new Set();
    for (const e of list(what.events, 'events')) {
      const pos = typeof e === 'number' ? e : e?.pos;
      if (typeof pos !== 'number') throw new RoamError(InvalidArgument, `${op}: an event is named by its pos, as status().parked lists it`);
      if (!this.outbox.get(pos)?.parked) throw new RoamError(NotFound, `no parked event at ${pos}`);
      events.add(pos);
    }
    return { keys: [...keys.values()], events: [...events] };
  }

  // unpark puts a parked event back where a publish of it would go now:
  // the queues of the modules here that subscribe to its topic (one
  // loaded since, or the subscriber whose dead-letter topic it failed on),
  // to be delivered afresh, or else the outbox, in its old place, for the
  // next sync to forward (which parks it again, unsent, if it is still too
  // big for remoteMaxBodyBytes).
  unpark(pos) {
    const o = this.outbox.get(pos);
    const subs = this.subs.get(o.rec.pubsubname + '\0' + o.rec.topic) ?? [];
    if (subs.length > 0) {
      this.unbox(pos);
      this.enqueue(o.rec, subs);
    } else this.box(pos, { app: o.app, rec: o.rec });
  }

  status() {
    const s = this.store.status();
    const boxed = [...this.outbox].sort((a, b) => a[0] - b[0]);
    s.events = boxed.filter(([, o]) => !o.parked).length;
    // Parked events: refused by the server, or failed on their own
    // dead-letter topic or a cycle of them. They stay in IndexedDB, and
    // are not sent until the page retries them. pos, their place in the
    // outbox, names them to retry and discard (a CloudEvent id need not be
    // unique: a dead-lettered copy keeps its event's).
    s.parked = boxed.filter(([, o]) => o.parked).map(([pos, o]) => ({
      pos, app: o.app, id: o.rec.id, pubsub: o.rec.pubsubname, topic: o.rec.topic, type: o.rec.type,
      time: o.rec.time, reason: o.reason ?? 'failed on its dead-letter topic',
    }));
    s.apps = this.appIDs();
    return s;
  }
}

function reply(err) {
  return { status: httpStatus(err.code), body: errorBody(err.code, err.message) };
}

// appIDError is sdk.ValidAppID: an app id is a DNS label. It returns the
// error's message, or '' for a valid id.
function appIDError(id) {
  const n = utf8(id).length;
  if (n === 0 || n > 63) return 'app id must be 1 to 63 characters';
  for (let i = 0; i < id.length; i++) {
    const c = id[i];
    const ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c === '-' && i > 0 && i < id.length - 1);
    if (!ok) return `app id ${quoteName(id)} is not a DNS label (a-z, 0-9, inner '-')`;
  }
  return '';
}

// mutating are the imports that change state or queue events.
const mutating = new Set(['state_set', 'state_delete', 'state_transact', 'publish']);

function malformed(op) {
  return new RoamError(InvalidArgument, `${op}: malformed request`);
}

// readOptions decodes WriteOptions: ETag, TTL in ms, flags.
function readOptions(r, op) {
  const etag = r.string(), ttlMs = r.int64(), flags = r.uvarint();
  if (r.err) throw malformed(op);
  if (flags & ~1) throw new RoamError(InvalidArgument, `${op}: unknown write flags 0x${flags.toString(16)} (a module built for a newer ABI?)`);
  return { etag, ttlMs, ifAbsent: (flags & 1) !== 0 };
}

// checkShape reads a compiled module's imports and exports and names what
// makes it unusable before anything runs.
function checkShape(compiled, name) {
  for (const imp of WebAssembly.Module.imports(compiled)) {
    if (imp.module.startsWith(importPrefix) && imp.module !== ImportModule) {
      throw new RoamError(FailedPrecondition, `${name} was built for ABI ${imp.module}, but this host implements ${ImportModule}: rebuild it with a roam of this host's version`);
    }
    if (imp.module === ImportModule && !importNames.includes(imp.name)) {
      throw new RoamError(FailedPrecondition, `${name} imports ${ImportModule}.${imp.name}, which this host does not provide (built for a newer minor version?)`);
    }
    if (imp.module !== ImportModule && imp.module !== 'wasi_snapshot_preview1') {
      throw new RoamError(FailedPrecondition, `${name} imports module ${imp.module}, which a Roam host does not provide`);
    }
  }
  const exports = WebAssembly.Module.exports(compiled).map((e) => e.name);
  for (const e of requiredExports) {
    if (!exports.includes(e)) {
      throw new RoamError(FailedPrecondition, `${name} is not a Roam module: it does not export ${e} (build it with roam build --target wasm)`);
    }
  }
}

function req(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}
