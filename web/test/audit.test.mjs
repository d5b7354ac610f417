// An audit of the roam_v1 imports (src/runtime.js) against hostile guests,
// in node, with modules built byte by byte (wasm.mjs): what no Go guest
// would do on cue. Run by TestStoreUnit (web/webtest), or alone:
// node --test test/*.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { module, sleb, I32, I64 } from './wasm.mjs';
import { Runtime } from '../src/runtime.js';
import { Store } from '../src/store.js';
import { Writer, OK, InvalidArgument, Internal } from '../src/wire.js';

const MPTR = 1024, EPTR = 2048, RPTR = 4096;
const i64c = (v) => [0x42, ...sleb(BigInt.asIntN(64, BigInt(v)))];
const frame = (ptr, n) => (BigInt(ptr) << 32n) | BigInt(n);

// guest builds a module of app "probe" with one method, M. Its roam_handle
// runs handle (wasm code, result i64, locals: the call's ptr and len);
// extra functions follow it (indices from 6), and req is copied to RPTR.
function guest({ imports = [['roam_v1', 'state_transact', 0]], handle, extra = [], req = new Uint8Array(0) }) {
  const manifest = new Writer().uvarint(OK).string('probe').uvarint(1).string('M').uvarint(0).finish();
  return new WebAssembly.Module(module({
    // 0: (i32 i32) -> i64, 1: () -> i32, 2: (i32) -> i32, 3: () -> i64, 4: (i32) -> i64
    types: [[[I32, I32], [I64]], [[], [I32]], [[I32], [I32]], [[], [I64]], [[I32], [I64]]],
    imports,
    funcs: [
      { type: 1, code: [0x41, ...sleb(0x10000)] }, // roam_abi_version: 1.0
      { type: 2, code: [0x41, ...sleb(8192)] }, // roam_alloc
      { type: 3, code: i64c(frame(MPTR, manifest.length)) }, // roam_init
      { type: 0, code: handle }, // roam_handle
      ...extra,
    ],
    memPages: 1,
    exports: [['memory', 2, 0], ['roam_abi_version', 0, 1], ['roam_alloc', 0, 2], ['roam_init', 0, 3], ['roam_handle', 0, 4]],
    data: [[MPTR, [...manifest]], [EPTR, [OK]], [RPTR, [...req]]],
  }));
}

// runtime loads compiled into a Runtime whose store lives in memory only
// (nothing here commits).
async function runtime(compiled) {
  const store = new Store({ name: 'audit', transaction() { throw new Error('no IndexedDB here'); } });
  store.loadApp = async () => {};
  const rt = new Runtime(store, {});
  rt.subscribe = async () => {};
  rt.commit = async () => {};
  await rt.load({ compiled, name: 'probe.wasm' });
  return { rt, store, mod: rt.modules.get('probe') };
}

// importCode is a roam_handle that calls state_transact(ptr, len) and
// answers the code it got as a one-byte frame.
const importCode = (ptr, len) => [0x41, ...sleb(EPTR), 0x41, ...sleb(ptr), 0x41, ...sleb(len), 0x10, 0,
  ...i64c(32), 0x88, 0xa7, 0x3a, 0, 0, ...i64c(frame(EPTR, 1))];

const call = (rt, mod) => rt.call(mod, 'M', new Uint8Array(0));

// A guest that recurses (in wasm, or through its own app's invocations)
// until the JS stack is nearly gone, then writes, made the host run out of
// stack inside a state operation. Before, a transaction could stop half
// applied, and an item be changed in memory but not staged: the call
// failed, yet later calls read the item, sync pushed it, and a reload lost
// it. Each operation is now whole or not at all, in memory as on disk.
test('a state operation that runs out of stack is undone whole', async () => {
  const n = 32;
  const w = new Writer().string('st').uvarint(n);
  for (let i = 0; i < n; i++) w.uvarint(1).string('k' + i).bytes(new Uint8Array(8 * i)).string('').uvarint(0).uvarint(0);
  const req = w.finish();
  // roam_handle: probe(depth at address 0); probe(d): d == 0 ?
  // state_transact(req) : probe(d - 1).
  const compiled = guest({
    req,
    handle: [0x41, 0, 0x28, 2, 0, 0x10, 5, 0x1a, ...i64c(frame(EPTR, 1))],
    extra: [{ type: 4, code: [0x20, 0, 0x45, 0x04, 0x7e, 0x41, ...sleb(RPTR), 0x41, ...sleb(req.length), 0x10, 0, 0x05, 0x20, 0, 0x41, 1, 0x6b, 0x10, 5, 0x0b] }],
  });
  const { rt, store, mod } = await runtime(compiled);
  const run = (depth) => {
    store.apps = new Map();
    store.pending = new Map();
    store.undo = [];
    store.changed = [];
    if (!mod.inst) mod.instantiate();
    new DataView(mod.inst.memory.buffer).setUint32(0, depth, true);
    return call(rt, mod);
  };
  // About the least depth at which the guest traps (the stack is gone);
  // it moves as the JIT compiles the host's functions, so the sweep goes
  // on until 40 depths in a row trapped.
  let hi = 1;
  while (run(hi).code === OK) hi *= 2;
  let lo = hi / 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (run(mid).code === OK) lo = mid;
    else hi = mid;
  }
  let traps = 0, inARow = 0;
  for (let d = Math.max(0, hi - 800); inARow < 40; d++) {
    const r = run(d);
    if (r.code !== OK) traps++;
    inARow = r.code === OK ? 0 : inARow + 1;
    if (process.env.DEBUG) console.log(d, r.code, r.message?.slice(0, 120));
    const items = [...(store.apps.get('probe')?.get('st')?.items.keys() ?? [])];
    const staged = [...store.pending.values()].filter((p) => p.os === 'items').map((p) => p.key[2]);
    assert.ok(items.length === 0 || items.length === n, `depth ${d}: ${items.length} of the transaction's ${n} keys in memory (${r.code}: ${r.message})`);
    assert.deepEqual(staged.sort(), items.sort(), `depth ${d}: memory and the staged writes differ (${r.code}: ${r.message})`);
    if (r.code === OK) assert.equal(items.length, n);
    assert.ok(!store.open);
  }
});

// Hostile pointers and lengths: a request outside memory, or overflowing
// it, fails the import with InvalidArgument (the guest goes on); a reply
// frame outside memory and a take_result outside memory trap the guest,
// whose instance is replaced; the next call works.
test('pointers and lengths outside memory fail the call, not the host', async () => {
  const cases = [
    // state_transact(ptr, len) outside memory: the guest stores the code
    // it gets at EPTR, and answers that one-byte frame.
    { name: 'request past memory', handle: importCode(65530, 100), want: (r) => r.code === InvalidArgument },
    { name: 'request length 2^32-1', handle: importCode(16, -1), want: (r) => r.code === InvalidArgument },
    { name: 'request pointer 2^32-1', handle: importCode(-1, 1), want: (r) => r.code === InvalidArgument },
    { name: 'reply frame past memory', handle: [...i64c(frame(65535, 2))], want: (r) => r.code === Internal && /trapped/.test(r.message) },
    { name: 'reply frame of 2^32-1 bytes', handle: [...i64c(frame(0, 0xffffffff))], want: (r) => r.code === Internal && /trapped/.test(r.message) },
    { name: 'reply frame pointer 2^32-1', handle: [...i64c(frame(0xffffffff, 1))], want: (r) => r.code === Internal && /trapped/.test(r.message) },
  ];
  for (const c of cases) {
    const { rt, mod } = await runtime(guest({ handle: c.handle }));
    const r = call(rt, mod);
    assert.ok(c.want(r), `${c.name}: ${r.code} ${r.message}`);
  }
});
