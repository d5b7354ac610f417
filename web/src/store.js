// State on IndexedDB, with the embedded backend's semantics
// (backend/embedded/state.go and backend/internal/core): per (app, store)
// key spaces, an ETag that is the store's next sequence number (so it changes
// on every write and never repeats for a key), first-write-wins on ETags,
// IfAbsent, TTL, all-or-nothing transactions, and the same error messages.
//
// The roam_v1 imports are synchronous: a guest waits for state_get's reply
// inside one wasm call, and IndexedDB only answers asynchronously. So every
// app's items live in memory (loaded when its module loads) and writes go to
// IndexedDB behind them: a call's writes are committed in one IndexedDB
// transaction after the call returns and before its reply is released
// (flush), so an acknowledged write is on disk, and a call's writes land
// together or not at all.
//
// A commit that fails (quota, a closed database) is undone in memory: a
// call answered "not saved" leaves no trace, neither for later calls nor
// for sync. Calls run while an earlier commit is still in flight, on top of
// its writes, so when that commit fails the calls behind it are undone and
// fail too: they may have read what it wrote. See flush.
//
// Each item also carries what sync needs: base, the server ETag the local
// copy derives from ('' when the server has never had it); dirty, whether it
// changed locally since it was last pushed; tomb, a deleted item the server
// still has (or, not dirty, one whose refused change was discarded, waiting
// for the server's version); conflict, set when sync found both sides
// changed; rejected, set when the server refused the change for good
// ({status, message}), until the page retries or discards it; sent, the
// change a push sent whose outcome the page did not learn (see sending).

import { RoamError, InvalidArgument, NotFound, Conflict, Unavailable, goQuote, quoteKey, keyInMessage, goMillis, utf8, sameBytes } from './wire.js';

// Limits of the embedded backend, whose messages the vectors compare.
const maxStoreName = 1 << 10;
const maxKey = 16 << 10;

const objectStores = ['items', 'seqs', 'queue', 'outbox', 'conflicts', 'meta'];

// DBVersion is the IndexedDB schema version this code creates and reads.
export const DBVersion = 1;

// openDB opens the database, creating it at DBVersion. Two cases need a
// word (web/README.md, "Tabs"):
//
//   - blocked: another tab holds the database open at an older version
//     while this one upgrades it. That is not an error: the request waits
//     until the other connection closes (Roam's workers close theirs at
//     once, on versionchange; a looping one when its page restarts it),
//     and opens then. Rejecting here would leave the request pending,
//     and the connection it opens later leaked, never closed, blocking
//     every later upgrade or deletion from other tabs.
//   - VersionError: a newer version of the page, in another tab, has
//     upgraded the database. This page cannot use it, and says so.
export function openDB(name, version = DBVersion) {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = (e) => {
      const db = r.result;
      for (const s of objectStores) if (e.oldVersion === 0 || !db.objectStoreNames.contains(s)) db.createObjectStore(s);
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => {
      const e = r.error;
      if (e?.name === 'VersionError') {
        reject(new RoamError(Unavailable, `IndexedDB ${name} was upgraded by a newer version of this page (in another tab?) past version ${version}, the one this page reads: reload the page (${describe(e)})`));
        return;
      }
      reject(new RoamError(Unavailable, `opening IndexedDB ${name}: ${describe(e)}`));
    };
    r.onblocked = (e) => {
      console.warn(`roam: opening IndexedDB ${name} at version ${e.newVersion ?? version} waits for another tab to close its connection (at version ${e.oldVersion})`);
    };
  });
}

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

// describe names an IndexedDB failure: DOMExceptions carry the useful
// part (QuotaExceededError, InvalidStateError) in their name.
function describe(e) {
  if (!e) return 'unknown error';
  const msg = e.message || String(e);
  return e.name && e.name !== 'Error' && !msg.startsWith(e.name) ? `${e.name}: ${msg}` : msg;
}

// snapshot copies a staged write's record as it is now: records are
// changed in place later (sync marks them clean), and a batch must write
// what its calls saw, not what a later call made of it.
function snapshot(p) {
  const v = p.value;
  const plain = v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !Array.isArray(v);
  return { os: p.os, key: p.key, value: plain ? { ...v } : v };
}

// appRange selects the records of one app: keys [app, ...].
const appRange = (app) => IDBKeyRange.bound([app], [app, []]);

const ia = (m) => new RoamError(InvalidArgument, m);

function checkStore(store) {
  if (store === '') throw ia('state store name is empty');
  if (utf8(store).length > maxStoreName) throw ia(`state store name is longer than ${maxStoreName} bytes`);
}
function checkKey(key) {
  if (key === '') throw ia('state key is empty');
}
function checkKeyLen(key) {
  if (key.length > maxKey / 3 && utf8(key).length > maxKey) throw ia(`state key is longer than ${maxKey} bytes`);
}
function checkSet(key, o) {
  checkKey(key);
  if (o.etag !== '' && o.ifAbsent) throw ia(`state ${quoteKey(key)}: ETag and IfAbsent exclude each other`);
  if (o.ttlMs < 0) throw ia(`state ${quoteKey(key)}: negative TTL ${goMillis(o.ttlMs)}`);
}
function checkDelete(key, o) {
  checkKey(key);
  if (o.ifAbsent) throw ia(`state ${quoteKey(key)}: IfAbsent applies to Set only`);
}

// precondition is core.Precondition.
function precondition(key, exists, cur, o) {
  if (o.ifAbsent && exists) throw new RoamError(Conflict, `state ${quoteKey(key)}: key already exists`);
  if (o.etag !== '' && !exists) throw new RoamError(Conflict, `state ${quoteKey(key)}: ETag ${o.etag} given but the key does not exist`);
  if (o.etag !== '' && o.etag !== cur) throw new RoamError(Conflict, `state ${quoteKey(key)}: ETag ${o.etag} is stale`);
}

// sentOf is the sent marker (Store.sending) that a new version of old
// keeps: old's, with the value that was sent when old is that version (a
// lost push's write is recognised by its bytes once the key changed).
function sentOf(old) {
  const s = old?.sent;
  if (!s) return null;
  if ('value' in s) return s;
  if (old.seq !== s.seq || old.tomb !== s.tomb) return null;
  return { ...s, value: old.tomb ? null : old.value };
}

export class Store {
  constructor(db) {
    this.db = db;
    this.apps = new Map(); // app -> store name -> {seq, items: Map key -> record}
    this.conflicts = new Map(); // JSON [app, store, key] -> conflict entry
    this.pending = new Map(); // staged IndexedDB writes
    this.undo = []; // functions that take memory back to before the staged writes
    this.batches = []; // flushed batches not settled yet, oldest first
    this.tail = Promise.resolve(); // settles with the last batch; never rejects
    this.doomed = null; // the error of a staged batch undone by a failed commit
    this.changed = []; // records changed since the last flush, for other tabs
    this.closed = null; // why the database connection is gone
    this.onClosed = null;
    // gen counts the commits to the database, of every tab: each batch
    // writes the next one (meta 'gen'). A tab takes its turn at the
    // database (Lease) and reads it again when gen moved since its own
    // last commit: another tab wrote. null until read (Runtime.init).
    this.gen = null;
    this.onStale = null;
    this.open = null; // the savepoint of a guest's operation (begin)
    this.journal = null; // [id, staged write before] since begin
    // A connection the browser closes (site data cleared) or another tab
    // needs closed (it deletes or upgrades the database) is gone for good:
    // nothing more can be saved through it, and memory no longer matches
    // the disk. The worker is replaced (onClosed), which reopens the
    // database and reads it afresh.
    db.onclose = () => this.gone(`IndexedDB ${db.name} was closed by the browser (site data cleared?)`);
    db.onversionchange = () => {
      db.close();
      this.gone(`IndexedDB ${db.name} is being deleted or upgraded by another tab`);
    };
  }

  gone(why) {
    if (this.closed) return;
    this.closed = why;
    this.onClosed?.(why);
  }

  // load reads an app's items, sequences and conflicts into memory.
  async loadApp(app) {
    if (this.apps.has(app)) return;
    const tx = this.db.transaction(['items', 'seqs', 'conflicts'], 'readonly');
    const [items, seqKeys, seqs, conflicts] = await Promise.all([
      request(tx.objectStore('items').getAll(appRange(app))),
      request(tx.objectStore('seqs').getAllKeys(appRange(app))),
      request(tx.objectStore('seqs').getAll(appRange(app))),
      request(tx.objectStore('conflicts').getAll(appRange(app))),
    ]);
    if (this.apps.has(app)) return;
    this.apps.set(app, new Map());
    seqKeys.forEach((k, i) => { this.space(app, k[1]).seq = seqs[i]; });
    for (const r of items) {
      const sp = this.space(app, r.store);
      sp.items.set(r.key, r);
      sp.seq = Math.max(sp.seq, r.seq);
    }
    for (const c of conflicts) this.conflicts.set(JSON.stringify([c.app, c.store, c.key]), c);
  }

  space(app, store) {
    let a = this.apps.get(app);
    if (!a) this.apps.set(app, (a = new Map()));
    let s = a.get(store);
    if (!s) a.set(store, (s = { seq: 0, items: new Map() }));
    return s;
  }

  // live returns the present, unexpired item under key, or null.
  live(sp, key, now) {
    const r = sp.items.get(key);
    if (!r || r.tomb || (r.expiry !== 0 && now >= r.expiry)) return null;
    return r;
  }

  // ---- the sdk.State operations ----

  get(app, store, key) {
    checkKey(key);
    checkStore(store);
    const r = this.live(this.space(app, store), key, Date.now());
    if (!r) throw new RoamError(NotFound, `state ${quoteKey(key)} not found`);
    return { value: r.value, etag: String(r.seq) };
  }

  bulkGet(app, store, keys) {
    keys.forEach(checkKey);
    checkStore(store);
    const sp = this.space(app, store);
    const now = Date.now();
    return keys.map((k) => {
      const r = this.live(sp, k, now);
      return r ? { value: r.value, etag: String(r.seq) } : { value: new Uint8Array(0), etag: '' };
    });
  }

  set(app, store, key, value, o) {
    checkSet(key, o);
    checkKeyLen(key);
    checkStore(store);
    const sp = this.space(app, store);
    const now = Date.now();
    const cur = this.live(sp, key, now);
    precondition(key, !!cur, cur ? String(cur.seq) : '0', o);
    this.put(app, store, sp, key, value, o.ttlMs, now);
  }

  delete(app, store, key, o) {
    checkDelete(key, o);
    checkKeyLen(key);
    checkStore(store);
    const sp = this.space(app, store);
    const cur = this.live(sp, key, Date.now());
    precondition(key, !!cur, cur ? String(cur.seq) : '0', o);
    this.del(app, store, sp, key);
  }

  // transact is embedded's Transact: validate every op, check every
  // precondition as if the earlier ops had been applied (core.CheckTransact),
  // and only then apply them all.
  transact(app, store, ops) {
    ops.forEach((op, i) => {
      if (op.kind === 1) checkSet(op.key, op);
      else if (op.kind === 2) checkDelete(op.key, op);
      else throw ia(`transaction op ${i}: unknown kind ${op.kind}`);
    });
    ops.forEach((op) => checkKeyLen(op.key));
    checkStore(store);
    if (ops.length === 0) return;
    const sp = this.space(app, store);
    const now = Date.now();
    const overlay = new Map();
    for (const op of ops) {
      let v = overlay.get(op.key);
      if (!v) {
        const r = this.live(sp, op.key, now);
        v = { exists: !!r, etag: r ? String(r.seq) : '0' };
      }
      precondition(op.key, v.exists, v.etag, op);
      // A key written earlier in the transaction has an ETag nobody knows.
      overlay.set(op.key, op.kind === 1 ? { exists: true, etag: '\0pending' } : { exists: false, etag: '' });
    }
    for (const op of ops) {
      if (op.kind === 1) this.put(app, store, sp, op.key, op.value, op.ttlMs, now);
      else this.del(app, store, sp, op.key);
    }
  }

  // put stores value with a fresh ETag; the item becomes dirty for sync.
  put(app, store, sp, key, value, ttlMs, now) {
    const old = sp.items.get(key);
    this.keep(sp, key);
    const r = {
      app, store, key, value: value.slice(), seq: ++sp.seq, expiry: ttlMs > 0 ? now + ttlMs : 0,
      base: old ? old.base : '', dirty: true, tomb: false, conflict: old ? old.conflict : false,
      sent: sentOf(old),
    };
    sp.items.set(key, r);
    this.stageItem(r);
    this.stage('seqs', [app, store], sp.seq);
  }

  // del removes key. An item the server has stays as a tombstone until the
  // delete is pushed.
  del(app, store, sp, key) {
    const old = sp.items.get(key);
    if (!old || old.tomb) return;
    this.keep(sp, key);
    const sent = sentOf(old);
    if (old.base === '' && !old.conflict && !sent) {
      sp.items.delete(key);
      this.stage('items', [app, store, key], undefined);
      this.changed.push({ app, store, key, gone: true });
      return;
    }
    const r = { ...old, value: new Uint8Array(0), expiry: 0, tomb: true, dirty: true, rejected: null, sent };
    sp.items.set(key, r);
    this.stageItem(r);
  }

  // ---- persistence ----

  stage(os, key, value) {
    const id = os + '\0' + JSON.stringify(key);
    this.journal?.push([id, this.pending.get(id)]);
    this.pending.set(id, { os, key, value });
  }

  // begin opens a savepoint around one operation of a guest's (a state
  // write, a publish): if it throws what it does not throw on purpose
  // (the JS stack exhausted by a guest recursing, memory that ran out),
  // it may stop half-way, after an item was changed in memory and before
  // it was staged, or between two ops of a transaction; rollback takes
  // memory and the staged writes back to begin, so that the operation
  // happened whole or not at all. end closes it.
  begin() {
    this.open = { undo: this.undo.length, changed: this.changed.length };
    this.journal = [];
  }

  end() {
    this.open = null;
    this.journal = null;
  }

  // rollback undoes the open savepoint, if any. It needs little stack, and
  // may be called again (from a shallower frame) if it ran out itself.
  rollback() {
    const m = this.open;
    if (!m) return;
    while (this.journal.length > 0) {
      const [id, old] = this.journal[this.journal.length - 1];
      if (old) this.pending.set(id, old);
      else this.pending.delete(id);
      this.journal.pop();
    }
    while (this.undo.length > m.undo) {
      this.undo[this.undo.length - 1]();
      this.undo.pop();
    }
    this.changed.length = Math.min(this.changed.length, m.changed);
    this.end();
  }

  // onUndo registers fn to take memory back if the staged writes are not
  // saved. The runtime's queues and outbox use it too.
  onUndo(fn) {
    this.undo.push(fn);
  }

  // keep records an item as it is before a change, for undo.
  keep(sp, key) {
    this.keepEntry(sp.items, key);
  }

  keepConflict(id) {
    this.keepEntry(this.conflicts, id);
  }

  // keepEntry records map's entry for key (a copy, or its absence), for undo.
  keepEntry(map, key) {
    const old = map.get(key);
    const copy = old && { ...old };
    this.undo.push(() => {
      if (copy) map.set(key, copy);
      else map.delete(key);
    });
  }

  stageItem(r) {
    this.stage('items', [r.app, r.store, r.key], r);
    this.changed.push(r);
  }

  // flush commits every staged write in one IndexedDB transaction and
  // resolves once it is durable, and once every earlier batch is: a call
  // that wrote nothing may still have read what an earlier call wrote, so
  // it answers only when that is saved. Batches commit one after the other.
  //
  // A batch that fails rejects with Unavailable, and memory goes back to
  // the last batch that was saved: its writes are undone, and so are those
  // of the batches behind it (calls that ran on top of it, which reject
  // too) and of anything staged since. So a call answered "not saved"
  // leaves nothing behind, in memory, on disk or for sync; and the next
  // batch is tried afresh, not chained onto the failure.
  flush() {
    const genBefore = this.gen;
    if (this.pending.size > 0 && !this.doomed) {
      this.gen = (this.gen ?? 0) + 1;
      this.stage('meta', 'gen', this.gen);
    }
    const b = { writes: [...this.pending.values()].map(snapshot), undo: this.undo, error: this.doomed, genBefore };
    this.pending = new Map();
    this.undo = [];
    this.doomed = null;
    this.batches.push(b);
    const done = this.tail.then(async () => {
      try {
        if (b.error) throw b.error;
        if (b.writes.length > 0) await this.write(b.writes, b.genBefore ?? 0);
      } catch (e) {
        if (!b.error) this.fail(b, e);
        throw b.error;
      } finally {
        this.batches.shift(); // b: the batches settle in order
      }
    });
    this.tail = done.catch(() => {});
    return done;
  }

  // write commits writes in one IndexedDB transaction. expected is the
  // gen the database must be at (this tab's last commit): the transaction
  // reads it first and aborts, writing nothing, when another writer
  // committed in between (a tab whose turn the Lease did not stop: a
  // worker being ended, a page without Web Locks). onStale is told, so
  // that memory is read again before the next operation.
  write(writes, expected) {
    if (this.closed) throw new Error(this.closed);
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(objectStores, 'readwrite', { durability: 'strict' });
      let raced = null;
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(raced ?? tx.error ?? new Error('IndexedDB transaction aborted'));
      const put = () => {
        try {
          for (const p of writes) {
            const os = tx.objectStore(p.os);
            if (p.value === undefined) os.delete(p.key);
            else os.put(p.value, p.key);
          }
        } catch (e) {
          try {
            tx.abort();
          } catch { /* already finished */ }
          reject(e);
        }
      };
      if (expected === undefined) {
        put();
        return;
      }
      const g = tx.objectStore('meta').get('gen');
      g.onsuccess = () => {
        if ((g.result ?? 0) === expected) {
          put();
          return;
        }
        raced = new Error(`another tab, or a worker of this page being ended, committed to IndexedDB ${this.db.name} at the same time (at ${g.result ?? 0}, expected ${expected}): try again`);
        this.onStale?.();
        try {
          tx.abort();
        } catch { /* already finished */ }
      };
    });
  }

  // fail undoes batch b, which failed with e, and every batch after it.
  fail(b, e) {
    const cause = this.full(e) ?? describe(e);
    b.error = new RoamError(Unavailable, `state was not saved: ${cause}`);
    this.gen = b.genBefore; // b and the batches after it never reached the disk
    const later = this.batches.slice(this.batches.indexOf(b) + 1);
    // Newest first: what is staged, the later batches, then b.
    const undo = [b.undo, ...later.map((l) => l.undo), this.undo].flat();
    for (let i = undo.length - 1; i >= 0; i--) undo[i]();
    const after = (wrote) => new RoamError(Unavailable, wrote
      ? `state was not saved: the call ran on top of an earlier call whose commit failed, so it was undone too (${cause})`
      : `the call may have read an earlier call's write that was then not saved, so it is not answered (${cause})`);
    for (const l of later) {
      l.error = after(l.writes.length > 0);
      l.undo = [];
    }
    if (this.pending.size > 0) this.doomed = after(true);
    this.pending = new Map();
    this.undo = [];
    this.changed = [];
  }

  // full says, for a commit that failed for the storage quota, what the
  // embedded backend says of a full disk (Unavailable, naming the storage,
  // and that nothing was half written), and null for another failure.
  full(e) {
    if (e?.name !== 'QuotaExceededError') return null;
    return `IndexedDB ${this.db.name} is full: the browser's storage quota for this site is used up (${describe(e)}): the write was rolled back, and the data written before is intact; free some of this site's storage, or ask the browser to keep more (navigator.storage.persist())`;
  }

  // takeChanged returns the records changed since the last call, as they
  // are now (copies: records are changed in place later, and the other
  // tabs are told what this commit wrote, not what a later call made of it).
  takeChanged() {
    const c = this.changed.map((r) => ({ ...r }));
    this.changed = [];
    return c;
  }

  // reload reads again, in the readonly transaction tx, the items,
  // sequences and conflicts of every app loaded here: another tab has
  // committed since this one last did (gen moved). Nothing may be staged.
  async reload(tx) {
    const apps = [...this.apps.keys()];
    const read = await Promise.all(apps.map((app) => Promise.all([
      request(tx.objectStore('items').getAll(appRange(app))),
      request(tx.objectStore('seqs').getAllKeys(appRange(app))),
      request(tx.objectStore('seqs').getAll(appRange(app))),
      request(tx.objectStore('conflicts').getAll(appRange(app))),
    ])));
    for (const [id, c] of this.conflicts) if (apps.includes(c.app)) this.conflicts.delete(id);
    apps.forEach((app, i) => {
      const [items, seqKeys, seqs, conflicts] = read[i];
      this.apps.set(app, new Map());
      seqKeys.forEach((k, j) => { this.space(app, k[1]).seq = seqs[j]; });
      for (const r of items) {
        const sp = this.space(app, r.store);
        sp.items.set(r.key, r);
        sp.seq = Math.max(sp.seq, r.seq);
      }
      for (const c of conflicts) this.conflicts.set(JSON.stringify([c.app, c.store, c.key]), c);
    });
  }

  // ---- sync ----

  stores(app) {
    return [...(this.apps.get(app)?.keys() ?? [])];
  }

  // outgoing lists the local changes of a store to push: each conditional
  // on the server ETag the change was made from. A change the server
  // refused for good is left out until the app writes the key again.
  outgoing(app, store) {
    const sp = this.space(app, store);
    const now = Date.now();
    const ops = [];
    for (const r of sp.items.values()) {
      if (!r.dirty || r.conflict || r.rejected) continue;
      const expired = r.expiry !== 0 && now >= r.expiry;
      if (r.tomb || expired) {
        if (r.base !== '') ops.push({ key: r.key, op: 'delete', etag: r.base, seq: r.seq, tomb: true });
        continue;
      }
      ops.push({
        key: r.key, op: 'set', value: r.value, seq: r.seq, tomb: false,
        etag: r.base, if_absent: r.base === '', ttl_ms: r.expiry ? Math.max(1, r.expiry - now) : 0,
      });
    }
    return ops;
  }

  // pushed records the server's items after a successful push of ops
  // (items[i] is op i's key's, as the page checked). It returns how many
  // became conflicts: a key the server answers absent right after a set
  // (one without a TTL, which would have expired) lost the change there,
  // to a delete or a server that did not keep it. Marking the change
  // pushed would leave the page a value the server does not have, clean,
  // never pushed again nor taken back by a pull; as a conflict both
  // versions are kept, and the page chooses.
  pushed(app, store, ops, items) {
    const sp = this.space(app, store);
    let conflicts = 0;
    ops.forEach((op, i) => {
      const r = sp.items.get(op.key);
      const srv = items[i];
      if (!r || !srv || srv.key !== op.key) return;
      if (op.op === 'set' && !srv.found && !op.ttl_ms && !r.conflict) {
        if (this.conflict(app, store, op.key, srv) === 'conflict') conflicts++;
        return;
      }
      this.keep(sp, op.key);
      const unchanged = r.seq === op.seq && r.tomb === op.tomb;
      if (op.op === 'delete' && unchanged && !srv.found) {
        sp.items.delete(op.key);
        this.stage('items', [app, store, op.key], undefined);
        return;
      }
      r.base = srv.found ? srv.etag : '';
      r.sent = null; // its outcome is known
      if (unchanged) {
        r.dirty = false;
        // Someone wrote the key on the server right after us: theirs is
        // the newer version, and we have no change of our own to keep.
        if (srv.found && !sameBytes(srv.value, r.value)) this.adopt(sp, r, srv);
      }
      this.stageItem(r);
    });
    return conflicts;
  }

  // sending records, before a push is sent, which change of each key it
  // sends ({seq, tomb} of ops): if the reply is lost (the tab closed or
  // crashed, the network dropped) after the server applied it, the next
  // push of the key, conditional on the same base, meets the page's own
  // write there and is refused as a conflict. ownPush then recognises it:
  // the server holds what was sent, so it is taken as pushed rather than
  // reported as a conflict of the page with itself. The marker stays on the
  // item until the outcome is known (a reply, a conflict, a pull); a later
  // write keeps it, with the value sent (sentOf).
  //
  // It returns the keys it marked afresh: a reply to this request that
  // proves it was not applied (409, 400, 413; a fetch that never left the
  // page, offline) takes those marks back (unsend), and a 409 to it is not
  // compared with them: it is the earlier, lost push that the server may
  // hold.
  sending(app, store, ops) {
    const sp = this.space(app, store);
    const fresh = [];
    for (const op of ops) {
      const r = sp.items.get(op.key);
      if (!r || r.seq !== op.seq || r.tomb !== op.tomb || !r.dirty) continue;
      // Already marked; or marked for an earlier version, whose push's
      // outcome is still unknown: that one is kept, as this push, if it
      // meets the server holding that version, recognises it there.
      if (r.sent && ('value' in r.sent || (r.sent.seq === op.seq && r.sent.tomb === op.tomb))) continue;
      this.keep(sp, op.key);
      r.sent = { seq: op.seq, tomb: op.tomb };
      this.stage('items', [app, store, op.key], r);
      fresh.push(op.key);
    }
    return fresh;
  }

  // unsend takes back the marks sending made afresh for a request that was
  // not applied.
  unsend(app, store, keys) {
    const sp = this.space(app, store);
    for (const key of keys) {
      const r = sp.items.get(key);
      if (!r?.sent) continue;
      this.keep(sp, key);
      r.sent = null;
      this.stage('items', [app, store, key], r);
    }
  }

  // ownPush tells whether srv, the server's item of r's key, is what a
  // push of r whose outcome was lost (r.sent) wrote there: a set of the same
  // bytes, or, for a delete, no item.
  ownPush(r, srv) {
    const s = r.sent;
    if (!s || r.conflict) return false;
    if (s.tomb) return !srv.found;
    if (!srv.found) return false;
    const value = 'value' in s ? s.value : (r.seq === s.seq && !r.tomb ? r.value : null);
    return value != null && sameBytes(srv.value, value);
  }

  // tookOwn records that the server holds r's lost push (ownPush): its base
  // becomes the server's ETag, and the change is pushed, unless r changed
  // since (then that change is pushed next, on the new base). It returns
  // whether r still has a change to push.
  tookOwn(app, store, r, srv) {
    const sp = this.space(app, store);
    this.keep(sp, r.key);
    const same = r.seq === r.sent.seq && r.tomb === r.sent.tomb;
    r.base = srv.found ? srv.etag : '';
    r.sent = null;
    if (same) r.dirty = false;
    if (r.tomb && (same || r.base === '')) {
      // Deleted on the server, or never pushed with nothing to push.
      sp.items.delete(r.key);
      this.stage('items', [app, store, r.key], undefined);
      return false;
    }
    this.stageItem(r);
    return r.dirty;
  }

  // rejected records that the server refused the pushed change of key for
  // good (a 400 or 413 for that op alone): status() reports it, and sync
  // stops pushing it, until the app writes the key again (put and del
  // make a record without it), the page retries or discards it
  // (retryRejected, discardRejected), or keeps it with resolve. A change
  // made since the push is not marked: it is pushed as usual.
  rejected(app, store, op, status, message) {
    const sp = this.space(app, store);
    const r = sp.items.get(op.key);
    if (!r || r.seq !== op.seq || r.tomb !== op.tomb || !r.dirty) return;
    this.keep(sp, op.key);
    r.rejected = { status, message, at: new Date().toISOString() };
    this.stageItem(r);
  }

  // rejectedItem returns the item of key whose change the server refused
  // for good, or throws NotFound. An item in a conflict is not one: the
  // conflict is what status() reports, and resolve ends it.
  rejectedItem(app, store, key) {
    const r = this.apps.get(app)?.get(store)?.items.get(key);
    if (!r || !r.rejected || !r.dirty || r.conflict) {
      throw new RoamError(NotFound, `no change of ${app}/${store}/${keyInMessage(key)} refused by the server`);
    }
    return r;
  }

  // allRejected lists the items whose change the server refused for good.
  allRejected() {
    const out = [];
    for (const stores of this.apps.values()) {
      for (const sp of stores.values()) {
        for (const r of sp.items.values()) if (r.rejected && r.dirty && !r.conflict) out.push(r);
      }
    }
    return out;
  }

  // retryRejected takes back the server's refusal of r's change (the page
  // asked: the server's limit was raised, the data fixed): the next sync
  // pushes it again, conditional on the same base, as if never refused.
  retryRejected(r) {
    this.keep(this.space(r.app, r.store), r.key);
    r.rejected = null;
    this.stageItem(r);
  }

  // discardRejected drops r's refused change, as the page asked, so that
  // the server's version comes back. An item the server never had (as far
  // as this page knows) goes. One it has is only known by its ETag, not its
  // value, so it becomes a tombstone with nothing to push: the key reads as
  // absent until the next pull, which takes the server's version over a
  // tombstone (or removes it, if the server no longer has the key). Keeping
  // the refused value until then would show a change that was dropped.
  discardRejected(r) {
    const sp = this.space(r.app, r.store);
    this.keep(sp, r.key);
    if (r.base === '') {
      sp.items.delete(r.key);
      this.stage('items', [r.app, r.store, r.key], undefined);
      this.changed.push({ app: r.app, store: r.store, key: r.key, gone: true });
      return;
    }
    Object.assign(r, { value: new Uint8Array(0), expiry: 0, tomb: true, dirty: false, rejected: null });
    this.stageItem(r);
  }

  // adopt replaces the local item with the server's version.
  adopt(sp, r, srv) {
    r.value = srv.value;
    r.seq = ++sp.seq;
    r.expiry = 0;
    r.tomb = false;
    r.base = srv.etag;
    r.dirty = false;
    r.sent = null;
    this.stage('seqs', [r.app, r.store], sp.seq);
  }

  // conflict records that key changed on both sides. Both versions are
  // kept: the local one in place (the app goes on seeing it), the server's
  // in the conflict entry, until someone resolves it.
  //
  // It returns 'conflict', or, when srv is what a push of this page whose
  // reply was lost wrote (ownPush), records it as pushed and returns
  // 'pushed', or 'again' when the key changed since and is to be pushed on
  // the new base.
  conflict(app, store, key, srv) {
    const sp = this.space(app, store);
    let r = sp.items.get(key);
    if (!r) return 'conflict';
    if (this.ownPush(r, srv)) return this.tookOwn(app, store, r, srv) ? 'again' : 'pushed';
    this.keep(sp, key);
    this.keepConflict(JSON.stringify([app, store, key]));
    r.conflict = true;
    this.stageItem(r);
    const c = {
      app, store, key, base: r.base, at: new Date().toISOString(),
      local: { found: !r.tomb, value: r.value, etag: String(r.seq) },
      server: { found: srv.found, value: srv.value, etag: srv.etag },
    };
    this.conflicts.set(JSON.stringify([app, store, key]), c);
    this.stage('conflicts', [app, store, key], c);
    return 'conflict';
  }

  // pulled applies the server's current items: an item with no local
  // change takes the server's version; one changed on both sides becomes a
  // conflict. It returns how many items changed locally.
  pulled(app, store, items) {
    const sp = this.space(app, store);
    let n = 0;
    for (const srv of items) {
      const r = sp.items.get(srv.key);
      if (r && r.conflict) {
        const c = this.conflicts.get(JSON.stringify([app, store, srv.key]));
        if (c) {
          this.keepConflict(JSON.stringify([app, store, srv.key]));
          c.server = { found: srv.found, value: srv.value, etag: srv.etag };
          this.stage('conflicts', [app, store, srv.key], c);
        }
        continue;
      }
      if (r && r.dirty) {
        const changed = r.base === '' ? srv.found : !srv.found || srv.etag !== r.base;
        if (changed) this.conflict(app, store, srv.key, srv);
        else if (r.sent && r.base === '' && r.tomb) {
          // Created, pushed with its reply lost, deleted here: the server
          // does not have it after all, so there is nothing to push.
          this.keep(sp, srv.key);
          sp.items.delete(srv.key);
          this.stage('items', [app, store, srv.key], undefined);
        }
        continue;
      }
      if (!srv.found) {
        if (r && r.base !== '') {
          this.keep(sp, srv.key);
          sp.items.delete(srv.key);
          this.stage('items', [app, store, srv.key], undefined);
          this.changed.push({ app, store, key: srv.key, gone: true });
          n++;
        }
        continue;
      }
      if (r && !r.tomb && r.base === srv.etag) continue;
      this.keep(sp, srv.key);
      const nr = r ?? { app, store, key: srv.key, conflict: false };
      this.adopt(sp, nr, srv);
      sp.items.set(srv.key, nr);
      this.stageItem(nr);
      n++;
    }
    return n;
  }

  // resolve ends a conflict: 'mine' keeps the local version and pushes it
  // over the server's at the next sync; 'theirs' takes the server's.
  resolve(app, store, key, choice) {
    const id = JSON.stringify([app, store, key]);
    const c = this.conflicts.get(id);
    if (!c) throw new RoamError(NotFound, `no conflict on ${app}/${store}/${keyInMessage(key)}`);
    const sp = this.space(app, store);
    let r = sp.items.get(key);
    if (choice !== 'theirs' && choice !== 'mine') {
      throw new RoamError(InvalidArgument, `resolve: choose 'mine' or 'theirs', not ${goQuote(String(choice))}`);
    }
    this.keep(sp, key);
    this.keepConflict(id);
    if (choice === 'theirs') {
      if (!c.server.found) {
        if (r) {
          sp.items.delete(key);
          this.stage('items', [app, store, key], undefined);
          this.changed.push({ app, store, key, gone: true });
        }
      } else {
        r = r ?? { app, store, key };
        this.adopt(sp, r, c.server);
        r.conflict = false;
        sp.items.set(key, r);
        this.stageItem(r);
      }
    } else {
      if (r) {
        r.base = c.server.found ? c.server.etag : '';
        r.dirty = true;
        r.conflict = false;
        r.rejected = null;
        r.sent = null;
        if (r.tomb && r.base === '') {
          sp.items.delete(key);
          this.stage('items', [app, store, key], undefined);
        } else this.stageItem(r);
      }
    }
    this.conflicts.delete(id);
    this.stage('conflicts', [app, store, key], undefined);
  }

  // keys lists the keys of a store the server may have: those to pull.
  keys(app, store) {
    // A key created here whose push's reply was lost may be on the server.
    return [...this.space(app, store).items.values()].filter((r) => r.base !== '' || !r.dirty || r.sent).map((r) => r.key);
  }

  status() {
    const dirty = [], rejected = [];
    for (const [app, stores] of this.apps) {
      for (const [store, sp] of stores) {
        for (const r of sp.items.values()) {
          if (!r.dirty || r.conflict) continue;
          if (r.rejected) rejected.push({ app, store, key: r.key, deleted: r.tomb, ...r.rejected });
          else dirty.push({ app, store, key: r.key, deleted: r.tomb });
        }
      }
    }
    // The local side is the item as it is now: the app may have changed it
    // again since the conflict was found.
    const conflicts = [...this.conflicts.values()].map((c) => {
      const r = this.apps.get(c.app)?.get(c.store)?.items.get(c.key);
      const live = r && !r.tomb;
      return {
        app: c.app, store: c.store, key: c.key, at: c.at,
        local: { found: !!live, value: live ? r.value : new Uint8Array(0) },
        server: { found: c.server.found, value: c.server.value, etag: c.server.etag },
      };
    });
    return { dirty, rejected, conflicts };
  }
}
