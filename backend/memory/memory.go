// Package memory is a backend.Backend that keeps everything in process
// memory. It exists for unit tests of apps and hosts: it starts instantly,
// needs no directory, and leaves nothing behind.
//
// It follows the embedded backend's semantics exactly, minus durability,
// because both are built on the same validation, ETag and delivery rules
// (backend/internal/core) and pass the same conformance suites:
//
//   - State: per (app, store) key spaces; ETags are decimal numbers drawn
//     from a per-store counter, so they change on every write and never
//     repeat for a key, even across delete and recreate; TTLs expire lazily
//     on access.
//   - Pub/sub: every subscription has a FIFO queue; Publish appends to the
//     queue of every subscription on the topic, or to an unrouted log that
//     the first matching Subscribe drains, so events published before the
//     subscriber registers are not lost. Delivery retries with
//     Options.Retry's backoff, holds back later events while the head
//     retries, and dead-letters after MaxAttempts (at once for
//     InvalidArgument). Nothing survives Close.
//   - Invoker: there are no remote apps unless Options.Invoke supplies them.
//   - Config and secrets come from Options maps.
package memory

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// Delivery outcomes passed to Options.OnDeliver.
const (
	OutcomeOK         = core.OutcomeOK
	OutcomeRetry      = core.OutcomeRetry
	OutcomeDeadLetter = core.OutcomeDeadLetter
)

// Options configures a memory backend. The zero value is usable.
type Options struct {
	// Retry governs redelivery; the zero value means backend.DefaultRetryPolicy.
	Retry backend.RetryPolicy
	// DeadLetterTopic receives events of subscriptions that name none;
	// empty means backend.DefaultDeadLetterTopic.
	DeadLetterTopic string
	// Config holds configuration values, the same for every app.
	Config map[string]string
	// Secrets holds secrets by store name, then key.
	Secrets map[string]map[string]string
	// Invoke, when set, serves every Invoker call: caller is the invoking
	// app. When nil, every invocation fails with Unavailable.
	Invoke func(ctx context.Context, caller, target, method string, data []byte) ([]byte, error)
	// OnDeliver, when set, is called after every delivery attempt: OutcomeOK
	// when acknowledged, OutcomeRetry when it failed and will be retried,
	// OutcomeDeadLetter when it failed for the last time (that attempt is
	// not also reported as a retry). Hosts use it to count deliveries.
	OnDeliver func(sub backend.Subscription, outcome string)
	// Logger receives delivery diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// CloseGrace is how long Close waits for in-flight deliveries before
	// cancelling their context, and then for them to return; zero means
	// 5 seconds.
	CloseGrace time.Duration
}

// Backend is an in-memory backend.Backend.
type Backend struct {
	opts    Options
	policy  backend.RetryPolicy
	dlTopic string
	log     *slog.Logger
	config  core.Config
	secrets core.Secrets

	mu       sync.Mutex
	closed   bool
	stores   map[storeKey]*store
	routes   map[routeKey][]*queue
	unrouted map[routeKey][]*core.Record
	parked   []*core.Record

	stop   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ backend.Backend = (*Backend)(nil)

type storeKey struct{ app, store string }

type routeKey struct{ pubsub, topic string }

type store struct {
	seq   uint64
	items map[string]item
}

type item struct {
	value  []byte
	seq    uint64
	expiry int64 // Unix ns; 0 = none
}

// New returns an empty in-memory backend.
func New(opts Options) *Backend {
	b := &Backend{
		opts:     opts,
		policy:   core.Policy(opts.Retry),
		dlTopic:  opts.DeadLetterTopic,
		log:      opts.Logger,
		config:   core.Config{},
		secrets:  core.Secrets{},
		stores:   map[storeKey]*store{},
		routes:   map[routeKey][]*queue{},
		unrouted: map[routeKey][]*core.Record{},
		stop:     make(chan struct{}),
	}
	if b.dlTopic == "" {
		b.dlTopic = backend.DefaultDeadLetterTopic
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	for k, v := range opts.Config {
		b.config[k] = v
	}
	for s, m := range opts.Secrets {
		c := make(map[string]string, len(m))
		for k, v := range m {
			c[k] = v
		}
		b.secrets[s] = c
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b
}

// Name returns "memory".
func (b *Backend) Name() string { return "memory" }

// Config returns the configuration given in Options.Config.
func (b *Backend) Config(appID string) sdk.Config { return b.config }

// Secrets returns the secrets given in Options.Secrets.
func (b *Backend) Secrets(appID string) sdk.Secrets { return b.secrets }

// Close stops delivery, waiting up to Options.CloseGrace for handlers in
// flight before cancelling their context, and up to CloseGrace again for
// them to return; a handler that ignores its cancelled context is left
// running rather than holding Close for ever. Queued events are discarded.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.stop)
	b.mu.Unlock()

	grace := b.opts.CloseGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	core.DrainOrCancel(&b.wg, grace, b.cancel, nil, "memory")
	b.cancel()
	return nil
}

// ---- state ----

// State returns the named store of appID.
func (b *Backend) State(appID, storeName string) sdk.State {
	return &stateStore{b: b, key: storeKey{appID, storeName}}
}

type stateStore struct {
	b   *Backend
	key storeKey
}

// The embedded backend's size limits (which keep its keys within bbolt's),
// checked here too so that an app tested on this backend does not meet them
// first in production: a 20 KiB key was stored here and refused there.
const (
	maxStoreName = 1 << 10
	maxKey       = 16 << 10
)

func checkKeyLen(key string) error {
	if len(key) > maxKey {
		return sdk.Errorf(sdk.InvalidArgument, "state key is longer than %d bytes", maxKey)
	}
	return nil
}

// begin validates the call and locks the backend; on success the caller must
// unlock b.mu.
func (s *stateStore) begin(ctx context.Context) (*store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := sdk.ValidAppID(s.key.app); err != nil {
		return nil, err
	}
	if err := core.CheckStore(s.key.store); err != nil {
		return nil, err
	}
	if len(s.key.store) > maxStoreName {
		return nil, sdk.Errorf(sdk.InvalidArgument, "state store name is longer than %d bytes", maxStoreName)
	}
	s.b.mu.Lock()
	if s.b.closed {
		s.b.mu.Unlock()
		return nil, core.ErrClosed("memory")
	}
	st := s.b.stores[s.key]
	if st == nil {
		st = &store{items: map[string]item{}}
		s.b.stores[s.key] = st
	}
	return st, nil
}

// live returns the unexpired item under key, dropping it if it expired.
func (st *store) live(key string, now time.Time) (item, bool) {
	it, ok := st.items[key]
	if ok && core.Expired(it.expiry, now) {
		delete(st.items, key)
		return item{}, false
	}
	return it, ok
}

func (st *store) set(key string, value []byte, ttl time.Duration, now time.Time) {
	st.seq++
	st.items[key] = item{value: append([]byte{}, value...), seq: st.seq, expiry: core.Expiry(now, ttl)}
}

func (s *stateStore) Get(ctx context.Context, key string) (sdk.Item, error) {
	if err := core.CheckKey(key); err != nil {
		return sdk.Item{}, err
	}
	st, err := s.begin(ctx)
	if err != nil {
		return sdk.Item{}, err
	}
	defer s.b.mu.Unlock()
	it, ok := st.live(key, time.Now())
	if !ok {
		return sdk.Item{}, sdk.Errorf(sdk.NotFound, "state %s not found", sdk.QuoteKey(key))
	}
	return sdk.Item{Key: key, Value: append([]byte{}, it.value...), ETag: core.FormatETag(it.seq)}, nil
}

func (s *stateStore) BulkGet(ctx context.Context, keys []string) ([]sdk.Item, error) {
	if err := core.CheckKeys(keys); err != nil {
		return nil, err
	}
	st, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	now := time.Now()
	out := make([]sdk.Item, len(keys))
	for i, k := range keys {
		out[i].Key = k
		if it, ok := st.live(k, now); ok {
			out[i].Value = append([]byte{}, it.value...)
			out[i].ETag = core.FormatETag(it.seq)
		}
	}
	return out, nil
}

func (s *stateStore) Set(ctx context.Context, key string, value []byte, o sdk.WriteOptions) error {
	if err := core.CheckSet(key, o); err != nil {
		return err
	}
	if err := checkKeyLen(key); err != nil {
		return err
	}
	st, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	now := time.Now()
	it, ok := st.live(key, now)
	if err := core.Precondition(key, ok, core.FormatETag(it.seq), o); err != nil {
		return err
	}
	st.set(key, value, o.TTL, now)
	return nil
}

func (s *stateStore) Delete(ctx context.Context, key string, o sdk.WriteOptions) error {
	if err := core.CheckDelete(key, o); err != nil {
		return err
	}
	if err := checkKeyLen(key); err != nil {
		return err
	}
	st, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	it, ok := st.live(key, time.Now())
	if err := core.Precondition(key, ok, core.FormatETag(it.seq), o); err != nil {
		return err
	}
	delete(st.items, key)
	return nil
}

func (s *stateStore) Transact(ctx context.Context, ops []sdk.Op) error {
	if err := core.CheckOps(ops); err != nil {
		return err
	}
	for _, op := range ops {
		if err := checkKeyLen(op.Key); err != nil {
			return err
		}
	}
	st, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	now := time.Now()
	err = core.CheckTransact(ops, func(key string) (bool, string, error) {
		it, ok := st.live(key, now)
		return ok, core.FormatETag(it.seq), nil
	})
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.Kind == sdk.OpSet {
			st.set(op.Key, op.Value, op.TTL, now)
		} else {
			delete(st.items, op.Key)
		}
	}
	return nil
}

// ---- invoker ----

// Invoker returns an invoker for appID backed by Options.Invoke.
func (b *Backend) Invoker(appID string) sdk.Invoker { return invoker{b, appID} }

type invoker struct {
	b      *Backend
	caller string
}

func (i invoker) Invoke(ctx context.Context, target, method string, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if i.b.opts.Invoke == nil {
		return nil, sdk.Errorf(sdk.Unavailable, "no app %s reachable", target)
	}
	return i.b.opts.Invoke(ctx, i.caller, target, method, data)
}

// ---- pub/sub ----

// Publisher returns a publisher whose events carry appID as their source.
func (b *Backend) Publisher(appID string) sdk.Publisher { return publisher{b, appID} }

type publisher struct {
	b   *Backend
	app string
}

func (p publisher) Publish(ctx context.Context, m sdk.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sdk.ValidAppID(p.app); err != nil {
		return err
	}
	if err := core.CheckMessage(m); err != nil {
		return err
	}
	rec := core.NewRecord(ctx, p.app, m)
	p.b.mu.Lock()
	if p.b.closed {
		p.b.mu.Unlock()
		return core.ErrClosed("memory")
	}
	woken := p.b.routeLocked(rec)
	p.b.mu.Unlock()
	for _, q := range woken {
		core.Wake(q.wake)
	}
	return nil
}

// routeLocked appends rec to every subscription queue of its topic, or to the
// topic's unrouted log, and returns the queues to wake. b.mu must be held.
func (b *Backend) routeLocked(rec *core.Record) []*queue {
	rk := routeKey{rec.PubSub, rec.Topic}
	qs := b.routes[rk]
	if len(qs) == 0 {
		b.unrouted[rk] = append(b.unrouted[rk], rec)
		return nil
	}
	for _, q := range qs {
		q.seq++
		q.items = append(q.items, entry{q.seq, rec})
	}
	return qs
}

// Subscribe registers subs and starts their delivery. Events published to
// a topic before anyone subscribed to it are delivered to the subscriptions
// of the first Subscribe call that covers the topic.
func (b *Backend) Subscribe(subs []backend.Subscription, d backend.Deliverer) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return core.ErrClosed("memory")
	}
	err := core.CheckSubscriptions(subs, d, func(s backend.Subscription) bool {
		for _, q := range b.routes[routeKey{s.PubSub, s.Topic}] {
			if q.sub.AppID == s.AppID {
				return true
			}
		}
		return false
	})
	if err != nil {
		b.mu.Unlock()
		return err
	}
	qs := make([]*queue, len(subs))
	for i, s := range subs {
		q := &queue{b: b, sub: s, dl: core.DeadLetterTopic(s, b.dlTopic), wake: make(chan struct{}, 1)}
		rk := routeKey{s.PubSub, s.Topic}
		b.routes[rk] = append(b.routes[rk], q)
		qs[i] = q
	}
	for _, q := range qs {
		rk := routeKey{q.sub.PubSub, q.sub.Topic}
		for _, rec := range b.unrouted[rk] {
			b.routeLocked(rec)
		}
		delete(b.unrouted, rk)
	}
	for _, q := range qs {
		l := &core.Loop{
			Sub: q.sub, DeadLetterTopic: q.dl, Queue: q, Deliver: d, Policy: b.policy,
			Wake: q.wake, Stop: b.stop, Ctx: b.ctx, OnDeliver: b.opts.OnDeliver, Log: b.log,
		}
		b.wg.Add(1)
		go func() { defer b.wg.Done(); l.Run() }()
		core.Wake(q.wake)
	}
	b.mu.Unlock()
	return nil
}

type entry struct {
	pos uint64
	rec *core.Record
}

// queue is one subscription's pending events; its fields after wake are
// guarded by b.mu.
type queue struct {
	b     *Backend
	sub   backend.Subscription
	dl    string
	wake  chan struct{}
	seq   uint64
	items []entry
}

func (q *queue) Head() (uint64, *core.Record, bool, error) {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	if len(q.items) == 0 {
		return 0, nil, false, nil
	}
	return q.items[0].pos, q.items[0].rec, true, nil
}

func (q *queue) removeLocked(pos uint64) {
	for i, e := range q.items {
		if e.pos == pos {
			q.items = append(q.items[:i:i], q.items[i+1:]...)
			return
		}
	}
}

func (q *queue) Ack(pos uint64) error {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	q.removeLocked(pos)
	return nil
}

func (q *queue) DeadLetter(pos uint64, rec *core.Record, topic string) error {
	q.b.mu.Lock()
	woken := q.b.routeLocked(rec.DeadLettered(topic))
	q.removeLocked(pos)
	q.b.mu.Unlock()
	for _, w := range woken {
		core.Wake(w.wake)
	}
	return nil
}

// Park keeps rec, failed for good on a dead-letter cycle, out of delivery
// (see Parked).
func (q *queue) Park(pos uint64, rec *core.Record) error {
	q.b.mu.Lock()
	defer q.b.mu.Unlock()
	q.b.parked = append(q.b.parked, rec)
	q.removeLocked(pos)
	return nil
}

// Parked returns the events that failed on a dead-letter topic that would
// have sent them back to a topic they failed on already (their own, or one
// they were dead-lettered from).
func (b *Backend) Parked() []*sdk.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*sdk.Event, len(b.parked))
	for i, r := range b.parked {
		out[i] = r.Event()
	}
	return out
}
