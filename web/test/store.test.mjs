// Unit tests of src/store.js's commits in node, with a fake IndexedDB whose
// transactions fail on demand: what no real browser does on cue. Run by
// TestStoreUnit (web/webtest), or alone: node --test test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../src/store.js';
import { utf8 } from '../src/wire.js';
import { opts, put, get } from './state.mjs';

// fakeDB commits writes into db.data (os + key -> value). Each transaction
// takes the next step of db.plan: 'ok' (the default), 'throw' (transaction()
// throws, as on a closing connection), 'abort' (it aborts with a quota
// error after its requests), or 'hold' (it waits in db.held until the test
// finishes it with 'ok' or 'abort').
function fakeDB() {
  const db = {
    name: 'fake', data: new Map(), plan: [], held: [], txs: 0,
    transaction(stores, mode) {
      assert.equal(mode, 'readwrite');
      const step = db.plan.shift() ?? 'ok';
      if (step === 'throw') throw new DOMException('The database connection is closing.', 'InvalidStateError');
      db.txs++;
      const writes = [];
      const tx = {
        error: null,
        objectStore: (os) => ({
          put: (v, k) => writes.push([os, k, structuredClone(v)]),
          delete: (k) => writes.push([os, k, undefined]),
          // get answers before the transaction finishes (a microtask).
          get: (k) => {
            const r = {};
            queueMicrotask(() => {
              r.result = structuredClone(db.data.get(os + ' ' + JSON.stringify(k)));
              r.onsuccess?.();
            });
            return r;
          },
        }),
        abort() { aborted = true; },
      };
      let aborted = false;
      const finish = (how) => {
        if (aborted && how !== 'abort') {
          tx.onabort();
          return;
        }
        if (how === 'abort') {
          tx.error = new DOMException('simulated: the quota is exceeded', 'QuotaExceededError');
          tx.onabort();
          return;
        }
        for (const [os, k, v] of writes) {
          const id = os + ' ' + JSON.stringify(k);
          if (v === undefined) db.data.delete(id);
          else db.data.set(id, v);
        }
        tx.oncomplete();
      };
      if (step === 'hold') db.held.push(finish);
      else setTimeout(() => finish(step), 0);
      return tx;
    },
  };
  return db;
}

const onDisk = (db, key) => db.data.get('items ' + JSON.stringify(['a', 'st', key]));
const dirty = (s) => s.status().dirty.map((d) => d.key).sort();
const tick = () => new Promise((r) => setTimeout(r, 5));

test('a failed commit is undone and does not poison later commits', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'k0', 0);
  await s.flush();

  db.plan.push('throw');
  put(s, 'k1', 1);
  put(s, 'k0', 'changed');
  s.delete('a', 'st', 'k0', opts);
  await assert.rejects(s.flush(), (e) => e.codeName === 'Unavailable' && /^state was not saved: InvalidStateError: The database connection is closing/.test(e.message));
  assert.equal(get(s, 'k1'), 'NotFound', 'the write answered "not saved" is gone from memory');
  assert.equal(get(s, 'k0'), 0, 'the item overwritten and deleted is back');
  assert.deepEqual(dirty(s), ['k0'], 'sync would push only what was saved');
  assert.equal(s.takeChanged().length, 0);

  put(s, 'k2', 2);
  await s.flush(); // the database works again: this commit is tried afresh
  await s.flush(); // nothing staged: resolves
  assert.equal(get(s, 'k2'), 2);
  assert.ok(onDisk(db, 'k2'));
  assert.equal(onDisk(db, 'k1'), undefined);
  assert.deepEqual(dirty(s), ['k0', 'k2']);

  db.plan.push('abort'); // fails after its requests, as a quota error does
  put(s, 'k3', 3);
  await assert.rejects(s.flush(), /state was not saved: IndexedDB fake is full: the browser's storage quota for this site is used up \(QuotaExceededError: simulated: the quota is exceeded\): the write was rolled back, and the data written before is intact/);
  assert.equal(get(s, 'k3'), 'NotFound');
  put(s, 'k4', 4);
  await s.flush();
  assert.deepEqual(dirty(s), ['k0', 'k2', 'k4']);
});

test('calls that ran on top of a failed commit are undone and fail too; later ones do not', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'base', 1);
  await s.flush();

  db.plan.push('hold');
  put(s, 'a', 1); // call 1: its commit is in flight
  const f1 = s.flush();
  await tick();
  assert.equal(db.held.length, 1);
  assert.equal(get(s, 'a'), 1); // call 2 reads call 1's write
  put(s, 'b', get(s, 'a') + 1); // and writes from it
  const f2 = s.flush();
  const f3 = s.flush(); // call 3 only read
  s.stage('meta', 'x', 1); // staged, not flushed yet
  const r1 = assert.rejects(f1, /state was not saved: IndexedDB fake is full: .*\(QuotaExceededError/);
  const r2 = assert.rejects(f2, /state was not saved: the call ran on top of an earlier call whose commit failed, so it was undone too \(IndexedDB fake is full: .*QuotaExceededError/);
  const r3 = assert.rejects(f3, /the call may have read an earlier call's write that was then not saved, so it is not answered/);
  db.held.shift()('abort');
  await Promise.all([r1, r2, r3]);
  assert.equal(get(s, 'a'), 'NotFound');
  assert.equal(get(s, 'b'), 'NotFound');
  assert.equal(get(s, 'base'), 1);
  assert.deepEqual(dirty(s), ['base']);
  // What was staged on top is undone too: its flush fails, and the one after works.
  await assert.rejects(s.flush(), /undone too/);
  assert.equal(db.data.get('meta "x"'), undefined);
  put(s, 'c', 3);
  await s.flush();
  assert.equal(db.txs, 3); // base, a (aborted) and c: the batches behind a did not start one
  assert.equal(onDisk(db, 'a'), undefined);
  assert.equal(onDisk(db, 'b'), undefined);
  assert.deepEqual(dirty(s), ['base', 'c']);
});

test('a commit behind a successful one that is still in flight succeeds', async () => {
  const db = fakeDB();
  const s = new Store(db);
  db.plan.push('hold');
  put(s, 'a', 1);
  const f1 = s.flush();
  put(s, 'b', 2);
  const f2 = s.flush();
  await tick();
  db.held.shift()('ok');
  await f1;
  await f2;
  assert.ok(onDisk(db, 'a') && onDisk(db, 'b'));
});

test('a batch writes its records as they were when it was cut, not as changed later', async () => {
  const db = fakeDB();
  const s = new Store(db);
  db.plan.push('hold');
  put(s, 'k', 1);
  const f1 = s.flush();
  // A push marks the item clean, in place, while the first batch waits.
  const [op] = s.outgoing('a', 'st');
  s.pushed('a', 'st', [op], [{ key: 'k', found: true, etag: '7', value: op.value }]);
  const f2 = s.flush();
  await tick();
  db.held.shift()('ok');
  await f1;
  await f2;
  assert.equal(onDisk(db, 'k').dirty, false);
  assert.equal(onDisk(db, 'k').base, '7');
});

test('a failed commit of sync bookkeeping leaves the items as they were', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'k', 1);
  put(s, 'gone', 1);
  await s.flush();
  const ops = s.outgoing('a', 'st');
  s.pushed('a', 'st', ops, ops.map((o) => ({ key: o.key, found: true, etag: '5', value: o.value })));
  await s.flush();
  s.delete('a', 'st', 'gone', opts);
  put(s, 'k', 2);
  await s.flush();
  const before = JSON.stringify(s.status());

  db.plan.push('throw');
  const out = s.outgoing('a', 'st');
  s.pushed('a', 'st', out, out.map((o) => ({ key: o.key, found: o.op === 'set', etag: o.op === 'set' ? '6' : '', value: o.value })));
  s.conflict('a', 'st', 'k', { found: true, value: utf8('9'), etag: '8' });
  await assert.rejects(s.flush(), /state was not saved/);
  assert.equal(JSON.stringify(s.status()), before);
  assert.equal(get(s, 'k'), 2);
  assert.deepEqual(s.outgoing('a', 'st').map((o) => [o.key, o.op, o.etag]), [['k', 'set', '5'], ['gone', 'delete', '5']]);
});

test('a change the server refused is reported, not pushed, until written again', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'ok', 1);
  put(s, 'bad', 2);
  await s.flush();
  const bad = s.outgoing('a', 'st').find((o) => o.key === 'bad');
  s.rejected('a', 'st', bad, 413, 'request body exceeds 4194304 bytes');
  await s.flush();
  assert.deepEqual(s.outgoing('a', 'st').map((o) => o.key), ['ok']);
  const st = s.status();
  assert.deepEqual(st.dirty.map((d) => d.key), ['ok']);
  assert.equal(st.rejected.length, 1);
  assert.equal(st.rejected[0].key, 'bad');
  assert.equal(st.rejected[0].status, 413);
  assert.equal(st.rejected[0].message, 'request body exceeds 4194304 bytes');
  assert.ok(onDisk(db, 'bad').rejected, 'the rejection survives a reload');

  // A rejection of an older version of the key does not stick.
  put(s, 'ok', 3);
  const stale = { ...s.outgoing('a', 'st').find((o) => o.key === 'ok'), seq: 1 };
  s.rejected('a', 'st', stale, 400, 'no');
  assert.deepEqual(s.status().rejected.map((r) => r.key), ['bad']);

  put(s, 'bad', 4); // written again: pushed again
  assert.deepEqual(s.outgoing('a', 'st').map((o) => o.key).sort(), ['bad', 'ok']);
  assert.equal(s.status().rejected.length, 0);
});

test('a closed connection is reported once, and commits fail with a clear error', async () => {
  const db = fakeDB();
  const s = new Store(db);
  const seen = [];
  s.onClosed = (why) => seen.push(why);
  db.onclose();
  db.onclose();
  assert.deepEqual(seen, ['IndexedDB fake was closed by the browser (site data cleared?)']);
  put(s, 'k', 1);
  await assert.rejects(s.flush(), /state was not saved: IndexedDB fake was closed by the browser/);
  assert.equal(get(s, 'k'), 'NotFound');
  await s.flush(); // nothing staged: nothing to fail

  const db2 = fakeDB();
  let closed = false;
  db2.close = () => { closed = true; };
  const s2 = new Store(db2);
  s2.onClosed = (why) => seen.push(why);
  db2.onversionchange();
  assert.ok(closed, 'the connection is closed so that the other tab can go on');
  assert.equal(seen[1], 'IndexedDB fake is being deleted or upgraded by another tab');
});

// refuse has the server refuse the pushed change of key for good.
function refuse(s, key, status = 400) {
  const op = s.outgoing('a', 'st').find((o) => o.key === key);
  s.rejected('a', 'st', op, status, `refused ${key}`);
}

test('a refused change retried is pushed again, as it was, and that is saved', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'new', 1); // the server never had it
  put(s, 'old', 1);
  await s.flush();
  const [op] = s.outgoing('a', 'st').filter((o) => o.key === 'old');
  s.pushed('a', 'st', [op], [{ key: 'old', found: true, etag: '5', value: op.value }]);
  put(s, 'old', 2); // a change of the server's version 5
  refuse(s, 'new', 413);
  refuse(s, 'old');
  await s.flush();
  assert.deepEqual(s.outgoing('a', 'st'), []);
  assert.throws(() => s.rejectedItem('a', 'st', 'nope'), (e) => e.codeName === 'NotFound' && e.message === 'no change of a/st/nope refused by the server');
  assert.equal(s.allRejected().length, 2);

  // A retry whose commit fails leaves the change refused.
  db.plan.push('throw');
  s.retryRejected(s.rejectedItem('a', 'st', 'old'));
  await assert.rejects(s.flush(), /state was not saved/);
  assert.deepEqual(s.status().rejected.map((r) => r.key).sort(), ['new', 'old']);

  s.retryRejected(s.rejectedItem('a', 'st', 'old'));
  await s.flush();
  assert.deepEqual(s.outgoing('a', 'st').map((o) => [o.key, o.op, o.etag, !!o.if_absent]), [['old', 'set', '5', false]]);
  assert.deepEqual(s.status().rejected.map((r) => r.key), ['new']);
  assert.deepEqual(dirty(s), ['old']);
  assert.equal(onDisk(db, 'old').rejected, null, 'the retry is saved: it survives a reload');
  assert.ok(onDisk(db, 'new').rejected);
  assert.equal(get(s, 'old'), 2);
  assert.throws(() => s.rejectedItem('a', 'st', 'old'), /no change of a\/st\/old refused/);
});

test('a refused change discarded gives way to the server\'s version', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'new', 1);
  put(s, 'old', 1);
  put(s, 'gone', 1);
  await s.flush();
  const ops = s.outgoing('a', 'st').filter((o) => o.key !== 'new');
  s.pushed('a', 'st', ops, ops.map((o) => ({ key: o.key, found: true, etag: '5', value: o.value })));
  put(s, 'new', 2);
  put(s, 'old', 2);
  s.delete('a', 'st', 'gone', opts);
  for (const k of ['new', 'old', 'gone']) refuse(s, k);
  await s.flush();

  for (const k of ['new', 'old', 'gone']) s.discardRejected(s.rejectedItem('a', 'st', k));
  await s.flush();
  const st = s.status();
  assert.deepEqual([st.dirty, st.rejected, st.conflicts], [[], [], []]);
  assert.deepEqual(s.outgoing('a', 'st'), [], 'nothing is pushed');
  // The server never had new: it is gone, here and on disk. The others
  // read as absent until a pull brings the server's version, and are pulled.
  assert.equal(get(s, 'new'), 'NotFound');
  assert.equal(onDisk(db, 'new'), undefined);
  assert.equal(get(s, 'old'), 'NotFound');
  assert.equal(get(s, 'gone'), 'NotFound');
  assert.deepEqual(s.keys('a', 'st').sort(), ['gone', 'old']);
  assert.deepEqual([onDisk(db, 'old').dirty, onDisk(db, 'old').tomb, onDisk(db, 'old').rejected], [false, true, null]);

  // The server's version comes back even with the same ETag as the base.
  const n = s.pulled('a', 'st', [
    { key: 'old', found: true, etag: '5', value: utf8('1') },
    { key: 'gone', found: false, etag: '', value: new Uint8Array(0) },
  ]);
  await s.flush();
  assert.equal(n, 2);
  assert.equal(get(s, 'old'), 1);
  assert.equal(get(s, 'gone'), 'NotFound');
  assert.equal(onDisk(db, 'gone'), undefined);
  assert.deepEqual(s.keys('a', 'st'), ['old']);
  assert.deepEqual(dirty(s), []);

  // Written again after a discard, a key is pushed from its base.
  s.rejected('a', 'st', { key: 'old', seq: s.space('a', 'st').items.get('old').seq, tomb: false }, 400, 'late'); // not dirty: not marked
  assert.equal(s.allRejected().length, 0);
  put(s, 'old', 3);
  assert.deepEqual(s.outgoing('a', 'st').map((o) => [o.key, o.etag]), [['old', '5']]);
});

test('a discard whose commit fails is undone', async () => {
  const db = fakeDB();
  const s = new Store(db);
  put(s, 'new', 1);
  await s.flush();
  refuse(s, 'new');
  await s.flush();
  db.plan.push('abort');
  s.discardRejected(s.rejectedItem('a', 'st', 'new'));
  assert.equal(get(s, 'new'), 'NotFound');
  await assert.rejects(s.flush(), /state was not saved/);
  assert.equal(get(s, 'new'), 1);
  assert.deepEqual(s.status().rejected.map((r) => r.key), ['new']);
  assert.ok(onDisk(db, 'new').rejected);
});

// A push whose reply was lost (Store.sending marked it): the next push's
// conflict with the page's own write there is taken as pushed; a key
// created, pushed with its reply lost and then deleted here is pulled, and
// goes, or is deleted on the server, by what the server has.
test('a lost push is recognised by its marker', async () => {
  const s = new Store(fakeDB());
  s.gen = 0;
  put(s, 'a', 1);
  put(s, 'b', 2);
  const ops = s.outgoing('a', 'st');
  assert.deepEqual(s.sending('a', 'st', ops.map(({ key, seq, tomb }) => ({ key, seq, tomb }))).sort(), ['a', 'b']);
  await s.flush();
  // The server applied it; the reply was lost. b is deleted here since.
  s.delete('a', 'st', 'b', opts);
  assert.deepEqual(s.keys('a', 'st').sort(), ['a', 'b'], 'both may be on the server: pulled');
  const srv = (key, v, etag) => ({ key, found: true, value: utf8(JSON.stringify(v)), etag });
  assert.equal(s.conflict('a', 'st', 'a', srv('a', 1, '7')), 'pushed');
  assert.equal(s.conflict('a', 'st', 'b', srv('b', 2, '8')), 'again');
  assert.deepEqual(s.outgoing('a', 'st').map((o) => [o.key, o.op, o.etag]), [['b', 'delete', '8']]);
  assert.equal(s.status().conflicts.length, 0);
  // Another value on the server is a conflict still.
  put(s, 'c', 3);
  s.sending('a', 'st', s.outgoing('a', 'st').filter((o) => o.key === 'c').map(({ key, seq, tomb }) => ({ key, seq, tomb })));
  assert.equal(s.conflict('a', 'st', 'c', srv('c', 'theirs', '9')), 'conflict');
  // Created, sent, deleted here; the server does not have it: it goes.
  put(s, 'd', 4);
  s.sending('a', 'st', s.outgoing('a', 'st').filter((o) => o.key === 'd').map(({ key, seq, tomb }) => ({ key, seq, tomb })));
  s.delete('a', 'st', 'd', opts);
  s.pulled('a', 'st', [{ key: 'd', found: false, value: new Uint8Array(0), etag: '' }]);
  assert.equal(s.apps.get('a').get('st').items.has('d'), false);
  await s.flush();
});
