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
// pages are the tabs: commands act on pages[c.page ?? 0]; newPage opens
// another tab in the same context (the same origin's IndexedDB, Web Locks
// and BroadcastChannels), as a second tab of a user's browser.
const pages = [];
const logs = [];
const logWaits = new Set(); // {text, resolve}: waitLog's
const keep = (s) => {
  logs.push(s);
  if (logs.length > 500) logs.shift();
  for (const w of logWaits) {
    if (s.includes(w.text)) {
      logWaits.delete(w);
      w.resolve(s);
    }
  }
};
const watch = (p) => {
  const i = pages.push(p) - 1;
  const tag = i === 0 ? '' : `[tab ${i}] `;
  p.on('console', (m) => keep(`${tag}${m.type()}: ${m.text()}`));
  p.on('pageerror', (e) => keep(`${tag}pageerror: ${e.message}`));
  return i;
};
watch(context.pages()[0] ?? (await context.newPage()));
context.on('weberror', (e) => keep(`weberror: ${e.error().message}`));
const tab = (c) => {
  const p = pages[c.page ?? 0];
  if (!p) throw new Error(`no tab ${c.page}`);
  return p;
};

const ops = {
  newPage: async () => watch(await context.newPage()),
  closePage: async (c) => {
    await tab(c).close({ runBeforeUnload: false });
    return true;
  },
  goto: async (c) => (await tab(c).goto(c.url, { waitUntil: 'load' }))?.status(),
  reload: async (c) => (await tab(c).reload({ waitUntil: 'load' }))?.status(),
  // eval runs fn (a function's source) in the page with arg; awaits it.
  eval: (c) => tab(c).evaluate(([src, arg]) => (0, eval)('(' + src + ')')(arg), [c.fn, c.arg ?? null]),
  // call is one request through the page's host: body and reply in base64.
  call: (c) => tab(c).evaluate(async ([app, method, b64]) => {
    const bin = atob(b64);
    const body = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) body[i] = bin.charCodeAt(i);
    const r = await window.roamHost.callRaw(app, method, body);
    let s = '';
    for (let i = 0; i < r.body.length; i += 0x8000) s += String.fromCharCode.apply(null, r.body.subarray(i, i + 0x8000));
    return { status: r.status, body: btoa(s) };
  }, [c.app, c.method, c.body ?? '']),
  offline: (c) => context.setOffline(!!c.value),
  click: (c) => tab(c).click(c.selector),
  fill: (c) => tab(c).fill(c.selector, c.value),
  select: (c) => tab(c).selectOption(c.selector, c.value),
  text: (c) => tab(c).innerText(c.selector),
  // wait waits until fn(arg) is truthy in the page, and returns it.
  wait: async (c) => (await tab(c).waitForFunction(([src, arg]) => (0, eval)('(' + src + ')')(arg), [c.fn, c.arg ?? null], { timeout: c.timeoutMs ?? 20000 })).jsonValue(),
  screenshot: (c) => tab(c).screenshot({ path: c.path, fullPage: true }).then(() => c.path),
  logs: () => logs.slice(),
  // waitLog waits until the console of a tab or of its workers shows a
  // line containing c.text after the c.after-th line (default: the lines
  // kept so far are not looked at), and returns it.
  waitLog: (c) => new Promise((resolve) => {
    const seen = logs.slice(c.after ?? logs.length).find((l) => l.includes(c.text));
    if (seen) resolve(seen);
    else logWaits.add({ text: c.text, resolve });
  }),
  logCount: () => logs.length,
  // cdp sends a Chrome DevTools Protocol command (Storage.clearDataForOrigin).
  cdp: async (c) => {
    const s = await context.newCDPSession(tab(c));
    try {
      return await s.send(c.method, c.params ?? {});
    } finally {
      await s.detach();
    }
  },
  // cdpKeep is cdp through a session that stays attached to the tab: what
  // a session sets that lasts only as long as it does
  // (Storage.overrideQuotaForOrigin) stays set.
  cdpKeep: async (c) => {
    const p = tab(c);
    p.__roamCDP ??= await context.newCDPSession(p);
    return p.__roamCDP.send(c.method, c.params ?? {});
  },
  // workerEval runs fn with arg in the newest web worker whose URL contains
  // c.url (the roam worker), to inject faults the page cannot reach.
  workerEval: async (c) => {
    const w = tab(c).workers().filter((x) => x.url().includes(c.url)).pop();
    if (!w) throw new Error(`no worker ${c.url}; workers: ${tab(c).workers().map((x) => x.url()).join(', ')}`);
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
