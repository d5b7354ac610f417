package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// Size limits that keep every key within bbolt's 32 KiB key limit, TTL
// index entries included.
const (
	maxStoreName = 1 << 10
	maxKey       = 16 << 10
)

// State returns the named store of appID.
func (b *Backend) State(appID, store string) sdk.State {
	return &stateStore{b: b, app: appID, store: store, name: []byte(store)}
}

type stateStore struct {
	b     *Backend
	app   string
	store string
	name  []byte
}

func (s *stateStore) open(ctx context.Context) (*appDB, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := core.CheckStore(s.store); err != nil {
		return nil, err
	}
	if len(s.store) > maxStoreName {
		return nil, sdk.Errorf(sdk.InvalidArgument, "state store name is longer than %d bytes", maxStoreName)
	}
	return s.b.app(s.app)
}

func checkKeyLen(key string) error {
	if len(key) > maxKey {
		return sdk.Errorf(sdk.InvalidArgument, "state key is longer than %d bytes", maxKey)
	}
	return nil
}

// item encoding: 8-byte ETag sequence, 8-byte expiry (Unix ns, 0 = none), value.

func encodeItem(seq uint64, expiry int64, value []byte) []byte {
	out := make([]byte, 16+len(value))
	binary.BigEndian.PutUint64(out, seq)
	binary.BigEndian.PutUint64(out[8:], uint64(expiry))
	copy(out[16:], value)
	return out
}

type storedItem struct {
	seq    uint64
	expiry int64
	value  []byte // only valid inside the transaction
}

func decodeItem(v []byte) (storedItem, bool) {
	if len(v) < 16 {
		return storedItem{}, false
	}
	return storedItem{
		seq:    binary.BigEndian.Uint64(v),
		expiry: int64(binary.BigEndian.Uint64(v[8:])),
		value:  v[16:],
	}, true
}

// ttlKey is the TTL index key: 8-byte expiry, 2-byte store length, store, key.
// Index keys sort by expiry, so the sweeper reads only what is due.
func ttlKey(expiry int64, store []byte, key string) []byte {
	out := make([]byte, 10+len(store)+len(key))
	binary.BigEndian.PutUint64(out, uint64(expiry))
	binary.BigEndian.PutUint16(out[8:], uint16(len(store)))
	copy(out[10:], store)
	copy(out[10+len(store):], key)
	return out
}

func parseTTLKey(k []byte) (expiry int64, store, key []byte, ok bool) {
	if len(k) < 10 {
		return 0, nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(k[8:]))
	if len(k) < 10+n {
		return 0, nil, nil, false
	}
	return int64(binary.BigEndian.Uint64(k)), k[10 : 10+n], k[10+n:], true
}

// lookup returns the live (present and unexpired) item under key in sb.
func lookup(sb *bolt.Bucket, key string, now time.Time) (storedItem, bool) {
	if sb == nil {
		return storedItem{}, false
	}
	it, ok := decodeItem(sb.Get([]byte(key)))
	if !ok || core.Expired(it.expiry, now) {
		return storedItem{}, false
	}
	return it, true
}

// raw returns the stored item under key, expired or not.
func raw(sb *bolt.Bucket, key string) (storedItem, bool) {
	if sb == nil {
		return storedItem{}, false
	}
	return decodeItem(sb.Get([]byte(key)))
}

// put stores value under key unconditionally with a fresh ETag, keeping the
// TTL index in step.
func (s *stateStore) put(tx *bolt.Tx, sb *bolt.Bucket, key string, value []byte, ttl time.Duration, now time.Time) error {
	idx := tx.Bucket(bucketTTL)
	if old, ok := raw(sb, key); ok && old.expiry != 0 {
		if err := idx.Delete(ttlKey(old.expiry, s.name, key)); err != nil {
			return err
		}
	}
	seq, err := sb.NextSequence()
	if err != nil {
		return err
	}
	exp := core.Expiry(now, ttl)
	if err := sb.Put([]byte(key), encodeItem(seq, exp, value)); err != nil {
		return err
	}
	if exp != 0 {
		return idx.Put(ttlKey(exp, s.name, key), nil)
	}
	return nil
}

// del removes key unconditionally.
func (s *stateStore) del(tx *bolt.Tx, sb *bolt.Bucket, key string) error {
	old, ok := raw(sb, key)
	if !ok {
		return nil
	}
	if old.expiry != 0 {
		if err := tx.Bucket(bucketTTL).Delete(ttlKey(old.expiry, s.name, key)); err != nil {
			return err
		}
	}
	return sb.Delete([]byte(key))
}

func (s *stateStore) Get(ctx context.Context, key string) (sdk.Item, error) {
	if err := core.CheckKey(key); err != nil {
		return sdk.Item{}, err
	}
	a, err := s.open(ctx)
	if err != nil {
		return sdk.Item{}, err
	}
	var out sdk.Item
	found := false
	now := time.Now()
	err = a.db.View(func(tx *bolt.Tx) error {
		it, ok := lookup(tx.Bucket(bucketState).Bucket(s.name), key, now)
		if ok {
			found = true
			out = sdk.Item{Key: key, Value: bytes.Clone(it.value), ETag: core.FormatETag(it.seq)}
		}
		return nil
	})
	if err != nil {
		return sdk.Item{}, s.b.storageErr(err)
	}
	if !found {
		return sdk.Item{}, sdk.Errorf(sdk.NotFound, "state %s not found", sdk.QuoteKey(key))
	}
	if out.Value == nil {
		out.Value = []byte{}
	}
	return out, nil
}

func (s *stateStore) BulkGet(ctx context.Context, keys []string) ([]sdk.Item, error) {
	if err := core.CheckKeys(keys); err != nil {
		return nil, err
	}
	a, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sdk.Item, len(keys))
	now := time.Now()
	err = a.db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketState).Bucket(s.name)
		for i, k := range keys {
			out[i] = sdk.Item{Key: k}
			if it, ok := lookup(sb, k, now); ok {
				out[i].Value = append([]byte{}, it.value...)
				out[i].ETag = core.FormatETag(it.seq)
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.b.storageErr(err)
	}
	return out, nil
}

// write runs fn in a (possibly batched, see appDB.update) write transaction
// with the store bucket. fn
// returns a precondition failure as its first result: it is recorded and the
// batch still commits (fn having changed nothing), so one conflicting writer
// does not force the others in its batch to be re-run. Batch may call fn more
// than once; only the last call's conflict counts.
func (s *stateStore) write(ctx context.Context, fn func(tx *bolt.Tx, sb *bolt.Bucket, now time.Time) (conflict, err error)) error {
	a, err := s.open(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var conflict error
	err = a.update(func(tx *bolt.Tx) error {
		conflict = nil
		sb, err := tx.Bucket(bucketState).CreateBucketIfNotExists(s.name)
		if err != nil {
			return err
		}
		c, err := fn(tx, sb, now)
		if err != nil {
			return err
		}
		conflict = c
		return nil
	})
	if err != nil {
		return s.b.storageErr(err)
	}
	return conflict
}

func (s *stateStore) Set(ctx context.Context, key string, value []byte, o sdk.WriteOptions) error {
	if err := core.CheckSet(key, o); err != nil {
		return err
	}
	if err := checkKeyLen(key); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx, sb *bolt.Bucket, now time.Time) (error, error) {
		cur, ok := lookup(sb, key, now)
		if c := core.Precondition(key, ok, core.FormatETag(cur.seq), o); c != nil {
			return c, nil
		}
		return nil, s.put(tx, sb, key, value, o.TTL, now)
	})
}

func (s *stateStore) Delete(ctx context.Context, key string, o sdk.WriteOptions) error {
	if err := core.CheckDelete(key, o); err != nil {
		return err
	}
	if err := checkKeyLen(key); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx, sb *bolt.Bucket, now time.Time) (error, error) {
		cur, ok := lookup(sb, key, now)
		if c := core.Precondition(key, ok, core.FormatETag(cur.seq), o); c != nil {
			return c, nil
		}
		return nil, s.del(tx, sb, key)
	})
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
	if len(ops) == 0 {
		_, err := s.open(ctx)
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx, sb *bolt.Bucket, now time.Time) (error, error) {
		// Check every precondition first, so that a conflict leaves the
		// transaction untouched and the batch can commit the others.
		c := core.CheckTransact(ops, func(key string) (bool, string, error) {
			it, ok := lookup(sb, key, now)
			return ok, core.FormatETag(it.seq), nil
		})
		if c != nil {
			return c, nil
		}
		for _, op := range ops {
			var err error
			if op.Kind == sdk.OpSet {
				err = s.put(tx, sb, op.Key, op.Value, op.TTL, now)
			} else {
				err = s.del(tx, sb, op.Key)
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
}

// ---- TTL sweeper ----

// sweepBatch bounds the items one sweep transaction deletes.
const sweepBatch = 1000

func (b *Backend) sweepLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		for _, a := range b.openApps() {
			if b.isClosed() {
				return
			}
			if _, err := a.sweep(time.Now()); err != nil && !b.isClosed() {
				b.log.Error("embedded: sweeping expired state failed", "app", a.id, "err", err)
			}
		}
	}
}

// sweep deletes the items that expired by now and returns how many.
func (a *appDB) sweep(now time.Time) (int, error) {
	total := 0
	for {
		// A read transaction first: most sweeps find nothing due and
		// should not cost a commit.
		due := false
		err := a.db.View(func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bucketTTL).Cursor().First()
			exp, _, _, ok := parseTTLKey(k)
			due = k != nil && (!ok || exp <= now.UnixNano())
			return nil
		})
		if err != nil || !due {
			return total, err
		}
		n := 0
		err = a.db.Update(func(tx *bolt.Tx) error {
			n = 0
			idx := tx.Bucket(bucketTTL)
			state := tx.Bucket(bucketState)
			var dueKeys [][]byte
			c := idx.Cursor()
			for k, _ := c.First(); k != nil && len(dueKeys) < sweepBatch; k, _ = c.Next() {
				exp, _, _, ok := parseTTLKey(k)
				if ok && exp > now.UnixNano() {
					break
				}
				dueKeys = append(dueKeys, bytes.Clone(k))
			}
			for _, k := range dueKeys {
				if exp, store, key, ok := parseTTLKey(k); ok {
					if sb := state.Bucket(store); sb != nil {
						if it, ok := decodeItem(sb.Get(key)); ok && it.expiry == exp {
							if err := sb.Delete(key); err != nil {
								return err
							}
							n++
						}
					}
				}
				if err := idx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		total += n
		if err != nil {
			return total, err
		}
	}
}
