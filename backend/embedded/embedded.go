// Package embedded is Roam's default backend: durable state and pub/sub in
// local bbolt files, and invocation of apps in other processes on the same
// machine through a file registry. It is pure Go (no cgo), needs no daemon,
// and survives kill -9: every acknowledged write has been fsynced.
//
// # Layout
//
// Under Options.Dir:
//
//	apps/<appID>/app.db    one bbolt file per app: its state, its subscription
//	                       queues, its unrouted events
//	apps/<appID>/attempts  the delivery attempt of each of its subscriptions,
//	                       64 bytes each, written without fsync (see Pub/sub)
//	registry/<appID>.json  {"app":..., "url":..., "pid":...} for every app a
//	                       running host announced (see Announce)
//
// An app's file is opened lazily, on first use, and locked while open. Several
// processes may therefore share one Dir as long as they run different apps; a
// second process opening the same app fails within Options.LockTimeout with
// "app <id> data at <path> is locked by another process" rather than hanging;
// on Linux the message goes on to name the holder, from /proc/locks: "it is
// in use by process 1234 (roam-edge); stop it or use another --data-dir".
// One file per app also makes an app's data easy to back up, move or delete.
//
// Inside app.db, buckets are:
//
//	state/<store>/<key>        8-byte ETag sequence, 8-byte expiry (Unix ns, 0 = none), value
//	ttl/<expiry><len><store><key>  index of items with a TTL, for the sweeper
//	queues/<pubsub>\x00<topic>/<seq>    this app's subscription queue, FIFO
//	unrouted/<pubsub>\x00<topic>/<seq>  events this app published when no one subscribed
//	parked/<pubsub>\x00<topic>/<seq>    events not delivered again: undecodable, or
//	                                    failed on a dead-letter topic that leads back
//	meta/format                storage format version
//
// # State
//
// Semantics are those documented on sdk.State: an ETag is the store bucket's
// next sequence number, so it changes on every write and never repeats for a
// key, even across delete and recreate (the bucket, and its sequence, is never
// deleted). A conditional write on an absent or expired key conflicts; a Set
// without TTL clears a previous one; Transact runs in one bbolt transaction,
// all or nothing. Expired items read as absent at once and are deleted by a
// sweeper every Options.SweepInterval.
//
// Every acknowledged write has been committed and fsynced by bbolt. A lone
// writer commits at once; concurrent writers join a bbolt Batch and share
// one commit, which keeps throughput up under load. A write that loses its
// precondition records its Conflict and lets the batch commit the others,
// rather than failing the batch and forcing them to be re-run one by one.
//
// # Pub/sub
//
// Delivery is durable and at-least-once. Publish wraps the message in a
// CloudEvents 1.0 envelope and appends it, in one committed transaction per
// subscriber file, to the queue of every subscription on (pubsub, topic)
// registered in this process by Subscribe. It returns only when every append
// has been committed. When no subscription exists, the event is not dropped:
// it goes to the publisher's unrouted log for that topic and moves to the
// queues of the first subscriptions registered for it, as soon as both the
// subscription is registered and the publisher's file is open in the same
// process (OpenApps opens files eagerly).
//
// Routing is per process: Publish reaches the subscriptions registered in
// this process only. Run a publisher and its subscribers in the same host
// process; an event whose topic only another process subscribes to waits in
// the publisher's unrouted log.
//
// Parking is not silent. The first event a given app parks on a given
// pubsub/topic in this process is logged, and so are, once per topic at
// Announce (a host announces its apps once it has subscribed them), the
// events already waiting in the logs of the open files: at Info, or at
// Warn, naming them, when apps with data in Dir do not run in this process
// (they do not receive the events when they run elsewhere, --apps). Drops at
// Options.UnroutedLimit log a Warn at most once a minute per topic. The
// OnDeliver hook receives one OutcomeUnrouted per event parked (or found
// parked when the file opens), one OutcomeUnroutedRouted per event drained
// to subscriptions and one OutcomeUnroutedDropped per event dropped: hosts
// export them as roam_pubsub_unrouted_events and
// roam_pubsub_unrouted_dropped_total.
//
// Each subscription has one delivery goroutine that hands the head of its
// queue to the Deliverer. A nil error removes it; an error redelivers it after
// Options.Retry's backoff; after MaxAttempts deliveries, or at once for an
// error with code InvalidArgument, the event is republished to the
// subscription's dead-letter topic (same pubsub; default
// Options.DeadLetterTopic) and then removed from the queue. The republish is
// committed before the removal, so a crash in between duplicates the event and
// never loses it. The dead-lettered event keeps its id, source, type, data
// and metadata; only its topic changes, so a dead-letter consumer can tell
// which event failed. An event is parked instead (kept in the parked
// bucket, not delivered) when its dead-letter topic would send it back to a
// topic where it failed for good already: its own, or one it was
// dead-lettered from (the stored record lists them). Two subscriptions whose
// dead-letter topics named each other's topics passed such an event back and
// forth for ever.
//
// A handled event whose removal fails (a full disk) is not delivered again:
// the removal alone is retried, with a wait that grows to 5 seconds, and so
// is a dead letter's removal after its publish. Each failure was a
// redelivery before, every 200 ms for as long as the disk stayed full.
// Publish on a full disk fails, and nothing of it is delivered: with
// Unavailable when the disk or the quota is full (ENOSPC, EDQUOT: see
// below), with Internal naming the cause otherwise ("file too large").
//
// # A full disk
//
// A write that fails because the disk is full, or the user's quota (ENOSPC,
// EDQUOT), returns Unavailable, as a 503 a caller retries, with a message
// that names the data directory: "embedded storage: the disk of data dir
// <dir> is full (no space left on device): the write was rolled back, ...".
// bbolt rolls the transaction back (the meta page that commits it is
// written last), so the data written before is intact and readable, and
// writes succeed again once space is freed.
//
// Order is strict per subscription: events are delivered in publish order and
// a failing event holds back the ones behind it (head-of-line blocking) until
// it succeeds or is dead-lettered. Events that waited in unrouted logs keep
// their order per publisher; those of several publishers arrive publisher by
// publisher, since each has its own log. After a restart (Open, then
// Subscribe again) every unacknowledged event is delivered again.
//
// Failed attempts are counted in memory, and across a crash too: before
// each attempt the subscription's slot in the app's attempts file records
// the event's queue position, id and attempt number, with one pwrite and
// no fsync (the page cache survives the process, not the machine). An
// attempt that the process did not survive (a Go fatal error, os.Exit, an
// OOM kill, kill -9) counts as failed at the next Open, so a poison event
// that crashes the process is dead-lettered (or parked) after MaxAttempts
// restarts rather than redelivered for ever, holding back the events behind
// it. Such events are handed to their handlers one at a time, so that an
// innocent event of another subscription is not in flight at every crash
// and dead-lettered with the poison one. An attempt cancelled by Close is
// not counted (a clean shutdown is not the handler's fault); one whose
// handler ignores the cancellation and is abandoned by Close is. After an
// OS crash the count may restart, as it always did.
//
// # Invocation
//
// Hosts announce the apps they serve in the registry (Announce). Invoker looks
// the target up there and POSTs to <url>/v1/apps/<target>/methods/<method>,
// mapping error replies {"code","message"} back to *sdk.Error. A registry
// entry whose process is gone is reported as stale rather than dialled.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

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

// Options configures Open. Only Dir is required.
type Options struct {
	// Dir is the data directory root; it is created if missing.
	Dir string
	// Retry governs redelivery; the zero value means backend.DefaultRetryPolicy.
	Retry backend.RetryPolicy
	// DeadLetterTopic receives events of subscriptions that name none;
	// empty means backend.DefaultDeadLetterTopic.
	DeadLetterTopic string
	// Config holds configuration values, the same for every app.
	Config map[string]string
	// Secrets holds secrets by store name, then key.
	Secrets map[string]map[string]string
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// HTTPClient performs remote invocations; nil means http.DefaultClient.
	// Deadlines come from the caller's context.
	HTTPClient *http.Client
	// OnDeliver, when set, is called after every delivery attempt: OutcomeOK
	// when acknowledged, OutcomeRetry when it failed and will be retried,
	// OutcomeDeadLetter when it failed for the last time (that attempt is
	// not also reported as a retry). Hosts use it to count deliveries.
	//
	// It also follows the unrouted logs, once per event, with sub naming
	// the publishing app rather than a subscription: OutcomeUnrouted when
	// an event is parked, or found parked when the publisher's file opens;
	// OutcomeUnroutedRouted when it moves to subscription queues;
	// OutcomeUnroutedDropped when it is dropped at UnroutedLimit. The
	// unrouted events of a file opened in this process are the ones
	// reported unrouted minus those reported routed or dropped.
	OnDeliver func(sub backend.Subscription, outcome string)

	// LockTimeout bounds the wait for an app file held by another process;
	// zero means 1 second.
	LockTimeout time.Duration
	// SweepInterval is how often expired state items are deleted; zero
	// means 30 seconds. Expired items read as absent regardless.
	SweepInterval time.Duration
	// MaxBatchDelay is how long a write that finds others in progress
	// waits for more to share its commit (bbolt's DB.MaxBatchDelay); zero
	// means 2ms. A lone writer never waits.
	MaxBatchDelay time.Duration
	// UnroutedLimit bounds each topic's unrouted log (events published while
	// no subscription exists): past it the oldest are dropped, logged (at
	// most once a minute per topic) and counted (Backend.UnroutedDropped,
	// OutcomeUnroutedDropped). Zero means 10,000; negative means no bound.
	// Without a bound a topic nobody subscribes to, such as the shop's
	// order.created, would grow the publisher's file forever. The number
	// of an app's unrouted logs is bounded too: a publish that would start
	// one beyond maxUnroutedTopics (1,000) fails with Unavailable.
	UnroutedLimit int
	// CloseGrace is how long Close waits for in-flight deliveries before
	// cancelling their context, and then for them to return; zero means
	// 5 seconds.
	CloseGrace time.Duration
}

// Backend is the embedded backend. Create it with Open.
type Backend struct {
	opts Options

	unroutedDropped atomic.Uint64
	noteMu          sync.Mutex
	notes           map[topicKey]*unroutedNote // what was logged about each unrouted log
	notedTopics     map[[2]string]int          // notes per app and pubsub (see note)
	queueNotes      map[topicKey]bool          // queues without a subscription, logged
	capWarned       map[string]bool            // apps refused at maxUnroutedTopics, logged
	dir             string
	regDir          string
	policy          backend.RetryPolicy
	dlTopic         string
	log             *slog.Logger
	client          *http.Client
	config          core.Config
	secrets         core.Secrets

	mu     sync.Mutex
	closed bool
	apps   map[string]*appEntry

	// routeMu orders publishing against subscribing: publishers hold it
	// shared while they append, Subscribe and unrouted-log draining hold it
	// exclusively, so an event is either routed to a new subscription or
	// already in an unrouted log that the subscription's drain will see.
	// Lock order: appEntry.mu before routeMu.
	routeMu sync.RWMutex
	routes  map[routeKey][]*subscriber

	// suspects admits one at a time the deliveries of events that the
	// process did not survive before (attempts.go).
	suspects chan struct{}
	// noAttempts turns the attempts files off (benchmarks of the old path).
	noAttempts bool

	stop   chan struct{}
	ctx    context.Context // handed to deliverers; cancelled after CloseGrace
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ backend.Backend   = (*Backend)(nil)
	_ backend.Announcer = (*Backend)(nil)
)

type appEntry struct {
	mu sync.Mutex // serialises opening
	db atomic.Pointer[appDB]
}

// appDB is one app's open data file.
type appDB struct {
	id      string
	path    string
	db      *bolt.DB
	writers atomic.Int32 // write transactions wanted or running

	attempts *attemptLog // nil when it could not be opened (attempts.go)
}

// update runs fn in a write transaction. A lone writer commits at once; when
// others are writing too, fn joins a bbolt batch, so that concurrent writers
// share one commit (and its fsyncs) instead of queueing for one each. As
// with DB.Batch, fn may be called more than once and must reset whatever it
// records at its start.
func (a *appDB) update(fn func(*bolt.Tx) error) error {
	n := a.writers.Add(1)
	defer a.writers.Add(-1)
	if n == 1 {
		return a.db.Update(fn)
	}
	return a.db.Batch(fn)
}

const formatVersion = "1"

var (
	bucketState    = []byte("state")
	bucketTTL      = []byte("ttl")
	bucketQueues   = []byte("queues")
	bucketUnrouted = []byte("unrouted")
	bucketParked   = []byte("parked")
	bucketMeta     = []byte("meta")
)

// Open prepares the data directory and starts the TTL sweeper. App files are
// opened on first use.
func Open(opts Options) (*Backend, error) {
	if opts.Dir == "" {
		return nil, sdk.NewError(sdk.InvalidArgument, "embedded: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 30 * time.Second
	}
	if opts.MaxBatchDelay <= 0 {
		opts.MaxBatchDelay = 2 * time.Millisecond
	}
	if opts.UnroutedLimit == 0 {
		opts.UnroutedLimit = 10_000
	}
	if opts.CloseGrace <= 0 {
		opts.CloseGrace = 5 * time.Second
	}
	b := &Backend{
		opts:    opts,
		dir:     dir,
		regDir:  filepath.Join(dir, "registry"),
		policy:  core.Policy(opts.Retry),
		dlTopic: opts.DeadLetterTopic,
		log:     opts.Logger,
		client:  opts.HTTPClient,
		config:  core.Config{},
		secrets: core.Secrets{},
		apps:    map[string]*appEntry{},
		routes:  map[routeKey][]*subscriber{},
		notes:   map[topicKey]*unroutedNote{},
		stop:    make(chan struct{}),

		suspects: make(chan struct{}, 1),
	}
	if b.dlTopic == "" {
		b.dlTopic = backend.DefaultDeadLetterTopic
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.client == nil {
		b.client = http.DefaultClient
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
	for _, d := range []string{filepath.Join(dir, "apps"), b.regDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("embedded: %w", err)
		}
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(1)
	go b.sweepLoop()
	return b, nil
}

// Name returns "embedded".
func (b *Backend) Name() string { return "embedded" }

// Dir returns the absolute data directory.
func (b *Backend) Dir() string { return b.dir }

// Config returns the configuration given in Options.Config.
func (b *Backend) Config(appID string) sdk.Config { return b.config }

// Secrets returns the secrets given in Options.Secrets.
func (b *Backend) Secrets(appID string) sdk.Secrets { return b.secrets }

// OpenApps opens the data files of appIDs now instead of on first use. A host
// calls it at startup for the apps it runs, so that a file locked by another
// process is reported at once, and so that events those apps published while
// no one subscribed reach the subscriptions registered since.
func (b *Backend) OpenApps(appIDs ...string) error {
	var errs []error
	for _, id := range appIDs {
		if _, err := b.app(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops delivery, waiting up to Options.CloseGrace for handlers in
// flight before cancelling their context, and up to CloseGrace again for
// them to return; it stops the sweeper and closes every app file.
// Unacknowledged events stay queued for the next Open. A handler that
// ignores its cancelled context is left running rather than holding Close
// (and a host's shutdown) for ever; its event is delivered again at the
// next Open. Close is idempotent.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.stop)
	entries := make([]*appEntry, 0, len(b.apps))
	for _, e := range b.apps {
		entries = append(entries, e)
	}
	b.mu.Unlock()

	core.DrainOrCancel(&b.wg, b.opts.CloseGrace, b.cancel, b.log, "embedded")
	b.cancel()

	var errs []error
	for _, e := range entries {
		e.mu.Lock()
		if a := e.db.Load(); a != nil {
			if err := a.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("embedded: closing %s: %w", a.path, err))
			}
			if err := a.attempts.close(); err != nil {
				errs = append(errs, fmt.Errorf("embedded: closing %s: %w", a.attempts.path, err))
			}
		}
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (b *Backend) isClosed() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

// storageErr maps storage failures to sdk errors. A full disk (or quota)
// is Unavailable, not Internal: nothing is wrong with the request or the
// code, the write was rolled back (bbolt writes the meta page that commits
// a transaction last, and rolls back on any write error), and the same
// call succeeds once space is freed.
func (b *Backend) storageErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return core.ErrClosed("embedded")
	}
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	if what := diskFull(err); what != "" {
		return sdk.Errorf(sdk.Unavailable, "embedded storage: the disk of data dir %s is full (%s): the write was rolled back, and the data written before is intact; free space there or use another --data-dir", b.dir, what)
	}
	return sdk.Errorf(sdk.Internal, "embedded storage: %v", err)
}

// diskFull says which of ENOSPC ("no space left on device") and EDQUOT
// ("disk quota exceeded") err is, or "". bbolt wraps most write errors with
// %w, but the errors of growing and syncing the file with %s, which keeps
// only the text: that is matched too. EFBIG (a file size limit) is not a
// full disk and stays Internal.
func diskFull(err error) string {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return e.Error()
		}
	}
	return ""
}

// lockedErr is the error of an app file that another open holds: it names
// the holding process where the system says which it is (lockHolder).
func lockedErr(appID, path string) error {
	pid, name, ok := lockHolder(path)
	if !ok {
		return sdk.Errorf(sdk.FailedPrecondition, "app %s data at %s is locked by another process", appID, path)
	}
	proc := strconv.Itoa(pid)
	if name != "" {
		proc += " (" + name + ")"
	}
	if pid == os.Getpid() {
		return sdk.Errorf(sdk.FailedPrecondition, "app %s data at %s is locked by another open of it in this process, %s", appID, path, proc)
	}
	return sdk.Errorf(sdk.FailedPrecondition, "app %s data at %s is locked by another process: it is in use by process %s; stop it or use another --data-dir", appID, path, proc)
}

// app returns the open data file of appID, opening it on first use.
func (b *Backend) app(appID string) (*appDB, error) {
	if err := sdk.ValidAppID(appID); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, core.ErrClosed("embedded")
	}
	e := b.apps[appID]
	if e == nil {
		e = &appEntry{}
		b.apps[appID] = e
	}
	b.mu.Unlock()
	if a := e.db.Load(); a != nil {
		return a, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.db.Load(); a != nil {
		return a, nil
	}
	if b.isClosed() {
		return nil, core.ErrClosed("embedded")
	}
	a, err := b.openApp(appID)
	if err != nil {
		return nil, err
	}
	// Count what the unrouted logs hold before anything changes them.
	b.reportOpened(a)
	// Events this app published before anyone subscribed may now have
	// subscribers; route them before anything else is published. The file
	// becomes visible under routeMu: a publisher that loads it then waits
	// for the drain, so its event cannot overtake the older ones (it could
	// between a Store before the lock and the lock), and a Subscribe after
	// the drain finds the file open and drains it for its own topics.
	b.routeMu.Lock()
	e.db.Store(a)
	woken, err := b.drainLocked(a, nil)
	b.routeMu.Unlock()
	if err != nil {
		b.log.Error("embedded: routing unrouted events failed", "app", appID, "err", err)
	}
	wakeAll(woken)
	return a, nil
}

// openApps returns the app files currently open.
func (b *Backend) openApps() []*appDB {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*appDB, 0, len(b.apps))
	for _, e := range b.apps {
		if a := e.db.Load(); a != nil {
			out = append(out, a)
		}
	}
	return out
}

func (b *Backend) openApp(appID string) (*appDB, error) {
	dir := filepath.Join(b.dir, "apps", appID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, sdk.Errorf(sdk.Internal, "app %s: %v", appID, err)
	}
	path := filepath.Join(dir, "app.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: b.opts.LockTimeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, lockedErr(appID, path)
	}
	if err != nil {
		return nil, sdk.Errorf(sdk.Internal, "app %s: opening %s: %v", appID, path, err)
	}
	db.MaxBatchDelay = b.opts.MaxBatchDelay
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketState, bucketTTL, bucketQueues, bucketUnrouted, bucketParked, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("format")); v != nil && string(v) != formatVersion {
			return fmt.Errorf("unsupported storage format %q (this build reads %q)", v, formatVersion)
		}
		if err := meta.Put([]byte("format"), []byte(formatVersion)); err != nil {
			return err
		}
		return recountUnrouted(tx)
	})
	if err != nil {
		db.Close()
		return nil, sdk.Errorf(sdk.Internal, "app %s: initialising %s: %v", appID, path, err)
	}
	a := &appDB{id: appID, path: path, db: db}
	if !b.noAttempts {
		apath := filepath.Join(dir, attemptsFileName)
		if a.attempts, err = openAttempts(apath, db, b.log); err != nil {
			// Delivery goes on as before: only an attempt that the
			// process does not survive goes uncounted.
			b.log.Error("embedded: cannot open the delivery attempts file; an event whose handler crashes the process will not be counted towards its dead letter", "app", appID, "path", apath, "err", err)
		}
	}
	return a, nil
}
