package embedded

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// Unrouted-log outcomes passed to Options.OnDeliver, once per event. For
// these, sub names the publishing app (sub.AppID) and the event's pubsub and
// topic; no subscription exists.
const (
	// OutcomeUnrouted: the event is kept in the publisher's unrouted log,
	// because it was published, or found in the log when the publisher's
	// file was opened, while no subscription in this process took it.
	OutcomeUnrouted = "unrouted"
	// OutcomeUnroutedRouted: the event left the log for the queues of
	// subscriptions registered since.
	OutcomeUnroutedRouted = "unrouted-routed"
	// OutcomeUnroutedDropped: the event was deleted from the log to keep
	// it within Options.UnroutedLimit.
	OutcomeUnroutedDropped = "unrouted-dropped"
)

// dropLogEvery rate-limits the Warn about dropped unrouted events, per
// topic: a topic nobody subscribes to drops one event per publish once its
// log is full.
const dropLogEvery = time.Minute

// topicKey names one unrouted log: the publishing app's, for pubsub/topic.
type topicKey struct{ app, pubsub, topic string }

// unroutedNote is what this process has said about one unrouted log.
type unroutedNote struct {
	warned     bool      // parking has been logged (first park, or Announce)
	dropped    uint64    // events dropped in this process
	unlogged   uint64    // dropped since the last Warn about drops
	lastDropAt time.Time // of that Warn
}

// maxNotedTopics bounds the unrouted logs of one app and pubsub that this
// process logs about (and keeps a note of) one by one. Their topics are
// whatever the app publishes to: one that published to a topic per order
// wrote a log line, and kept a note, per order.
const maxNotedTopics = 100

// note returns k's note, or nil when k's app and pubsub have
// maxNotedTopics notes already; first is true the first time that happens
// for them, for the caller to say so. The caller holds b.noteMu.
func (b *Backend) note(k topicKey) (n *unroutedNote, first bool) {
	if n = b.notes[k]; n != nil {
		return n, false
	}
	ak := [2]string{k.app, k.pubsub}
	if b.notedTopics == nil {
		b.notedTopics = map[[2]string]int{}
	}
	if b.notedTopics[ak] >= maxNotedTopics {
		if b.notedTopics[ak] == maxNotedTopics {
			b.notedTopics[ak]++ // said
			return nil, true
		}
		return nil, false
	}
	b.notedTopics[ak]++
	n = &unroutedNote{}
	b.notes[k] = n
	return n, false
}

// tooManyTopics logs, once per app and pubsub, that their further
// unrouted logs are not logged about one by one.
func (b *Backend) tooManyTopics(app string, rk routeKey) {
	b.log.Warn("pubsub: the app publishes to more topics that no subscription in this process takes than are logged one by one; their events are kept all the same, and the roam_pubsub_unrouted_* metrics count them under topic=\"(other)\"",
		"app", app, "pubsub", rk.pubsub, "topic", rk.topic, "topics_logged", maxNotedTopics)
}

// maxUnroutedTopics caps the unrouted logs of one app: the topics (of any
// pubsub) that it has published to while no subscription in this process
// took them, and whose events wait. Each log is bounded (UnroutedLimit), but
// their number was not, and topics are whatever an app publishes to, or
// what a client of the state sync API's publish route puts in the URL: an
// app publishing to a topic per order kept a log, and a note, per order.
// A publish that would start one more log is refused (tooManyUnrouted);
// publishes to a topic that has a log already, or a subscription, are not.
// A log leaves the count when a subscription drains it. The count is kept
// in the app's file (metaUnroutedTopics), changed in the transactions that
// create and empty logs, and recounted from the logs whenever the file is
// opened, so it holds across restarts and older files.
const maxUnroutedTopics = 1000

// metaUnroutedTopics is the meta key holding the number of the app's
// non-empty unrouted logs (8 bytes, big-endian).
var metaUnroutedTopics = []byte("unrouted-topics")

func getUnroutedTopics(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(metaUnroutedTopics); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putUnroutedTopics(tx *bolt.Tx, n uint64) error {
	return tx.Bucket(bucketMeta).Put(metaUnroutedTopics, seqKey(n))
}

// recountUnrouted sets the count of unrouted logs from the logs themselves,
// deleting the empty ones (files written before logs were deleted once
// drained keep them). openApp calls it in its first transaction.
func recountUnrouted(tx *bolt.Tx) error {
	ub := tx.Bucket(bucketUnrouted)
	var n uint64
	var empty [][]byte
	err := ub.ForEachBucket(func(name []byte) error {
		if k, _ := ub.Bucket(name).Cursor().First(); k == nil {
			empty = append(empty, bytes.Clone(name))
		} else {
			n++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range empty {
		if err := ub.DeleteBucket(name); err != nil {
			return err
		}
	}
	return putUnroutedTopics(tx, n)
}

// emptyLog reports whether q is absent or holds no event.
func emptyLog(q *bolt.Bucket) bool {
	if q == nil {
		return true
	}
	k, _ := q.Cursor().First()
	return k == nil
}

// unroutedFull reports whether a publish from a to rk would start an
// unrouted log beyond maxUnroutedTopics. It reads without writing, so that
// a refused publish costs no commit; appendUnrouted checks again in its
// transaction.
func (b *Backend) unroutedFull(a *appDB, rk routeKey) (bool, error) {
	var full bool
	err := a.db.View(func(tx *bolt.Tx) error {
		full = emptyLog(tx.Bucket(bucketUnrouted).Bucket(rk.bucket())) && getUnroutedTopics(tx) >= maxUnroutedTopics
		return nil
	})
	return full, err
}

// tooManyUnrouted is the error of a publish refused at maxUnroutedTopics.
// It is Unavailable, as a full disk is: a resource of this data directory is
// used up for now (what gRPC calls ResourceExhausted, which the portable
// codes lack), and subscribing to the waiting topics frees it; the request
// itself is valid, which FailedPrecondition (400) would deny. The first one
// per app in this process is logged.
func (b *Backend) tooManyUnrouted(app string, rk routeKey) error {
	b.noteMu.Lock()
	first := !b.capWarned[app]
	if first {
		if b.capWarned == nil {
			b.capWarned = map[string]bool{}
		}
		b.capWarned[app] = true
	}
	b.noteMu.Unlock()
	if first {
		b.log.Warn("pubsub: the app keeps unrouted events for as many topics as it may; publishes to further topics that no subscription in this process takes are refused (Unavailable) until subscriptions drain some of them",
			"app", app, "pubsub", rk.pubsub, "topic", rk.topic, "max_unrouted_topics", maxUnroutedTopics, "data_dir", b.dir)
	}
	return sdk.Errorf(sdk.Unavailable, "publish %s/%s: app %s already keeps unrouted events for %d topics that no subscription in this process takes, the most the embedded backend keeps per app; the event was not published. Publishes to those topics, and to topics with a subscription, still work; a subscription to one of them delivers its events and frees its place",
		sdk.QuoteName(rk.pubsub), sdk.QuoteName(rk.topic), app, maxUnroutedTopics)
}

// appendUnrouted appends recs to from's unrouted log for rk and trims the
// log's oldest events beyond Options.UnroutedLimit, in the same transaction.
// It refuses to start a log beyond maxUnroutedTopics.
func (b *Backend) appendUnrouted(from *appDB, rk routeKey, recs [][]byte) error {
	if full, err := b.unroutedFull(from, rk); err != nil {
		return err
	} else if full {
		return b.tooManyUnrouted(from.id, rk)
	}
	var dropped int
	var refused bool
	err := from.update(func(tx *bolt.Tx) error {
		dropped, refused = 0, false // a batch may run this function again
		ub := tx.Bucket(bucketUnrouted)
		q := ub.Bucket(rk.bucket())
		if emptyLog(q) {
			n := getUnroutedTopics(tx)
			if n >= maxUnroutedTopics {
				// Not an error: that would roll back the writes batched
				// with this one.
				refused = true
				return nil
			}
			if err := putUnroutedTopics(tx, n+1); err != nil {
				return err
			}
			if q == nil {
				var err error
				if q, err = ub.CreateBucket(rk.bucket()); err != nil {
					return err
				}
			}
		}
		if err := appendSeq(q, recs); err != nil {
			return err
		}
		limit := b.opts.UnroutedLimit
		if limit < 0 {
			return nil
		}
		// Keys are sequence numbers removed only from the front, so the log
		// holds about last-first+1 events; trim until within the limit.
		c := q.Cursor()
		k, _ := c.First()
		for k != nil && q.Sequence()-binary.BigEndian.Uint64(k)+1 > uint64(limit) {
			if err := c.Delete(); err != nil {
				return err
			}
			dropped++
			k, _ = c.Next()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if refused {
		return b.tooManyUnrouted(from.id, rk)
	}
	b.parked(from.id, rk, len(recs), dropped)
	return nil
}

// parked reports n events appended to app's unrouted log for rk and dropped
// trimmed from it: to the OnDeliver hook, per event, and to the log, the
// first time the log receives an event in this process and at most every
// dropLogEvery for drops.
func (b *Backend) parked(app string, rk routeKey, n, dropped int) {
	b.report(app, rk, OutcomeUnrouted, n)
	b.report(app, rk, OutcomeUnroutedDropped, dropped)
	if dropped > 0 {
		b.unroutedDropped.Add(uint64(dropped))
	}

	now := time.Now()
	b.noteMu.Lock()
	note, overflow := b.note(topicKey{app, rk.pubsub, rk.topic})
	if note == nil {
		b.noteMu.Unlock()
		if overflow {
			b.tooManyTopics(app, rk)
		}
		return
	}
	first := !note.warned
	note.warned = true
	var logDrops, total uint64
	if dropped > 0 {
		note.dropped += uint64(dropped)
		note.unlogged += uint64(dropped)
		if note.lastDropAt.IsZero() || now.Sub(note.lastDropAt) >= dropLogEvery {
			logDrops, total = note.unlogged, note.dropped
			note.unlogged, note.lastDropAt = 0, now
		}
	}
	b.noteMu.Unlock()

	if first {
		b.warnUnrouted(app, rk, 0)
	}
	if logDrops > 0 {
		b.log.Warn("pubsub: no subscriber for topic: dropped its oldest unrouted events", "app", app,
			"pubsub", rk.pubsub, "topic", rk.topic, "dropped", logDrops, "dropped_total", total,
			"limit", b.opts.UnroutedLimit, "next_warning_after", dropLogEvery)
	}
}

// warnUnrouted logs that app's events on rk are parked: the first one, when
// waiting is 0, or waiting events found when the host announced its apps.
func (b *Backend) warnUnrouted(app string, rk routeKey, waiting uint64) {
	args := []any{"app", app, "pubsub", rk.pubsub, "topic", rk.topic}
	msg := "pubsub: no subscription in this process takes this topic: its events are kept in the publisher's unrouted log (up to limit, the oldest dropped beyond) and delivered when a subscriber for the topic starts in this process"
	if waiting > 0 {
		msg = "pubsub: unrouted events wait for their topic, which no subscription in this process takes: they are kept in the publisher's unrouted log (up to limit, the oldest dropped beyond) and delivered when a subscriber for the topic starts in this process"
		args = append(args, "events", waiting)
	}
	if limit := b.opts.UnroutedLimit; limit > 0 {
		args = append(args, "limit", limit)
	} else {
		args = append(args, "limit", "none")
	}
	// A topic with no subscriber yet is an ordinary thing for a host of
	// all its apps (the shop's order.created): Info. The split-process
	// case, `--apps` hosts on one data directory, is where events go
	// missing from view: Warn.
	if others := b.appsElsewhere(); len(others) > 0 {
		msg += "; events are routed per process, so apps in other processes sharing the data directory (--apps) do not receive them"
		args = append(args, "apps_not_in_this_process", strings.Join(others, ","), "data_dir", b.dir)
		b.log.Warn(msg, args...)
		return
	}
	b.log.Info(msg, args...)
}

// report calls the OnDeliver hook n times with outcome, for app's unrouted
// log of rk.
func (b *Backend) report(app string, rk routeKey, outcome string, n int) {
	if b.opts.OnDeliver == nil {
		return
	}
	sub := backend.Subscription{AppID: app, PubSub: rk.pubsub, Topic: rk.topic}
	for range n {
		b.opts.OnDeliver(sub, outcome)
	}
}

// unroutedCounts returns the number of events in each of a's non-empty
// unrouted logs.
func unroutedCounts(a *appDB) (map[routeKey]uint64, error) {
	counts := map[routeKey]uint64{}
	err := a.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUnrouted)
		return ub.ForEachBucket(func(name []byte) error {
			rk, ok := parseRouteBucket(name)
			if !ok {
				return nil
			}
			// Events leave a log only from its front (draining, trimming),
			// so its keys are consecutive.
			c := ub.Bucket(name).Cursor()
			first, _ := c.First()
			last, _ := c.Last()
			if first != nil {
				counts[rk] = binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1
			}
			return nil
		})
	})
	return counts, err
}

// reportOpened reports the events found in the unrouted logs of a file just
// opened, before anything is drained from or appended to them.
func (b *Backend) reportOpened(a *appDB) {
	if b.opts.OnDeliver == nil {
		return
	}
	counts, err := unroutedCounts(a)
	if err != nil {
		b.log.Error("embedded: counting unrouted events failed", "app", a.id, "err", err)
		return
	}
	for rk, n := range counts {
		b.report(a.id, rk, OutcomeUnrouted, int(n))
	}
}

// warnStranded logs, once per topic, the events waiting in the unrouted
// logs of the open app files for a topic that no subscription in this
// process takes. Announce calls it: by then a host has registered its
// subscriptions, so these events are not delivered while it runs, which is
// what happens to the events of a topic whose only subscriber runs in
// another process sharing the data directory.
func (b *Backend) warnStranded() {
	type stranded struct {
		app string
		rk  routeKey
		n   uint64
	}
	var found []stranded
	for _, a := range b.openApps() {
		counts, err := unroutedCounts(a)
		if err != nil {
			if !b.isClosed() {
				b.log.Error("embedded: counting unrouted events failed", "app", a.id, "err", err)
			}
			continue
		}
		b.routeMu.RLock()
		for rk, n := range counts {
			if len(b.routes[rk]) == 0 {
				found = append(found, stranded{a.id, rk, n})
			}
		}
		b.routeMu.RUnlock()
	}
	b.warnUnsubscribedQueues()
	slices.SortFunc(found, func(x, y stranded) int {
		return strings.Compare(x.app+"\x00"+x.rk.pubsub+"\x00"+x.rk.topic, y.app+"\x00"+y.rk.pubsub+"\x00"+y.rk.topic)
	})
	for _, s := range found {
		b.noteMu.Lock()
		note, overflow := b.note(topicKey{s.app, s.rk.pubsub, s.rk.topic})
		first := note != nil && !note.warned
		if note != nil {
			note.warned = true
		}
		b.noteMu.Unlock()
		if first {
			b.warnUnrouted(s.app, s.rk, s.n)
		}
		if overflow {
			b.tooManyTopics(s.app, s.rk)
		}
	}
}

// warnUnsubscribedQueues logs, once per queue, the events waiting in the
// subscription queues of open app files that no subscription in this
// process delivers: the app subscribed to the topic in an earlier run and
// no longer does (its new version dropped or renamed the subscription).
// They stay queued, and are delivered if it subscribes again; nothing said
// so, and the topic's new events went to the publisher's unrouted log.
func (b *Backend) warnUnsubscribedQueues() {
	for _, a := range b.openApps() {
		type queued struct {
			rk routeKey
			n  uint64
		}
		var found []queued
		err := a.db.View(func(tx *bolt.Tx) error {
			qs := tx.Bucket(bucketQueues)
			return qs.ForEachBucket(func(name []byte) error {
				rk, ok := parseRouteBucket(name)
				if !ok {
					return nil
				}
				// Events leave a queue from its front only, so its keys
				// are consecutive.
				c := qs.Bucket(name).Cursor()
				first, _ := c.First()
				last, _ := c.Last()
				if first != nil {
					found = append(found, queued{rk, binary.BigEndian.Uint64(last) - binary.BigEndian.Uint64(first) + 1})
				}
				return nil
			})
		})
		if err != nil {
			if !b.isClosed() {
				b.log.Error("embedded: reading subscription queues failed", "app", a.id, "err", err)
			}
			continue
		}
		for _, q := range found {
			b.routeMu.RLock()
			registered := b.registeredLocked(backend.Subscription{AppID: a.id, PubSub: q.rk.pubsub, Topic: q.rk.topic})
			b.routeMu.RUnlock()
			k := topicKey{a.id, q.rk.pubsub, q.rk.topic}
			b.noteMu.Lock()
			said := b.queueNotes[k]
			if !registered && !said {
				if b.queueNotes == nil {
					b.queueNotes = map[topicKey]bool{}
				}
				b.queueNotes[k] = true
			}
			b.noteMu.Unlock()
			if registered || said {
				continue
			}
			b.log.Warn("pubsub: events wait in the queue of a subscription that this process does not register (the app subscribed to the topic before, and no longer does); they stay queued, and are delivered if it subscribes to the topic again",
				"app", a.id, "pubsub", q.rk.pubsub, "topic", q.rk.topic, "events", q.n)
		}
	}
}

// appsElsewhere returns the apps that have data in the data directory but
// are not open in this process, sorted: apps that other processes sharing
// the directory may run (`--apps`), and whose subscriptions this process's
// events do not reach.
func (b *Backend) appsElsewhere() []string {
	here := map[string]bool{}
	for _, a := range b.openApps() {
		here[a.id] = true
	}
	entries, err := os.ReadDir(filepath.Join(b.dir, "apps"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !here[e.Name()] {
			out = append(out, e.Name())
		}
	}
	return out // os.ReadDir sorts by name
}

// UnroutedDropped returns how many unrouted events were dropped to keep
// unrouted logs within Options.UnroutedLimit.
func (b *Backend) UnroutedDropped() uint64 { return b.unroutedDropped.Load() }
