// keyEchoSteps makes the calls whose errors name key on the browser's
// store s, where key is absent, and returns each one's "Code: message" (or
// 'OK'): the calls conformance/backendtest's KeyEchoSteps makes on a Go
// backend, in its order. quote.test.mjs checks the messages; web/webtest's
// TestKeyEchoParity compares them with the Go backends'.
import { utf8 } from '../src/wire.js';

export function keyEchoSteps(s, key) {
  const o = { etag: '', ttlMs: 0, ifAbsent: false };
  const calls = [
    () => s.get('a', 'st', key),
    () => s.set('a', 'st', key, utf8('1'), { ...o, etag: '999' }),
    () => s.set('a', 'st', key, utf8('1'), o),
    () => s.set('a', 'st', key, utf8('2'), { ...o, ifAbsent: true }),
    () => s.set('a', 'st', key, utf8('2'), { ...o, etag: '999' }),
    () => s.delete('a', 'st', key, { ...o, etag: '999' }),
    () => s.transact('a', 'st', [{ kind: 1, key, value: utf8('3'), ...o, ifAbsent: true }]),
    () => s.delete('a', 'st', key, { ...o, ifAbsent: true }),
    () => s.set('a', 'st', key, utf8('4'), { ...o, etag: '1', ifAbsent: true }),
    () => s.set('a', 'st', key, utf8('4'), { ...o, ttlMs: -5 }),
  ];
  return calls.map((f) => {
    try {
      f();
      return 'OK';
    } catch (e) {
      return `${e.codeName}: ${e.message}`;
    }
  });
}
