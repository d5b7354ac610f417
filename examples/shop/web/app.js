// The shop's page: the orders and inventory apps run here, in the browser
// host's worker, with state in IndexedDB. The page only renders what the
// apps answer and decides what to sync: the stock of the SKUs it shows and
// the customer's orders. Built into dist/ by web/build.mjs.
//
// Query parameters: remote (the server's base URL; default this page's
// origin, "none" for local only), db (IndexedDB name), customer, skus
// (comma-separated), modules (the modules' base URL).
import { Host } from '../../../web/src/index.js';

const q = new URLSearchParams(location.search);
const remote = q.get('remote') === 'none' ? '' : q.get('remote') || location.origin;
const skus = (q.get('skus') || 'apple,pear,plum').split(',').filter(Boolean);
const modules = q.get('modules') || './modules/';
const store = 'statestore';
const $ = (s) => document.querySelector(s);
const dec = new TextDecoder();

const host = new Host({ db: q.get('db') || 'roam-shop', remote });
let orders, inventory;
let customer = q.get('customer') || localStorage.getItem('roam-shop-customer') || 'ada';

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('data-')) e.setAttribute(k, v);
    else if (k === 'onclick') e.addEventListener('click', v);
    else e[k] = v;
  }
  e.append(...kids);
  return e;
}

function say(text, error = false) {
  $('#message').textContent = text;
  $('#message').className = error ? 'error' : '';
}

// setOnline shows whether the server is reachable. A sync that finished
// after the browser went offline must not show it online again.
function setOnline(v) {
  v = v && navigator.onLine;
  $('#online').dataset.online = String(v);
  $('#online').textContent = v ? 'online' : 'offline';
}

// sync pushes local changes and pulls what the page shows: the stock of
// its SKUs, the customer's order index, and every order it names.
let syncing = null;
async function sync() {
  if (!remote) return;
  if (!navigator.onLine) {
    setOnline(false);
    return;
  }
  syncing ??= (async () => {
    try {
      const res = await host.sync({
        pull: [
          { app: 'inventory', store, keys: skus.map((s) => 'stock/' + s) },
          { app: 'orders', store, keys: ['customer/' + customer] },
        ],
      });
      const [idx] = await host.pull('orders', store, ['customer/' + customer]);
      if (idx.found) {
        const ids = JSON.parse(dec.decode(idx.value)).ids ?? [];
        if (ids.length) await host.pull('orders', store, ids.map((id) => 'order/' + id));
      }
      setOnline(true);
      $('#synced').textContent = 'synced ' + new Date().toLocaleTimeString();
      // A store the server would not read stays as it was here.
      if (res.pullFailed.length > 0) say('sync: the server did not give ' + res.pullFailed.map((f) => `${f.app}'s ${f.store} (${f.status}: ${f.message})`).join(', '), true);
    } catch (e) {
      if (e.offline) setOnline(false);
      else say(`sync: ${e.message}`, true);
    } finally {
      syncing = null;
    }
    await render();
  })();
  return syncing;
}

let rendering = null, again = false;
async function render() {
  if (rendering) {
    again = true;
    return rendering;
  }
  rendering = (async () => {
    do {
      again = false;
      await draw();
    } while (again);
    rendering = null;
  })();
  return rendering;
}

async function draw() {
  const st = await host.status();
  const dirty = new Set(st.dirty.map((d) => d.app + '/' + d.key));
  $('#pending-count').textContent = String(st.dirty.length + st.events);
  // What the server refused for good is not pending: sync does not send it
  // again until asked to (Retry), after the server or the data changed.
  const refused = [
    ...st.rejected.map((r) => `${r.app}: ${r.key} (${r.status}: ${r.message})`),
    ...st.parked.map((p) => `${p.app}: event ${p.topic} (${p.reason})`),
  ];
  $('#refused').hidden = refused.length === 0;
  $('#refused-count').textContent = String(refused.length);
  $('#refused').title = refused.join('\n');

  const rows = [];
  for (const sku of skus) {
    let avail = '—';
    try {
      avail = String((await inventory.call('Stock', { sku })).available);
    } catch { /* not stocked yet */ }
    rows.push(el('tr', { 'data-sku': sku }, el('td', {}, sku), el('td', { className: 'available' }, avail)));
  }
  $('#stock tbody').replaceChildren(...rows);

  $('#who').textContent = customer;
  const list = await orders.call('ListByCustomer', { customer });
  $('#orders tbody').replaceChildren(...list.orders.slice().reverse().map((o) => el('tr',
    { 'data-order': o.id, 'data-status': o.status, 'data-pending': dirty.has('orders/order/' + o.id) ? '1' : '0' },
    el('td', {}, el('code', {}, o.id)), el('td', {}, o.sku), el('td', {}, String(o.quantity)), el('td', { className: 'status' }, o.status),
    el('td', {}, o.status === 'cancelled' ? '' : el('button', { className: 'cancel', type: 'button', textContent: 'Cancel', onclick: () => cancel(o.id) })))));

  const show = (v) => (v.found ? dec.decode(v.value) : '(deleted)');
  $('#conflicts').replaceChildren(st.conflicts.length === 0 ? el('p', {}, 'None.') : el('ul', {}, ...st.conflicts.map((c) => el('li',
    { 'data-key': c.key, 'data-app': c.app },
    el('strong', {}, `${c.app}: ${c.key}`), ' changed here and on the server.',
    el('div', { className: 'versions' },
      el('div', { className: 'mine' }, 'This page: ', el('code', {}, show(c.local))),
      el('div', { className: 'theirs' }, 'Server: ', el('code', {}, show(c.server)))),
    el('button', { className: 'keep-mine', type: 'button', textContent: 'Keep mine', onclick: () => resolve(c, 'mine') }), ' ',
    el('button', { className: 'take-theirs', type: 'button', textContent: 'Take the server\'s', onclick: () => resolve(c, 'theirs') }),
  ))));
}

async function create(ev) {
  ev.preventDefault();
  customer = $('#customer').value.trim();
  localStorage.setItem('roam-shop-customer', customer);
  try {
    const r = await orders.call('Create', { customer, sku: $('#sku').value, quantity: Number($('#quantity').value) });
    say(`order ${r.order.id} created`);
  } catch (e) {
    say(`${e.codeName}: ${e.message}`, true);
  }
  await render();
  sync();
}

async function cancel(id) {
  try {
    await orders.call('Cancel', { id });
    say(`order ${id} cancelled`);
  } catch (e) {
    say(`${e.codeName}: ${e.message}`, true);
  }
  await render();
  sync();
}

async function resolve(c, choice) {
  await host.resolve(c.app, c.store, c.key, choice);
  await render();
  sync();
}

// retry sends again what the server refused, say after its body limit was
// raised: the changes and events, as they are.
async function retry() {
  try {
    const n = await host.retry();
    say(`sending ${n.keys} refused change(s) and ${n.events} event(s) again`);
  } catch (e) {
    say(`${e.codeName}: ${e.message}`, true);
  }
  await render();
  await syncing; // one in flight started before the retry
  await sync();
}

async function main() {
  $('#customer').value = customer;
  $('#sku').replaceChildren(...skus.map((s) => el('option', { value: s, textContent: s })));
  try {
    orders = await host.load(modules + 'orders.wasm');
    inventory = await host.load(modules + 'inventory.wasm');
  } catch (e) {
    $('#error').textContent = `The shop could not start: ${e.message}`;
    document.body.dataset.error = e.message;
    return;
  }
  window.shop = { host, orders, inventory, sync, render };
  $('#order').addEventListener('submit', create);
  $('#sync').addEventListener('click', () => sync());
  $('#retry').addEventListener('click', () => retry());
  addEventListener('online', () => sync());
  addEventListener('offline', () => setOnline(false));
  host.on('change', () => render());
  setOnline(navigator.onLine);
  await render();
  document.body.dataset.ready = '1';
  await sync();
  if (remote) setInterval(() => { if (navigator.onLine) sync(); }, 3000);
}

main();
