// The ABI's wire encoding (package abi): unsigned varints and byte strings
// as a varint length followed by the bytes, fields in a fixed order with no
// tags. Plus the few Go formatting rules the host must reproduce byte for
// byte: error code names, strconv.Quote (%q) and encoding/json strings.

const enc = new TextEncoder();
const dec = new TextDecoder();

export const utf8 = (s) => enc.encode(s);
export const fromUTF8 = (b) => dec.decode(b);

// Codes, numbered as in abi/abi.go. Their names are the JSON error codes.
export const OK = 0, InvalidArgument = 1, NotFound = 2, Conflict = 3,
  FailedPrecondition = 4, Unavailable = 5, DeadlineExceeded = 6, Internal = 7;
export const codeNames = ['OK', 'InvalidArgument', 'NotFound', 'Conflict',
  'FailedPrecondition', 'Unavailable', 'DeadlineExceeded', 'Internal'];

export const codeName = (c) => codeNames[c] ?? 'Internal';
export function parseCode(name) {
  const i = codeNames.indexOf(name);
  return i < 0 ? Internal : i;
}

// httpStatus is host.HTTPStatus.
export function httpStatus(c) {
  switch (c) {
    case OK: return 200;
    case InvalidArgument: case FailedPrecondition: return 400;
    case NotFound: return 404;
    case Conflict: return 409;
    case Unavailable: return 503;
    case DeadlineExceeded: return 504;
  }
  return 500;
}

// statusCode is host.StatusCode: a code for a reply without a JSON error body.
export function statusCode(status) {
  if (status < 300) return OK;
  if (status === 404) return NotFound;
  if (status === 409) return Conflict;
  if (status === 412) return FailedPrecondition;
  if (status === 502 || status === 503 || status === 429) return Unavailable;
  if (status === 504 || status === 408) return DeadlineExceeded;
  if (status < 500) return InvalidArgument;
  return Internal;
}

// RoamError is an error with a portable code, like sdk.Error.
export class RoamError extends Error {
  constructor(code, message, status) {
    super(message);
    this.name = 'RoamError';
    this.code = typeof code === 'string' ? parseCode(code) : code;
    this.codeName = codeName(this.code);
    this.status = status ?? httpStatus(this.code);
  }
}

export class Writer {
  constructor(size = 64) {
    this.buf = new Uint8Array(size);
    this.n = 0;
  }
  grow(k) {
    if (this.n + k <= this.buf.length) return;
    let c = this.buf.length * 2;
    while (c < this.n + k) c *= 2;
    const b = new Uint8Array(c);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  uvarint(v) {
    this.grow(10);
    // Numbers, not BigInts: every value the ABI carries fits in 2^53.
    while (v >= 0x80) {
      this.buf[this.n++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.n++] = v;
    return this;
  }
  bytes(b) {
    this.uvarint(b.length);
    this.grow(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
    return this;
  }
  string(s) { return this.bytes(enc.encode(s)); }
  finish() { return this.buf.subarray(0, this.n); }
}

// Reader never throws: the first error sticks, later reads return zero
// values, and done() reports whether everything decoded exactly.
export class Reader {
  constructor(b) {
    this.b = b;
    this.i = 0;
    this.err = false;
  }
  uvarint() {
    if (this.err) return 0;
    let v = 0, mul = 1;
    for (let k = 0; k < 10; k++) {
      if (this.i >= this.b.length) break;
      const c = this.b[this.i++];
      v += (c & 0x7f) * mul;
      if (c < 0x80) return v;
      mul *= 128;
    }
    this.fail();
    return 0;
  }
  // int64 reads a uvarint holding an int64 in two's complement (a TTL in
  // milliseconds, abi.TTLMillis), exactly: past 2^53 a Number would round.
  int64() {
    if (this.err) return 0;
    let v = 0n, shift = 0n;
    for (let k = 0; k < 10; k++) {
      if (this.i >= this.b.length) break;
      const c = this.b[this.i++];
      v |= BigInt(c & 0x7f) << shift;
      if (c < 0x80) return Number(BigInt.asIntN(64, v));
      shift += 7n;
    }
    this.fail();
    return 0;
  }
  // count reads a length that must fit in what is left, as abi.Reader.Count.
  count() {
    const v = this.uvarint();
    if (v > this.b.length - this.i) {
      this.fail();
      return 0;
    }
    return v;
  }
  bytes() {
    const n = this.uvarint();
    if (this.err) return new Uint8Array(0);
    if (n > this.b.length - this.i) {
      this.fail();
      return new Uint8Array(0);
    }
    const v = this.b.subarray(this.i, this.i + n);
    this.i += n;
    return v;
  }
  string() { return dec.decode(this.bytes()); }
  fail() {
    this.err = true;
    this.i = this.b.length;
  }
  done() { return !this.err && this.i === this.b.length; }
}

const hex = (c, w) => c.toString(16).padStart(w, '0');

// goMillis formats a whole number of milliseconds as Go's
// time.Duration.String does: "-5ms", "1.5s", "1m30s", "1h0m0s".
export function goMillis(ms) {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let n = Math.abs(ms);
  if (n < 1000) return `${sign}${n}ms`;
  const h = Math.floor(n / 3600000);
  n -= h * 3600000;
  const m = Math.floor(n / 60000);
  n -= m * 60000;
  const frac = String(n % 1000).padStart(3, '0').replace(/0+$/, '');
  const s = `${Math.floor(n / 1000)}${frac ? '.' + frac : ''}s`;
  if (h > 0) return `${sign}${h}h${m}m${s}`;
  if (m > 0) return `${sign}${m}m${s}`;
  return sign + s;
}

// quoteName is sdk.QuoteName (the Go hosts' messages): goQuote of a name
// from a request (an unknown app id, a method) cut to its first 64 UTF-8
// bytes, between characters, and its length when it is longer (a name
// comes from the request, and may be 100 KB).
export const quoteName = (name) => quoteCut(name, 64);

// quoteKey is sdk.QuoteKey: goQuote of a state key cut to its first 128
// UTF-8 bytes, as quoteName cuts. Every message that names a state key
// quotes it so, on every host: a key may be 16 KiB.
export const quoteKey = (key) => quoteCut(key, 128);

// keyInMessage is a state key as a message that names it unquoted
// ("no conflict on app/store/key") prints it: as it is up to the 128 bytes
// quoteKey repeats whole, and quoteKey's cut of it beyond, as the Dapr
// backend's keyInMessage does. A key from the page may be any value.
export function keyInMessage(key) {
  const s = String(key);
  return s.length * 3 <= 128 || utf8(s).length <= 128 ? s : quoteKey(s);
}

// utf8Size is the UTF-8 size of a code point as TextEncoder writes it: a
// lone surrogate is written as U+FFFD, 3 bytes.
const utf8Size = (c) => (c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4);

// quoteCut is sdk's quoteCut: goQuote of s, or of its first limit UTF-8
// bytes cut between characters and followed by "…(N bytes)".
function quoteCut(s, limit) {
  // A UTF-16 unit is at most 3 UTF-8 bytes: a short string needs no count.
  if (s.length * 3 <= limit) return goQuote(s);
  const n = utf8(s).length;
  if (n <= limit) return goQuote(s);
  let end = 0, len = 0;
  for (const ch of s) {
    const m = utf8Size(ch.codePointAt(0));
    if (len + m > limit) break;
    len += m;
    end += ch.length;
  }
  return `${goQuote(s.slice(0, end))}…(${n} bytes)`;
}

// printable is what Go's strconv.IsPrint takes beyond ASCII: letters,
// marks, numbers, punctuation and symbols, but for the characters of
// newerThanGo.
const printable = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

// newerThanGo holds, as first-last pairs, the characters assigned since
// Unicode 15.0, the edition of Go's tables (unicode.Version, Go 1.26): a
// newer engine's tables make them letters or symbols, and Go escapes them
// as unassigned. TestKeyEchoParity (web/webtest) compares every code point
// with Go's strconv.IsPrint, and names the pairs to change when Go moves
// to a newer edition.
const newerThanGo = [
  0x88f, 0x88f, 0x897, 0x897, 0xc5c, 0xc5c, 0xcdc, 0xcdc, 0x1acf, 0x1add, 0x1ae0, 0x1aeb,
  0x1b4e, 0x1b4f, 0x1b7f, 0x1b7f, 0x1c89, 0x1c8a, 0x20c1, 0x20c1, 0x2427, 0x2429, 0x2b96, 0x2b96,
  0x2ffc, 0x2fff, 0x31e4, 0x31e5, 0x31ef, 0x31ef, 0xa7cb, 0xa7cf, 0xa7d2, 0xa7d2, 0xa7d4, 0xa7d4,
  0xa7da, 0xa7dc, 0xa7f1, 0xa7f1, 0xfbc3, 0xfbd2, 0xfd90, 0xfd91, 0xfdc8, 0xfdce, 0x105c0, 0x105f3,
  0x10940, 0x10959, 0x10d40, 0x10d65, 0x10d69, 0x10d85, 0x10d8e, 0x10d8f, 0x10ec2, 0x10ec7,
  0x10ed0, 0x10ed8, 0x10efa, 0x10efc, 0x11380, 0x11389, 0x1138b, 0x1138b, 0x1138e, 0x1138e,
  0x11390, 0x113b5, 0x113b7, 0x113c0, 0x113c2, 0x113c2, 0x113c5, 0x113c5, 0x113c7, 0x113ca,
  0x113cc, 0x113d5, 0x113d7, 0x113d8, 0x113e1, 0x113e2, 0x116d0, 0x116e3, 0x11b60, 0x11b67,
  0x11bc0, 0x11be1, 0x11bf0, 0x11bf9, 0x11db0, 0x11ddb, 0x11de0, 0x11de9, 0x11f5a, 0x11f5a,
  0x13460, 0x143fa, 0x16100, 0x16139, 0x16d40, 0x16d79, 0x16ea0, 0x16eb8, 0x16ebb, 0x16ed3,
  0x16ff2, 0x16ff6, 0x187f8, 0x187ff, 0x18cff, 0x18cff, 0x18d09, 0x18d1e, 0x18d80, 0x18df2,
  0x1cc00, 0x1ccfc, 0x1cd00, 0x1ceb3, 0x1ceba, 0x1ced0, 0x1cee0, 0x1cef0, 0x1e5d0, 0x1e5fa,
  0x1e5ff, 0x1e5ff, 0x1e6c0, 0x1e6de, 0x1e6e0, 0x1e6f5, 0x1e6fe, 0x1e6ff, 0x1f6d8, 0x1f6d8,
  0x1f777, 0x1f77a, 0x1f8b2, 0x1f8bb, 0x1f8c0, 0x1f8c1, 0x1f8d0, 0x1f8d8, 0x1fa54, 0x1fa57,
  0x1fa89, 0x1fa8a, 0x1fa8e, 0x1fa8f, 0x1fabe, 0x1fabe, 0x1fac6, 0x1fac6, 0x1fac8, 0x1fac8,
  0x1facd, 0x1facd, 0x1fadc, 0x1fadc, 0x1fadf, 0x1fadf, 0x1fae9, 0x1faea, 0x1faef, 0x1faef,
  0x1fbcb, 0x1fbef, 0x1fbfa, 0x1fbfa, 0x2b73a, 0x2b73f, 0x2cea2, 0x2cead, 0x2ebf0, 0x2ee5d,
  0x323b0, 0x33479,
];

function isNewerThanGo(c) {
  for (let i = 0; i < newerThanGo.length && newerThanGo[i] <= c; i += 2) {
    if (c <= newerThanGo[i + 1]) return true;
  }
  return false;
}

// goQuote is Go's strconv.Quote, as fmt's %q prints a string. A string here
// is valid Unicode but for lone surrogates, which UTF-8 (TextEncoder)
// writes as U+FFFD: they print as the U+FFFD a Go host would hold, and as
// Go prints it. Invalid UTF-8 decodes to U+FFFD before it gets here, so
// the \x escapes Go prints for invalid bytes never occur.
export function goQuote(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    switch (ch) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\x07': out += '\\a'; continue;
      case '\b': out += '\\b'; continue;
      case '\f': out += '\\f'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '\v': out += '\\v'; continue;
    }
    if (c < 0x20 || c === 0x7f) out += '\\x' + hex(c, 2);
    else if (c < 0x7f) out += ch;
    else if (c >= 0xd800 && c <= 0xdfff) out += '\ufffd';
    else if (printable.test(ch) && !isNewerThanGo(c)) out += ch;
    else if (c < 0x10000) out += '\\u' + hex(c, 4);
    else out += '\\U' + hex(c, 8);
  }
  return out + '"';
}

// goJSONString is a JSON string as encoding/json writes it: HTML-safe
// escapes for <, > and &, and escapes for U+2028 and U+2029.
export function goJSONString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    switch (ch) {
      case '"': out += '\\"'; continue;
      case '\\': out += '\\\\'; continue;
      case '\b': out += '\\b'; continue;
      case '\f': out += '\\f'; continue;
      case '\n': out += '\\n'; continue;
      case '\r': out += '\\r'; continue;
      case '\t': out += '\\t'; continue;
      case '<': case '>': case '&': out += '\\u00' + hex(c, 2); continue;
    }
    if (c < 0x20 || c === 0x2028 || c === 0x2029) out += '\\u' + hex(c, 4);
    else out += ch;
  }
  return out + '"';
}

// errorBody is host.EncodeError: {"code":...,"message":...}.
export function errorBody(code, message) {
  return utf8(`{"code":${goJSONString(codeName(code))},"message":${goJSONString(message)}}`);
}

export function base64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function fromBase64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// validJSON reports whether b is one JSON value, as json.Valid does.
export function validJSON(b) {
  try {
    JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b));
    return true;
  } catch {
    return false;
  }
}

export function sameBytes(a, b) {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// forwardBody is the body of the state sync API's publish request that
// forwards an event record to the server (index.js); forwardBytes is its
// size in bytes without building it, for the check at publish time.
export function forwardBody(rec) {
  return { type: rec.type, datacontenttype: rec.datacontenttype, data_base64: base64(rec.data), metadata: rec.metadata };
}
export function forwardBytes(rec) {
  const rest = JSON.stringify({ type: rec.type, datacontenttype: rec.datacontenttype, data_base64: '', metadata: rec.metadata });
  return utf8(rest).length + 4 * Math.ceil(rec.data.length / 3);
}

// sendTrace reports whether a request to url may carry the trace headers,
// by options.traceHeaders (mode). Cross-origin, they make the browser ask
// the server first (a CORS preflight) whether it takes them, and a server
// that does not list them in Access-Control-Allow-Headers fails the whole
// request, not just the headers: so by default ('same-origin') only a
// same-origin server gets them; 'always' sends them to any server (one
// that allows them), 'never' to none.
export function sendTrace(mode, url) {
  if (mode === 'always') return true;
  if (mode === 'never') return false;
  return new URL(url, self.location?.href).origin === self.location?.origin;
}

// redirectError is the error of res, the reply to a request to url, when
// it is a redirect or came through one, and null otherwise. Every request
// of the host that sends something is checked with it: state sync's
// pushes, pulls and forwarded events, the remote invoke (the module fetch,
// a GET of a static asset, follows redirects). A redirect leads where the
// page did not send the request (a gateway's sign-in page, another server;
// a POST turned into a GET): what answers there, a plausible 200 with JSON
// or an error, must not be taken for the reply, nor a change or an event
// counted as sent.
//
// The fetches are made with redirect: 'manual', so that nothing is sent on
// to the redirect's target: Chromium answers them with an opaque redirect,
// which does not say where to; another fetch (node's) with the 3xx itself.
// A synchronous XMLHttpRequest (the remote invoke) cannot be told not to
// follow: its reply is refused when its responseURL is not url. The error
// is Unavailable with status 502, as for a sync reply that breaks the
// protocol: the server, or something in front of it, answered with what is
// not its reply. what starts the message ("sync: <url>").
export function redirectError(what, url, res) {
  let to = null, status = 0; // where it led, and what answered there
  if (typeof res.responseURL === 'string') {
    if (res.responseURL !== '' && res.responseURL !== absoluteURL(url)) [to, status] = [res.responseURL, res.status];
  } else if (res.type === 'opaqueredirect' || redirectStatuses.has(res.status)) {
    to = res.headers?.get('Location') ?? '';
  } else if (res.redirected) {
    [to, status] = [res.url, res.status];
  }
  if (to === null) return null;
  const where = to ? ` to ${to}${status ? `, which answered ${status}` : ''}` : '';
  return new RoamError(Unavailable, `${what} answered with a redirect${where}: refused, as what a redirect leads to (a sign-in page, another server) is not the reply`, 502);
}

// redirectStatuses are Fetch's redirect statuses.
const redirectStatuses = new Set([301, 302, 303, 307, 308]);

// absoluteURL is url resolved as a request resolves it, without fragment
// (responseURL has none), or url itself when it does not resolve.
function absoluteURL(url) {
  try {
    const u = new URL(url, globalThis.location?.href);
    u.hash = '';
    return u.href;
  } catch {
    return url;
  }
}

// traceContext returns the W3C trace context {traceparent, tracestate} to
// propagate, or null when traceparent is missing or does not parse. It
// accepts exactly what internal/tracectx.Parse (the Go hosts' parser, which
// follows OpenTelemetry's propagator) accepts: lowercase hex, ids not all
// zero, version ff refused, version 00 exactly 55 characters with no flag
// but sampled (01) and random (02), and a later version when its first four
// fields parse and what follows starts with '-'. A tracestate that is not
// valid (or over 1024 characters, which tracectx drops unparsed) is dropped
// and the traceparent kept, as there.
export function traceContext(traceparent, tracestate) {
  if (typeof traceparent !== 'string' || !validTraceparent(traceparent)) return null;
  return { traceparent, tracestate: typeof tracestate === 'string' && validTracestate(tracestate) ? tracestate : '' };
}

const hex2 = /^[0-9a-f]{2}$/;
const traceID = /^[0-9a-f]{32}$/;
const spanID = /^[0-9a-f]{16}$/;

function validTraceparent(s) {
  if (s.length < 55 || s[2] !== '-' || s[35] !== '-' || s[52] !== '-') return false;
  const ver = s.slice(0, 2);
  if (!hex2.test(ver) || ver === 'ff' || (ver === '00' && s.length !== 55) || (s.length > 55 && s[55] !== '-')) return false;
  const tid = s.slice(3, 35), sid = s.slice(36, 52), flags = s.slice(53, 55);
  if (!traceID.test(tid) || !spanID.test(sid) || /^0+$/.test(tid) || /^0+$/.test(sid) || !hex2.test(flags)) return false;
  return ver !== '00' || parseInt(flags, 16) <= 2;
}

// validTracestate is OpenTelemetry's trace.ParseTraceState (W3C Trace
// Context): at most 32 comma-separated key=value members, keys unique;
// empty members are skipped, and blanks before a key and after a value
// allowed.
const tsKey = /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
const tsValue = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

function validTracestate(s) {
  if (s === '' || s.length > 1024) return false;
  const keys = new Set();
  for (const m of s.split(',')) {
    if (m === '') continue;
    const i = m.indexOf('=');
    if (i < 0) return false;
    const k = m.slice(0, i).replace(/^[ \t]+/, ''), v = m.slice(i + 1).replace(/[ \t]+$/, '');
    if (!tsKey.test(k) || !tsValue.test(v) || keys.has(k)) return false;
    keys.add(k);
  }
  return keys.size <= 32;
}

// fetchModule fetches and compiles a module. The page does it (Host.load),
// while the worker opens IndexedDB, and keeps the compiled module: a new
// worker gets it again without the network (compiling runs off the main
// thread). The fetch, body included, must end within timeoutMs: a server
// that never finishes sending the module would otherwise leave the load,
// and every later load of the same URL, pending for good. Redirects are
// followed, as for any static asset (a CDN, a content-hashed name): a GET
// of a module changes nothing where it leads, and what answers there is
// checked as a module like any other.
export async function fetchModule(url, timeoutMs = 60000) {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() || url);
  const signal = AbortSignal.timeout(timeoutMs);
  const lateError = () => new RoamError(Unavailable, `fetching module ${url}: not complete in ${timeoutMs} ms (loadTimeoutMs)`);
  let res;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throw signal.aborted ? lateError() : new RoamError(Unavailable, `fetching module ${url}: ${e.message}`);
  }
  if (!res.ok) throw new RoamError(res.status === 404 ? NotFound : Unavailable, `fetching module ${url}: HTTP ${res.status}`);
  let compiled;
  try {
    const ct = res.headers.get('Content-Type') ?? '';
    compiled = ct.startsWith('application/wasm') ? await WebAssembly.compileStreaming(res) : await WebAssembly.compile(await res.arrayBuffer());
  } catch (e) {
    if (signal.aborted) throw lateError();
    throw new RoamError(InvalidArgument, `${name} is not a valid WebAssembly module (${e.message})`);
  }
  return { compiled, name };
}
