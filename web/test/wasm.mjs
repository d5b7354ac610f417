// A tiny WebAssembly assembler, for the modules web/test/audit.test.mjs
// builds: hostile guests no Go toolchain would emit.
export const uleb = (n) => { const o = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; o.push(b); } while (n); return o; };
export const sleb = (n) => { n = BigInt(n); const o = []; for (;;) { let b = Number(n & 0x7fn); n >>= 7n; if ((n === 0n && !(b & 0x40)) || (n === -1n && (b & 0x40))) { o.push(b); return o; } o.push(b | 0x80); } };
const str = (s) => { const b = [...new TextEncoder().encode(s)]; return [...uleb(b.length), ...b]; };
const vec = (items) => [...uleb(items.length), ...items.flat()];
const sec = (id, body) => [id, ...uleb(body.length), ...body];
export const I32 = 0x7f, I64 = 0x7e;
// m: {types:[[params],[results]]], imports:[[mod,name,typeIdx]], funcs:[{type, locals:[], code:[]}], memPages, exports:[[name, kind, idx]], data:[[offset, bytes]]}
export function module(m) {
  const out = [0, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
  out.push(...sec(1, vec(m.types.map(([p, r]) => [0x60, ...vec(p.map((x) => [x])), ...vec(r.map((x) => [x]))]))));
  out.push(...sec(2, vec(m.imports.map(([mo, n, t]) => [...str(mo), ...str(n), 0, ...uleb(t)]))));
  out.push(...sec(3, vec(m.funcs.map((f) => uleb(f.type)))));
  out.push(...sec(5, vec([[0, ...uleb(m.memPages)]])));
  out.push(...sec(7, vec(m.exports.map(([n, k, i]) => [...str(n), k, ...uleb(i)]))));
  out.push(...sec(10, vec(m.funcs.map((f) => { const body = [...vec((f.locals ?? []).map((t) => [1, t])), ...f.code, 0x0b]; return [...uleb(body.length), ...body]; }))));
  if (m.data?.length) out.push(...sec(11, vec(m.data.map(([off, bytes]) => [0, 0x41, ...sleb(off), 0x0b, ...vec(bytes.map((b) => [b]))]))));
  return new Uint8Array(out);
}
