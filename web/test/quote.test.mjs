// quoteName, quoteKey and goQuote (src/wire.js) print what sdk.QuoteName,
// sdk.QuoteKey and strconv.Quote print, and the store's messages that name
// a state key cut it as the Go backends' do. The expected strings are the
// Go tests' (host/keyecho_test.go, host/unknownapp_test.go,
// conformance/backendtest (testKeyInMessages)); web/webtest's TestKeyEchoParity runs
// both sides on the same inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../src/store.js';
import { keyEchoSteps } from './keyecho.mjs';
import { quoteKey, quoteName, goQuote, keyInMessage, fromUTF8 } from '../src/wire.js';

const a = (n) => 'a'.repeat(n);
const bytes = (...b) => fromUTF8(new Uint8Array(b));

test('quoteKey cuts a key past 128 bytes between characters, as sdk.QuoteKey', () => {
  for (const [key, want] of [
    ['k', '"k"'],
    ['a\nb"\\', '"a\\nb\\"\\\\"'],
    [a(128), `"${a(128)}"`],
    [a(129), `"${a(128)}"…(129 bytes)`],
    [a(127) + 'é', `"${a(127)}"…(129 bytes)`], // é is bytes 128 and 129
    [a(126) + 'é' + a(9), `"${a(126)}é"…(137 bytes)`], // é ends at byte 128
    [a(125) + '😀', `"${a(125)}"…(129 bytes)`], // 😀 is bytes 126 to 129, two UTF-16 units
    [a(124) + '😀' + 'b', `"${a(124)}😀"…(129 bytes)`],
    ['\x00'.repeat(16 << 10), `"${'\\x00'.repeat(128)}"…(16384 bytes)`],
    ['€'.repeat(5461) + 'k', `"${'€'.repeat(42)}"…(16384 bytes)`],
  ]) {
    assert.equal(quoteKey(key), want, `quoteKey of ${key.length} units`);
  }
  // Names are cut at 64 bytes, by the same code.
  assert.equal(quoteName(a(64)), `"${a(64)}"`);
  assert.equal(quoteName(a(65)), `"${a(64)}"…(65 bytes)`);
  assert.equal(quoteName(a(62) + '€' + a(20)), `"${a(62)}"…(85 bytes)`);
  assert.equal(quoteName('"' + a(70)), `"\\"${a(63)}"…(71 bytes)`);
});

test('a key with invalid UTF-8 is the key with U+FFFD here, quoted as Go quotes that key', () => {
  // The browser host decodes a guest's key as TextDecoder does, each
  // invalid byte to U+FFFD (3 bytes): it holds another key than a Go host,
  // which keeps the bytes (and prints "\xff"), and names that key as a Go
  // host names it.
  const k = a(127) + bytes(0xff, 0xfe);
  assert.equal(k, a(127) + '\ufffd\ufffd');
  assert.equal(quoteKey(k), `"${a(127)}"…(133 bytes)`);
  assert.equal(quoteKey(a(125) + bytes(0xff)), `"${a(125)}�"`);
  assert.equal(quoteKey(a(126) + bytes(0xff)), `"${a(126)}"…(129 bytes)`);
  // A lone surrogate, which only a page can pass, is U+FFFD in UTF-8.
  assert.equal(quoteKey('\ud800'), '"�"');
  assert.equal(quoteKey(a(126) + '\udc00'), `"${a(126)}"…(129 bytes)`);
});

test('goQuote escapes what strconv.Quote escapes', () => {
  assert.equal(goQuote('\x07\b\f\n\r\t\v\x00\x1f\x7f'), '"\\a\\b\\f\\n\\r\\t\\v\\x00\\x1f\\x7f"');
  // Not printable in Go (unicode.IsPrint): C1 controls, spaces other than
  // U+0020, format characters, line and paragraph separators, private use.
  assert.equal(goQuote('\u0085\u00a0\u00ad\u2028\u2029\u200b\ufeff\ue000\u{e0001}\u{f0000}'),
    '"\\u0085\\u00a0\\u00ad\\u2028\\u2029\\u200b\\ufeff\\ue000\\U000e0001\\U000f0000"');
  // Assigned since Unicode 15.0, Go's edition: unassigned to Go.
  assert.equal(goQuote('\u{1fae9}\u{2ebf0}\u0897'), '"\\U0001fae9\\U0002ebf0\\u0897"');
  // Printable: letters, marks, numbers, punctuation, symbols, U+FFFD.
  assert.equal(goQuote('é€😀e\u0301¡ÿ\ufffd'), '"é€😀e\u0301¡ÿ\ufffd"');
});

test('keyInMessage names a key as it is up to 128 bytes, and quoteKey\'s cut beyond', () => {
  assert.equal(keyInMessage('nope'), 'nope');
  assert.equal(keyInMessage(a(128)), a(128));
  assert.equal(keyInMessage('é'.repeat(64)), 'é'.repeat(64));
  assert.equal(keyInMessage(a(129)), `"${a(128)}"…(129 bytes)`);
  assert.equal(keyInMessage(42), '42');
});

test('the store names a key of 16 KiB as the Go backends do', () => {
  const s = new Store({ name: 'unused' }); // nothing here is flushed
  for (const [key, q] of [
    ['k', '"k"'],
    [a(128), `"${a(128)}"`],
    [a(128) + 'b', `"${a(128)}"…(129 bytes)`],
    ['€'.repeat(5461) + 'k', `"${'€'.repeat(42)}"…(16384 bytes)`],
  ]) {
    assert.deepEqual(keyEchoSteps(s, key), [
      `NotFound: state ${q} not found`,
      `Conflict: state ${q}: ETag 999 given but the key does not exist`,
      'OK',
      `Conflict: state ${q}: key already exists`,
      `Conflict: state ${q}: ETag 999 is stale`,
      `Conflict: state ${q}: ETag 999 is stale`,
      `Conflict: state ${q}: key already exists`,
      `InvalidArgument: state ${q}: IfAbsent applies to Set only`,
      `InvalidArgument: state ${q}: ETag and IfAbsent exclude each other`,
      `InvalidArgument: state ${q}: negative TTL -5ms`,
    ]);
  }
  assert.throws(() => s.resolve('a', 'st', a(200), 'mine'), (e) => e.message === `no conflict on a/st/"${a(128)}"…(200 bytes)`);
  assert.throws(() => s.rejectedItem('a', 'st', 'nope'), (e) => e.message === 'no change of a/st/nope refused by the server');
});
