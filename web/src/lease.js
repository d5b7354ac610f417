// A tab's turn at the database. Every tab of an origin runs its own worker
// over the same IndexedDB database, and each worker holds its apps' state
// in memory (state must answer synchronously). Two workers writing at once
// would each check a conditional write against its own memory and commit
// over the other: both Increments of a counter acknowledged, one lost; two
// events published into the same outbox position, one overwritten.
//
// So a worker works on the database only while its page holds an
// exclusive Web Lock named after the database, and before it works it
// reads what the other tabs committed since its own last commit
// (Runtime.refresh: meta 'gen' counts every tab's commits). The page keeps
// the lock while no other tab asks for it, so a lone tab pays nothing; a
// worker that needs the database asks its page for the lock and says so
// on the database's BroadcastChannel ('want', repeated while it waits),
// and the worker whose page holds it lets go as soon as the operation it
// is running, if any, is done.
//
// The page holds the lock, not the worker, because the page outlives its
// workers: a browser ends a worker busy in wasm up to 2 s after it is told
// to, and a lock the worker held would be held that long, by a worker that
// will never work again. The page lends its lock to the worker that
// replaces it. Every commit also checks, in its transaction, that the
// database is at the gen it expects (Store.write), so that a writer the
// lock did not stop (a worker being ended, a page without Web Locks)
// fails its commit with a clear error instead of overwriting.

export class Lease {
  // channel: the database's BroadcastChannel; ask(what): asks the page to
  // 'request' or 'release' the lock (null: the page has no Web Locks);
  // refresh(): reads what the other tabs committed; busy(): whether an
  // operation is running or queued here; held: whether the page holds the
  // lock already (for the worker this one replaces).
  constructor(channel, ask, refresh, busy, held) {
    this.channel = channel;
    this.ask = ask;
    this.refresh = refresh;
    this.busy = busy;
    this.held = held || !ask;
    this.fresh = false; // memory read since the lock was last taken
    this.wanted = false; // another tab asked since this one last let go
    this.granted = null;
    this.acquiring = null;
    this.aborted = null;
    if (!ask) console.warn('roam: no Web Locks here (not a secure context?): tabs of this page take no turns at the database, and a commit that finds another tab committed first fails');
  }

  // enter resolves once this tab holds the database and memory is current.
  // A tab that holds it while another asks lets go first and queues again
  // behind it, so that a busy tab does not starve the others.
  async enter() {
    if (this.aborted) throw this.aborted;
    if (this.held && this.wanted && this.ask) this.letGo();
    if (!this.held) {
      this.acquiring ??= this.acquire().finally(() => { this.acquiring = null; });
      await this.acquiring;
    }
    if (!this.fresh) {
      await this.refresh();
      this.fresh = true;
    }
  }

  async acquire() {
    const gotIt = new Promise((resolve) => { this.granted = resolve; });
    this.ask('request');
    // The holder may have missed a want sent before it held the lock, or
    // have let go and taken it again before this request was queued: ask
    // again while waiting.
    const want = () => this.channel.postMessage({ kind: 'want' });
    want();
    const again = setInterval(want, 100);
    try {
      await gotIt;
    } finally {
      clearInterval(again);
    }
  }

  // onGranted: the page holds the lock for this worker.
  onGranted() {
    this.held = true;
    this.granted?.();
    this.granted = null;
  }

  // onWant is told that another tab asks for the database.
  onWant() {
    if (!this.ask) return;
    this.wanted = true;
    if (this.held && !this.busy()) this.letGo();
  }

  // idle is told that no operation is running or queued here.
  idle() {
    if (this.held && this.wanted && this.ask) this.letGo();
  }

  letGo() {
    this.held = false;
    this.wanted = false;
    this.fresh = false;
    this.ask('release');
  }

  // stale: memory may not match the database (a commit found another
  // writer's): read it again before the next operation.
  stale() {
    this.fresh = false;
  }

  // abort fails every later enter with err (the database is gone).
  abort(err) {
    this.aborted = err;
  }
}
