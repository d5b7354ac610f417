package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

type routeKey struct{ pubsub, topic string }

// bucket is the name of the route's queue, unrouted and parked buckets.
func (k routeKey) bucket() []byte { return []byte(k.pubsub + "\x00" + k.topic) }

func parseRouteBucket(name []byte) (routeKey, bool) {
	i := bytes.IndexByte(name, 0)
	if i < 0 {
		return routeKey{}, false
	}
	return routeKey{string(name[:i]), string(name[i+1:])}, true
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// drainChunk bounds the events moved per transaction pair when draining an
// unrouted log.
const drainChunk = 1000

// subscriber is one registered subscription and its queue in the
// subscribing app's file.
type subscriber struct {
	b    *Backend
	sub  backend.Subscription
	dl   string
	app  *appDB
	name []byte // queues/<name>
	wake chan struct{}

	// slot records each attempt before the handler runs (attempts.go); nil
	// when the app's attempts file could not be opened. cur is the event
	// being delivered. Both belong to the delivery goroutine.
	slot *attemptSlot
	cur  curAttempt
}

func wakeAll(subs []*subscriber) {
	for _, s := range subs {
		core.Wake(s.wake)
	}
}

// ---- publishing ----

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
	if err := core.CheckMessage(m); err != nil {
		return err
	}
	a, err := p.b.app(p.app)
	if err != nil {
		return err
	}
	data, err := json.Marshal(core.NewRecord(ctx, p.app, m))
	if err != nil {
		return sdk.Errorf(sdk.Internal, "publish %s/%s: %v", m.PubSub, m.Topic, err)
	}
	p.b.routeMu.RLock()
	woken, err := p.b.appendLocked(a, routeKey{m.PubSub, m.Topic}, [][]byte{data})
	p.b.routeMu.RUnlock()
	if err != nil {
		return p.b.storageErr(err)
	}
	wakeAll(woken)
	return nil
}

// appendLocked durably appends recs to the queue of every subscription on rk,
// or, when there is none, to from's unrouted log for rk. It returns once every
// append is committed. The caller holds routeMu (shared or exclusive).
func (b *Backend) appendLocked(from *appDB, rk routeKey, recs [][]byte) ([]*subscriber, error) {
	subs := b.routes[rk]
	if len(subs) == 0 {
		return nil, b.appendUnrouted(from, rk, recs)
	}
	// One transaction per subscriber file, committed in parallel.
	groups := map[*appDB][][]byte{}
	var order []*appDB
	for _, s := range subs {
		if _, ok := groups[s.app]; !ok {
			order = append(order, s.app)
		}
		groups[s.app] = append(groups[s.app], s.name)
	}
	if len(order) == 1 {
		return subs, appendTo(order[0], bucketQueues, groups[order[0]], recs)
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, a := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := appendTo(a, bucketQueues, groups[a], recs); err != nil {
				errs[i] = fmt.Errorf("app %s: %w", a.id, err)
			}
		}()
	}
	wg.Wait()
	return subs, errors.Join(errs...)
}

// appendTo appends recs, in order, to each bucket top/<name> of a, in one
// (possibly batched) transaction.
func appendTo(a *appDB, top []byte, names [][]byte, recs [][]byte) error {
	return a.update(func(tx *bolt.Tx) error {
		t := tx.Bucket(top)
		for _, n := range names {
			q, err := t.CreateBucketIfNotExists(n)
			if err != nil {
				return err
			}
			if err := appendSeq(q, recs); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendSeq puts recs, in order, at q's next sequence numbers.
func appendSeq(q *bolt.Bucket, recs [][]byte) error {
	for _, r := range recs {
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		if err := q.Put(seqKey(seq), r); err != nil {
			return err
		}
	}
	return nil
}

// drainLocked moves the events of a's unrouted logs that now have
// subscriptions (restricted to only, when non-nil) into those subscriptions'
// queues. Each chunk is appended and committed before it is removed from the
// log, so a crash in between duplicates events but loses none. The caller
// holds routeMu exclusively.
func (b *Backend) drainLocked(a *appDB, only map[routeKey]bool) ([]*subscriber, error) {
	var keys []routeKey
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUnrouted).ForEachBucket(func(name []byte) error {
			rk, ok := parseRouteBucket(name)
			if ok && (only == nil || only[rk]) && len(b.routes[rk]) > 0 {
				keys = append(keys, rk)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var woken []*subscriber
	for _, rk := range keys {
		name := rk.bucket()
		for {
			var ks, vs [][]byte
			err := a.db.View(func(tx *bolt.Tx) error {
				ub := tx.Bucket(bucketUnrouted).Bucket(name)
				if ub == nil {
					return nil
				}
				c := ub.Cursor()
				for k, v := c.First(); k != nil && len(ks) < drainChunk; k, v = c.Next() {
					ks = append(ks, bytes.Clone(k))
					vs = append(vs, bytes.Clone(v))
				}
				return nil
			})
			if err != nil || len(ks) == 0 {
				if err != nil {
					return woken, err
				}
				break
			}
			w, err := b.appendLocked(a, rk, vs)
			if err != nil {
				return woken, err
			}
			woken = append(woken, w...)
			err = a.db.Update(func(tx *bolt.Tx) error {
				ub := tx.Bucket(bucketUnrouted).Bucket(name)
				for _, k := range ks {
					if err := ub.Delete(k); err != nil {
						return err
					}
				}
				// An emptied log goes, and frees its place among the
				// app's maxUnroutedTopics. Nothing appends to it
				// meanwhile: the caller holds routeMu exclusively.
				if !emptyLog(ub) {
					return nil
				}
				if err := tx.Bucket(bucketUnrouted).DeleteBucket(name); err != nil {
					return err
				}
				if n := getUnroutedTopics(tx); n > 0 {
					return putUnroutedTopics(tx, n-1)
				}
				return nil
			})
			if err != nil {
				return woken, err
			}
			b.report(a.id, rk, OutcomeUnroutedRouted, len(ks))
			if len(ks) < drainChunk {
				break
			}
		}
	}
	return woken, nil
}

// ---- subscribing ----

func (b *Backend) registeredLocked(s backend.Subscription) bool {
	for _, x := range b.routes[routeKey{s.PubSub, s.Topic}] {
		if x.sub.AppID == s.AppID {
			return true
		}
	}
	return false
}

// Subscribe registers subs, routes to them any events their topics hold in
// the unrouted logs of open app files, and starts one delivery goroutine per
// subscription; their queues may already hold events from before a restart.
func (b *Backend) Subscribe(subs []backend.Subscription, d backend.Deliverer) error {
	if b.isClosed() {
		return core.ErrClosed("embedded")
	}
	b.routeMu.RLock()
	err := core.CheckSubscriptions(subs, d, b.registeredLocked)
	b.routeMu.RUnlock()
	if err != nil {
		return err
	}
	// Open the subscribers' files before taking routeMu (lock order).
	dbs := make([]*appDB, len(subs))
	for i, s := range subs {
		if dbs[i], err = b.app(s.AppID); err != nil {
			return err
		}
	}

	b.routeMu.Lock()
	if err := core.CheckSubscriptions(subs, d, b.registeredLocked); err != nil {
		b.routeMu.Unlock()
		return err
	}
	created := make([]*subscriber, len(subs))
	only := map[routeKey]bool{}
	for i, s := range subs {
		rk := routeKey{s.PubSub, s.Topic}
		sb := &subscriber{b: b, sub: s, dl: core.DeadLetterTopic(s, b.dlTopic), app: dbs[i], name: rk.bucket(), wake: make(chan struct{}, 1)}
		sb.slot = dbs[i].attempts.slot(sb.name)
		b.routes[rk] = append(b.routes[rk], sb)
		created[i] = sb
		only[rk] = true
	}
	var woken []*subscriber
	for _, a := range b.openApps() {
		w, err := b.drainLocked(a, only)
		woken = append(woken, w...)
		if err != nil && !b.isClosed() {
			b.log.Error("embedded: routing unrouted events failed", "app", a.id, "err", err)
		}
	}
	b.routeMu.Unlock()

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return core.ErrClosed("embedded")
	}
	b.wg.Add(len(created))
	b.mu.Unlock()
	for _, s := range created {
		l := &core.Loop{
			Sub: s.sub, DeadLetterTopic: s.dl, Queue: s, Deliver: s.deliverer(d), Policy: b.policy,
			Wake: s.wake, Stop: b.stop, Ctx: b.ctx, OnDeliver: b.opts.OnDeliver, Log: b.log,
		}
		if s.slot != nil {
			l.Prior = s.prior
		}
		go func() { defer b.wg.Done(); l.Run() }()
		core.Wake(s.wake)
	}
	wakeAll(woken)
	return nil
}

// ---- the queue, as the delivery loop sees it ----

func (s *subscriber) Head() (uint64, *core.Record, bool, error) {
	for {
		var pos uint64
		var data []byte
		err := s.app.db.View(func(tx *bolt.Tx) error {
			q := tx.Bucket(bucketQueues).Bucket(s.name)
			if q == nil {
				return nil
			}
			k, v := q.Cursor().First()
			if k != nil {
				pos = binary.BigEndian.Uint64(k)
				data = bytes.Clone(v)
			}
			return nil
		})
		if err != nil || data == nil {
			return 0, nil, false, err
		}
		rec := new(core.Record)
		derr := json.Unmarshal(data, rec)
		if derr == nil {
			s.atHead(pos, rec)
			return pos, rec, true, nil
		}
		// Undecodable: keep it out of the way, but keep it.
		s.b.log.Error("embedded: parking undecodable queued event", "app", s.sub.AppID, "topic", s.sub.Topic, "pos", pos, "err", derr)
		if err := s.park(pos, data); err != nil {
			return 0, nil, false, err
		}
	}
}

func (s *subscriber) Ack(pos uint64) error {
	return s.app.update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket(s.name)
		if q == nil {
			return nil
		}
		return q.Delete(seqKey(pos))
	})
}

// park moves the queued event at pos to the parked log, in one transaction.
func (s *subscriber) park(pos uint64, data []byte) error {
	return s.app.update(func(tx *bolt.Tx) error {
		if err := appendInTx(tx, bucketParked, s.name, data); err != nil {
			return err
		}
		if q := tx.Bucket(bucketQueues).Bucket(s.name); q != nil {
			return q.Delete(seqKey(pos))
		}
		return nil
	})
}

func appendInTx(tx *bolt.Tx, top, name, data []byte) error {
	b, err := tx.Bucket(top).CreateBucketIfNotExists(name)
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), data)
}

// DeadLetter appends rec, bound for topic, to that topic's queues (or to
// the subscriber's unrouted log for it); the loop removes it from this
// queue once that is committed.
func (s *subscriber) DeadLetter(pos uint64, rec *core.Record, topic string) error {
	data, err := json.Marshal(rec.DeadLettered(topic))
	if err != nil {
		return err
	}
	s.b.routeMu.RLock()
	woken, err := s.b.appendLocked(s.app, routeKey{s.sub.PubSub, topic}, [][]byte{data})
	s.b.routeMu.RUnlock()
	if err != nil {
		return err
	}
	wakeAll(woken)
	return nil
}

// Park moves rec from the queue to the parked log of its subscription, in
// one transaction.
func (s *subscriber) Park(pos uint64, rec *core.Record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.park(pos, data)
}
