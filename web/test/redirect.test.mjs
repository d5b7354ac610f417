// redirectError (src/wire.js), the one check of every request of the host
// for a redirect, on replies shaped as the browser's fetch, node's fetch
// and a synchronous XMLHttpRequest give them. The browser tests
// (web/webtest/audit_test.go, TestAudit…Redirected) run it in Chromium.
// Run by TestStoreUnit (web/webtest), or alone: node --test test/*.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { redirectError, Unavailable } from '../src/wire.js';

const url = 'http://127.0.0.1:8080/v1/apps/inventory/methods/Reserve';
const tail = ': refused, as what a redirect leads to (a sign-in page, another server) is not the reply';

test('a synchronous XMLHttpRequest is refused when its reply came from another URL', () => {
  const xhr = (responseURL, status = 200) => ({ responseURL, status });
  assert.equal(redirectError('invoke', url, xhr(url)), null);
  assert.equal(redirectError('invoke', url, xhr(url, 404)), null);
  assert.equal(redirectError('invoke', url, xhr('')), null, 'no reply: the send failed, and said so');
  // responseURL is the URL as parsed: no fragment, a default port dropped,
  // the host lowercased.
  assert.equal(redirectError('invoke', url + '#x', xhr(url)), null);
  assert.equal(redirectError('invoke', 'HTTP://Example.com:80/a/%7e', xhr('http://example.com/a/%7e')), null);
  const e = redirectError('invoke inventory.Reserve: app inventory at http://127.0.0.1:8080', url, xhr('http://127.0.0.1:8080/signin'));
  assert.equal(e.code, Unavailable);
  assert.equal(e.status, 502);
  assert.equal(e.message, `invoke inventory.Reserve: app inventory at http://127.0.0.1:8080 answered with a redirect to http://127.0.0.1:8080/signin, which answered 200${tail}`);
  assert.ok(redirectError('invoke', url, xhr(url + '/', 404)), 'a redirect to an error is refused too');
});

test('a fetch answered with a redirect is refused', async () => {
  assert.equal(redirectError('sync: x', url, { type: 'basic', status: 200, redirected: false, url }), null);
  assert.equal(redirectError('sync: x', url, { type: 'cors', status: 304, redirected: false, url }), null);
  // Chromium, redirect: 'manual': where to is not told.
  const opaque = redirectError('sync: x', url, { type: 'opaqueredirect', status: 0, redirected: false, url, headers: new Headers() });
  assert.equal(opaque.message, `sync: x answered with a redirect${tail}`);
  // A fetch that followed.
  assert.equal(redirectError('sync: x', url, { type: 'basic', status: 204, redirected: true, url: 'http://other/' }).message,
    `sync: x answered with a redirect to http://other/, which answered 204${tail}`);
  // node's fetch, redirect: 'manual': the 3xx itself.
  const srv = createServer((req, res) => {
    res.writeHead(req.url === '/307' ? 307 : 302, { Location: '/signin' });
    res.end('<html>sign in</html>');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    for (const path of ['/302', '/307']) {
      const at = `http://127.0.0.1:${srv.address().port}${path}`;
      const res = await fetch(at, { method: 'POST', body: '{}', redirect: 'manual' });
      const e = redirectError(`sync: ${at}`, at, res);
      await res.body?.cancel();
      assert.equal(e?.message, `sync: ${at} answered with a redirect to /signin${tail}`);
    }
  } finally {
    srv.close();
  }
});
