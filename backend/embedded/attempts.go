package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// Delivery attempts that the process did not survive.
//
// The delivery loop counts an event's failed attempts in memory. A handler
// that takes the whole process down (a Go fatal error, a stack overflow,
// os.Exit, an OOM kill) never returns a failure to count, so its event was
// delivered again after every restart with a fresh budget, for ever, and
// held back every event behind it. Before each attempt the subscriber now
// writes "(subscription, queue position, event id, attempt n, in flight)"
// to a 64-byte slot of apps/<id>/attempts with one pwrite and no fsync: the
// page cache outlives the process (not the machine: an OS crash may lose
// the last writes, which only gives the event back its budget, the old
// behaviour). A bbolt commit per attempt would have doubled the fsyncs of
// every delivery, and bbolt's NoSync is a setting of the whole DB, not of a
// transaction.
//
// When the app file opens, a slot whose event is still at the head of its
// queue tells how many attempts of it failed: n if the attempt was in
// flight when the process ended, n-1 if it was released (Close cancelled
// it: a clean shutdown is not the handler's fault). The next attempt is
// then the next number, and an event whose failed attempts reach the
// policy's MaxAttempts is dead-lettered (or parked) without another one,
// exactly as one whose handler failed that many times. A success or a dead
// letter needs no second write: the event leaves the queue, and a slot
// whose position is no longer a queue's head means nothing.
//
// Events found that way ("suspects") are handed to their handlers one at a
// time per Backend: the process's death cannot say which handler caused it,
// and an innocent slow event of another subscription, in flight at every
// crash, would otherwise be dead-lettered with the poison one.

const (
	attemptsFileName = "attempts"
	attemptSlotSize  = 64
	// attemptsHeader is slot 0 of the file.
	attemptsHeader = "roam delivery attempts 1\n"

	attemptInFlight = 1 // handed to the handler, not returned
	attemptReleased = 2 // returned because Close cancelled it: not a failure
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// attemptRec is one slot. Layout: crc32c of bytes 4..64 (4), state (1),
// zero (3), subscription hash (16), queue position (8), event id hash (8),
// attempt number (4), zero (20).
type attemptRec struct {
	state   byte
	sub     [16]byte
	pos     uint64
	id      uint64
	attempt uint32
}

func (r *attemptRec) encode(buf *[attemptSlotSize]byte) {
	*buf = [attemptSlotSize]byte{}
	buf[4] = r.state
	copy(buf[8:24], r.sub[:])
	binary.BigEndian.PutUint64(buf[24:32], r.pos)
	binary.BigEndian.PutUint64(buf[32:40], r.id)
	binary.BigEndian.PutUint32(buf[40:44], r.attempt)
	binary.BigEndian.PutUint32(buf[0:4], crc32.Checksum(buf[4:], castagnoli))
}

func decodeAttempt(buf []byte) (attemptRec, bool) {
	if len(buf) != attemptSlotSize || binary.BigEndian.Uint32(buf[0:4]) != crc32.Checksum(buf[4:], castagnoli) {
		return attemptRec{}, false
	}
	r := attemptRec{state: buf[4], pos: binary.BigEndian.Uint64(buf[24:32]), id: binary.BigEndian.Uint64(buf[32:40]), attempt: binary.BigEndian.Uint32(buf[40:44])}
	copy(r.sub[:], buf[8:24])
	if (r.state != attemptInFlight && r.state != attemptReleased) || r.attempt == 0 {
		return attemptRec{}, false
	}
	return r, true
}

// failed is how many attempts of the slot's event count as failed.
func (r attemptRec) failed() int {
	if r.state == attemptInFlight {
		return int(r.attempt)
	}
	return int(r.attempt) - 1
}

// subHash names a subscription's queue (its bucket name) in a slot.
func subHash(name []byte) (h [16]byte) {
	s := sha256.Sum256(name)
	copy(h[:], s[:16])
	return h
}

// idHash is FNV-1a of an event id: it tells a slot's event from another at
// the same position (a data file restored from a backup).
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// attemptLog is an app's attempts file. It is opened after app.db, whose
// lock makes this process its only writer.
type attemptLog struct {
	path string
	f    *os.File
	log  *slog.Logger

	mu    sync.Mutex
	found map[[16]byte]foundAttempt // slots of events at a queue head at open
	used  []bool                    // by slot; slot 0 is the header

	writeFailed atomic.Bool // logged once
}

type foundAttempt struct {
	slot int
	rec  attemptRec
}

// openAttempts opens (creating) the attempts file at path and keeps the
// slots that still mean something: those whose event is at the head of its
// queue in db, with failed attempts. The others are cleared.
func openAttempts(path string, db *bolt.DB, log *slog.Logger) (*attemptLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &attemptLog{path: path, f: f, log: log, found: map[[16]byte]foundAttempt{}, used: []bool{true}}
	var hdr [attemptSlotSize]byte
	copy(hdr[:], attemptsHeader)
	if len(data) < attemptSlotSize || !bytes.Equal(data[:attemptSlotSize], hdr[:]) {
		if len(data) > 0 {
			log.Warn("embedded: delivery attempts file unreadable; starting it again", "path", path)
		}
		data = nil
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.WriteAt(hdr[:], 0); err != nil {
			f.Close()
			return nil, err
		}
	}
	n := len(data) / attemptSlotSize
	recs := make([]attemptRec, n)
	valid := make([]bool, n)
	counted := false
	for i := 1; i < n; i++ {
		recs[i], valid[i] = decodeAttempt(data[i*attemptSlotSize : (i+1)*attemptSlotSize])
		counted = counted || (valid[i] && recs[i].failed() > 0)
	}
	var heads map[[16]byte]uint64
	if counted {
		if heads, err = queueHeads(db); err != nil {
			f.Close()
			return nil, err
		}
	}
	last := 0
	var zero [attemptSlotSize]byte
	for i := 1; i < n; i++ {
		r := recs[i]
		if valid[i] && r.failed() > 0 {
			if pos, ok := heads[r.sub]; ok && pos == r.pos {
				if _, dup := l.found[r.sub]; !dup {
					l.found[r.sub] = foundAttempt{slot: i, rec: r}
					l.used = append(l.used, true)
					last = i
					continue
				}
			}
		}
		l.used = append(l.used, false)
		if !bytes.Equal(data[i*attemptSlotSize:(i+1)*attemptSlotSize], zero[:]) {
			if _, err := f.WriteAt(zero[:], int64(i)*attemptSlotSize); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	if n > last+1 {
		l.used = l.used[:last+1]
		if err := f.Truncate(int64(last+1) * attemptSlotSize); err != nil {
			f.Close()
			return nil, err
		}
	}
	return l, nil
}

// queueHeads returns the position at the head of every non-empty queue of
// db, by subHash of its name.
func queueHeads(db *bolt.DB) (map[[16]byte]uint64, error) {
	heads := map[[16]byte]uint64{}
	err := db.View(func(tx *bolt.Tx) error {
		qs := tx.Bucket(bucketQueues)
		return qs.ForEachBucket(func(name []byte) error {
			if k, _ := qs.Bucket(name).Cursor().First(); len(k) == 8 {
				heads[subHash(name)] = binary.BigEndian.Uint64(k)
			}
			return nil
		})
	})
	return heads, err
}

// slot returns the slot of the queue whose bucket is name, with what the
// file held for it at open, if anything.
func (l *attemptLog) slot(name []byte) *attemptSlot {
	if l == nil {
		return nil
	}
	h := subHash(name)
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &attemptSlot{log: l, sub: h}
	if f, ok := l.found[h]; ok {
		delete(l.found, h)
		s.index, s.found, s.hasFound = f.slot, f.rec, true
		return s
	}
	for i, u := range l.used {
		if !u {
			l.used[i] = true
			s.index = i
			return s
		}
	}
	l.used = append(l.used, true)
	s.index = len(l.used) - 1
	return s
}

func (l *attemptLog) close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}

// attemptSlot is one subscription's slot. Its delivery goroutine alone
// writes it.
type attemptSlot struct {
	log      *attemptLog
	index    int
	sub      [16]byte
	found    attemptRec // as the file held it at open
	hasFound bool
	buf      [attemptSlotSize]byte
}

// write records attempt n of the event at pos (id hash id) in state: one
// pwrite, no fsync. A failure is logged once and otherwise ignored: the
// delivery goes on, only a crash during it would not be counted.
func (s *attemptSlot) write(state byte, pos, id uint64, n int) {
	r := attemptRec{state: state, sub: s.sub, pos: pos, id: id, attempt: uint32(n)}
	r.encode(&s.buf)
	_, err := s.log.f.WriteAt(s.buf[:], int64(s.index)*attemptSlotSize)
	if err != nil && !errors.Is(err, os.ErrClosed) && s.log.writeFailed.CompareAndSwap(false, true) {
		s.log.log.Error("embedded: recording a delivery attempt failed; an attempt the process does not survive will not be counted", "path", s.log.path, "err", err)
	}
}

// curAttempt is the event a subscription's loop is delivering.
type curAttempt struct {
	valid bool
	pos   uint64
	id    uint64
	prior int // failed attempts found at open (the process ended in them)
	calls int // attempts in this process
}

// atHead is called by Head with the event it returns to the loop.
func (s *subscriber) atHead(pos uint64, rec *core.Record) {
	if s.slot == nil || (s.cur.valid && s.cur.pos == pos) {
		return
	}
	s.cur = curAttempt{valid: true, pos: pos, id: idHash(rec.ID)}
	if !s.slot.hasFound {
		return
	}
	s.slot.hasFound = false
	if f := s.slot.found; f.pos == pos && f.id == s.cur.id {
		s.cur.prior = f.failed()
		s.b.log.Warn("pubsub: the process ended while this event was being handled; that attempt counts as failed",
			"app", s.sub.AppID, "pubsub", s.sub.PubSub, "topic", s.sub.Topic, "id", rec.ID,
			"failed_attempts", s.cur.prior, "max_attempts", s.b.policy.MaxAttempts)
	}
}

// deliverer wraps d so that each attempt is recorded before d runs.
func (s *subscriber) deliverer(d backend.Deliverer) backend.Deliverer {
	if s.slot == nil {
		return d
	}
	return func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		return s.deliver(ctx, sub, e, d)
	}
}

// prior is the loop's Prior: the failed attempts of the event at pos that
// the process did not survive (atHead found them), which the loop counts
// towards the subscription's MaxAttempts, dead-lettering (or parking) the
// event without another attempt once they reach it.
func (s *subscriber) prior(pos uint64, _ *core.Record) int {
	if c := &s.cur; c.valid && c.pos == pos {
		return c.prior
	}
	return 0
}

// deliver is one attempt of the event at the head (atHead): it records the
// attempt in the subscription's slot before d runs, and as released if
// Close cancelled it.
func (s *subscriber) deliver(ctx context.Context, sub backend.Subscription, e *sdk.Event, d backend.Deliverer) (err error) {
	c := &s.cur
	if !c.valid || idHash(e.ID) != c.id {
		return d(ctx, sub, e)
	}
	if c.prior > 0 {
		// A suspect: one at a time (see the top of this file).
		select {
		case s.b.suspects <- struct{}{}:
		case <-s.b.stop:
			return core.ErrClosed("embedded")
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-s.b.suspects }()
	}
	c.calls++
	n := c.prior + c.calls
	s.slot.write(attemptInFlight, c.pos, c.id, n)
	defer func() {
		if p := recover(); p != nil {
			err = sdk.Errorf(sdk.Internal, "event handler panicked: %v", p)
		}
		if err != nil && s.b.isClosed() {
			// Close's cancellation, most likely; the loop does not count
			// it either. The event stays queued with this attempt unspent.
			s.slot.write(attemptReleased, c.pos, c.id, n)
		}
	}()
	return d(ctx, sub, e)
}
