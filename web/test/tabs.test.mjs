// Unit tests, in node, of what two tabs do to each other's database that a
// browser does not do on cue: an IndexedDB open blocked by another tab, a
// database a newer page upgraded, a commit that finds another writer's
// first, and the turns the Lease takes. Run by TestStoreUnit (web/webtest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store, openDB } from '../src/store.js';
import { Lease } from '../src/lease.js';
import { utf8, fromUTF8 } from '../src/wire.js';
import { opts, put, get } from './state.mjs';

// fakeOpen makes indexedDB.open answer with the steps given: 'blocked'
// (another tab holds the database at an older version), 'success', or
// 'VersionError'.
function fakeOpen(...steps) {
  const conn = { name: 'fake', close() {} };
  globalThis.indexedDB = {
    open(name, version) {
      const r = {};
      const next = () => {
        const step = steps.shift();
        if (step === undefined) return;
        if (step === 'blocked') r.onblocked?.({ oldVersion: 1, newVersion: version });
        else if (step === 'success') {
          r.result = conn;
          r.onsuccess();
          return;
        } else {
          r.error = new DOMException(`The requested version (${version}) is less than the existing version (2).`, 'VersionError');
          r.onerror();
          return;
        }
        setTimeout(next, 0);
      };
      setTimeout(next, 0);
      return r;
    },
  };
  return conn;
}

test('an open blocked by another tab waits, and opens once the other tab lets go', async () => {
  const conn = fakeOpen('blocked', 'blocked', 'success');
  const warn = console.warn;
  const warned = [];
  console.warn = (m) => warned.push(m);
  try {
    assert.equal(await openDB('fake'), conn, 'the connection opened after "blocked" is the one returned, not leaked');
  } finally {
    console.warn = warn;
  }
  assert.equal(warned.length, 2);
  assert.match(warned[0], /waits for another tab to close its connection/);
});

test('a database a newer page upgraded fails to open with a message that says so', async () => {
  fakeOpen('VersionError');
  await assert.rejects(openDB('fake'), (e) => e.codeName === 'Unavailable' &&
    e.message === 'IndexedDB fake was upgraded by a newer version of this page (in another tab?) past version 1, the one this page reads: reload the page (VersionError: The requested version (1) is less than the existing version (2).)');
});

// fakeDB is store.test.mjs's, reduced: writes land in data when the
// transaction completes, after its gets are answered.
function fakeDB() {
  const db = {
    name: 'fake', data: new Map(),
    transaction() {
      const writes = [];
      let aborted = false;
      const tx = {
        objectStore: (os) => ({
          put: (v, k) => writes.push([os, k, structuredClone(v)]),
          delete: (k) => writes.push([os, k, undefined]),
          get: (k) => {
            const r = {};
            queueMicrotask(() => {
              r.result = db.data.get(os + ' ' + JSON.stringify(k));
              r.onsuccess?.();
            });
            return r;
          },
        }),
        abort() { aborted = true; },
      };
      setTimeout(() => {
        if (aborted) return tx.onabort();
        for (const [os, k, v] of writes) {
          if (v === undefined) db.data.delete(os + ' ' + JSON.stringify(k));
          else db.data.set(os + ' ' + JSON.stringify(k), v);
        }
        tx.oncomplete();
      }, 0);
      return tx;
    },
  };
  return db;
}


test('a commit that finds another writer committed first writes nothing, is undone, and says so', async () => {
  const db = fakeDB();
  const s = new Store(db);
  s.gen = 0;
  let stale = 0;
  s.onStale = () => stale++;
  put(s, 'k', 1);
  await s.flush();
  assert.equal(db.data.get('meta "gen"'), 1, 'each commit counts itself');
  assert.equal(s.gen, 1);

  db.data.set('meta "gen"', 2); // another tab committed, unseen
  db.data.set('items ["a","st","k"]', { app: 'a', store: 'st', key: 'k', value: utf8('"theirs"'), seq: 9 });
  put(s, 'k', 'mine');
  await assert.rejects(s.flush(), (e) => e.codeName === 'Unavailable' &&
    e.message === 'state was not saved: another tab, or a worker of this page being ended, committed to IndexedDB fake at the same time (at 2, expected 1): try again');
  assert.equal(stale, 1, 'memory is to be read again');
  assert.equal(get(s, 'k'), 1, 'undone in memory');
  assert.equal(fromUTF8(db.data.get('items ["a","st","k"]').value), '"theirs"', 'the other writer\'s write stands');
  assert.equal(s.gen, 1);

  s.gen = 2; // read again (Runtime.refresh)
  put(s, 'k', 'mine');
  await s.flush();
  assert.equal(db.data.get('meta "gen"'), 3);
});

// fakeLease makes a Lease whose page and channel record what it asks.
function fakeLease() {
  const asked = [], wants = [];
  let refreshes = 0, busy = false;
  const l = new Lease({ postMessage: (m) => wants.push(m.kind) }, (what) => asked.push(what), async () => { refreshes++; }, () => busy, false);
  return { l, asked, wants, refreshes: () => refreshes, setBusy: (b) => { busy = b; } };
}

test('a tab takes the database when granted, reads it, keeps it until another tab asks, and lets go when idle', async () => {
  const f = fakeLease();
  const entered = f.l.enter();
  assert.deepEqual(f.asked, ['request']);
  assert.deepEqual(f.wants, ['want'], 'the other tabs are asked to let go');
  f.l.onGranted();
  await entered;
  assert.equal(f.refreshes(), 1, 'what the other tabs committed is read first');
  await f.l.enter();
  assert.equal(f.refreshes(), 1, 'held and fresh: nothing to read, nothing to ask');
  assert.deepEqual(f.asked, ['request']);

  f.setBusy(true);
  f.l.onWant(); // another tab asks while an operation runs
  assert.deepEqual(f.asked, ['request'], 'the running operation keeps it');
  f.setBusy(false);
  f.l.idle();
  assert.deepEqual(f.asked, ['request', 'release'], 'let go once idle');

  const again = f.l.enter();
  assert.deepEqual(f.asked, ['request', 'release', 'request']);
  f.l.onGranted();
  await again;
  assert.equal(f.refreshes(), 2, 'read again after the other tab\'s turn');

  f.l.onWant(); // idle: let go at once
  assert.deepEqual(f.asked, ['request', 'release', 'request', 'release']);
});

test('a busy tab that another tab asks lets go before its next operation', async () => {
  const f = fakeLease();
  const e = f.l.enter();
  f.l.onGranted();
  await e;
  f.setBusy(true);
  f.l.onWant();
  const next = f.l.enter(); // the next operation queues behind the other tab
  assert.deepEqual(f.asked, ['request', 'release', 'request']);
  f.l.onGranted();
  await next;
  assert.equal(f.refreshes(), 2);
});
