// A JSON-lines remote control for a headless Chromium, used by the Go
// tests in web/webtest: each stdin line is a command {id, op, ...}; each
// stdout line is its answer {id, ok, value} or {id, ok: false, error}.
// Commands run concurrently (answers may come out of order), so a test can
// have many calls in flight, as the conformance vectors' concurrent steps do.
//
//	node runner.mjs --user-data-dir DIR
//
// It drives Debian's chromium through playwright-core: Playwright's own
// browser download is not available here.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};

const context = await chromium.launchPersistentContext(opt('--user-data-dir'), {
  executablePath: opt('--chromium', '/usr/bin/chromium'),
  headless: true,
  viewport: { width: 1100, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] ?? (await context.newPage());
const logs = [];
const keep = (s) => {
  logs.push(s);
  if (logs.length > 500) logs.shift();
};
page.on('console', (m) => keep(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => keep(`pageerror: ${e.message}`));
context.on('weberror', (e) => keep(`weberror: ${e.error().message}`));

const ops = {
  goto: async (c) => (await page.goto(c.url, { waitUntil: 'load' }))?.status(),
  reload: async () => (await page.reload({ waitUntil: 'load' }))?.status(),
  // eval runs fn (a function's source) in the page with arg; awaits it.
  eval: (c) => page.evaluate(([src, arg]) => (0, eval)('(' + src + ')')(arg), [c.fn, c.arg ?? null]),
  // call is one request through the page's host: body and reply in base64.
  call: (c) => page.evaluate(async ([app, method, b64]) => {
    const bin = atob(b64);
    const body = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) body[i] = bin.charCodeAt(i);
    const r = await window.roamHost.callRaw(app, method, body);
    let s = '';
    for (let i = 0; i < r.body.length; i += 0x8000) s += String.fromCharCode.apply(null, r.body.subarray(i, i + 0x8000));
    return { status: r.status, body: btoa(s) };
  }, [c.app, c.method, c.body ?? '']),
  offline: (c) => context.setOffline(!!c.value),
  click: (c) => page.click(c.selector),
  fill: (c) => page.fill(c.selector, c.value),
  select: (c) => page.selectOption(c.selector, c.value),
  text: (c) => page.innerText(c.selector),
  // wait waits until fn(arg) is truthy in the page, and returns it.
  wait: async (c) => (await page.waitForFunction(([src, arg]) => (0, eval)('(' + src + ')')(arg), [c.fn, c.arg ?? null], { timeout: c.timeoutMs ?? 20000 })).jsonValue(),
  screenshot: (c) => page.screenshot({ path: c.path, fullPage: true }).then(() => c.path),
  logs: () => logs.slice(),
  // cdp sends a Chrome DevTools Protocol command (Storage.clearDataForOrigin).
  cdp: async (c) => {
    const s = await context.newCDPSession(page);
    try {
      return await s.send(c.method, c.params ?? {});
    } finally {
      await s.detach();
    }
  },
  // workerEval runs fn with arg in the newest web worker whose URL contains
  // c.url (the roam worker), to inject faults the page cannot reach.
  workerEval: async (c) => {
    const w = page.workers().filter((x) => x.url().includes(c.url)).pop();
    if (!w) throw new Error(`no worker ${c.url}; workers: ${page.workers().map((x) => x.url()).join(', ')}`);
    return w.evaluate(([src, arg]) => (0, eval)('(' + src + ')')(arg), [c.fn, c.arg ?? null]);
  },
};

const out = (m) => process.stdout.write(JSON.stringify(m) + '\n');
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
const inflight = new Set();
rl.on('line', (line) => {
  if (!line.trim()) return;
  const c = JSON.parse(line);
  const p = (async () => {
    try {
      if (!ops[c.op]) throw new Error(`unknown op ${c.op}`);
      out({ id: c.id, ok: true, value: (await ops[c.op](c)) ?? null });
    } catch (e) {
      out({ id: c.id, ok: false, error: String(e?.message ?? e) });
    }
  })();
  inflight.add(p);
  p.finally(() => inflight.delete(p));
});
rl.on('close', async () => {
  await Promise.allSettled([...inflight]);
  await context.close();
  process.exit(0);
});
