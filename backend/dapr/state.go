package dapr

import (
	"context"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/roam-dev/roam/backend/internal/core"
	"github.com/roam-dev/roam/sdk"
)

// State returns the named store of appID. See the package doc for how
// Roam's semantics are kept on Dapr.
func (b *Backend) State(appID, store string) sdk.State {
	return &stateStore{b: b, app: appID, store: store, prefix: b.keyPrefix(appID), redis: b.isRedis(store)}
}

// keyPrefix scopes the keys of apps other than the sidecar's own.
func (b *Backend) keyPrefix(appID string) string {
	if appID == b.info.appID {
		return ""
	}
	return appID + "|"
}

func (b *Backend) isRedis(store string) bool {
	t, ok := b.info.components[store]
	return !ok || strings.HasPrefix(t, "state.redis")
}

type stateStore struct {
	b      *Backend
	app    string
	store  string
	prefix string
	redis  bool
}

// etagOf renders a stored item's Roam ETag: Dapr's ETag and a hash of the
// value, so that ETags of an item deleted (or expired) and written again do
// not repeat.
func etagOf(it stored) string {
	if !it.found {
		return ""
	}
	h := fnv.New32a()
	h.Write(it.value)
	// version + "-" + the hash in hex, in one allocation.
	var buf [48]byte
	b := append(append(buf[:0], it.version...), '-')
	return string(strconv.AppendUint(b, uint64(h.Sum32()), 16))
}

// impossibleETag is an ETag no Redis item has: a write conditional on it
// creates an absent key and fails on a present one.
const impossibleETag = "-1"

// ttlMeta is the metadata of a write: its TTL in whole seconds, rounded up
// (Dapr's unit), or -1, which clears a TTL the key had.
func ttlMeta(ttl time.Duration) map[string]string {
	s := "-1"
	if ttl > 0 {
		s = strconv.FormatInt(int64(math.Ceil(ttl.Seconds())), 10)
	}
	return map[string]string{"ttlInSeconds": s}
}

func (s *stateStore) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.b.isClosed() {
		return closedErr()
	}
	return core.CheckStore(s.store)
}

func (s *stateStore) item(key string, it stored) sdk.Item {
	v := it.value
	if v == nil {
		v = []byte{}
	}
	return sdk.Item{Key: key, Value: v, ETag: etagOf(it)}
}

func (s *stateStore) Get(ctx context.Context, key string) (sdk.Item, error) {
	if err := core.CheckKey(key); err != nil {
		return sdk.Item{}, err
	}
	if err := s.check(ctx); err != nil {
		return sdk.Item{}, err
	}
	it, err := s.b.sc.get(ctx, s.store, s.prefix+key)
	if err != nil {
		return sdk.Item{}, err
	}
	if !it.found {
		return sdk.Item{}, sdk.Errorf(sdk.NotFound, "state %s not found", sdk.QuoteKey(key))
	}
	return s.item(key, it), nil
}

func (s *stateStore) BulkGet(ctx context.Context, keys []string) ([]sdk.Item, error) {
	if err := core.CheckKeys(keys); err != nil {
		return nil, err
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := make([]sdk.Item, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	got, err := s.b.sc.bulkGet(ctx, s.store, s.keys(keys))
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		out[i] = sdk.Item{Key: k}
		if it := got[s.prefix+k]; it.found {
			out[i] = s.item(k, it)
		}
	}
	return out, nil
}

// keys returns the distinct Dapr keys of keys.
func (s *stateStore) keys(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if dk := s.prefix + k; !seen[dk] {
			seen[dk] = true
			out = append(out, dk)
		}
	}
	return out
}

// ifAbsent makes op a create: see the package doc.
func (s *stateStore) ifAbsent(op *writeOp) {
	if s.redis {
		op.etag = impossibleETag
	} else {
		op.firstWrite = true
	}
}

func (s *stateStore) Set(ctx context.Context, key string, value []byte, o sdk.WriteOptions) error {
	if err := core.CheckSet(key, o); err != nil {
		return err
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	dk := s.prefix + key
	unlock := s.b.locks.rlock(s.store, dk)
	defer unlock()
	op := writeOp{key: dk, value: value, md: ttlMeta(o.TTL)}
	switch {
	case o.IfAbsent:
		s.ifAbsent(&op)
		if err := s.b.sc.write(ctx, s.store, op); err != nil {
			if sdk.IsCode(err, sdk.Conflict) {
				return sdk.Errorf(sdk.Conflict, "state %s: key already exists", sdk.QuoteKey(key))
			}
			return err
		}
		return nil
	case o.ETag != "":
		cur, err := s.b.sc.get(ctx, s.store, dk)
		if err != nil {
			return err
		}
		if c := core.Precondition(key, cur.found, etagOf(cur), o); c != nil {
			return c
		}
		op.etag = cur.version
		return s.conditional(key, o.ETag, s.b.sc.write(ctx, s.store, op))
	}
	return s.b.sc.write(ctx, s.store, op)
}

// conditional words the Conflict of a write whose ETag the store rejected.
func (s *stateStore) conditional(key, etag string, err error) error {
	if sdk.IsCode(err, sdk.Conflict) {
		return sdk.Errorf(sdk.Conflict, "state %s: ETag %s is stale", sdk.QuoteKey(key), etag)
	}
	return err
}

func (s *stateStore) Delete(ctx context.Context, key string, o sdk.WriteOptions) error {
	if err := core.CheckDelete(key, o); err != nil {
		return err
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	dk := s.prefix + key
	unlock := s.b.locks.rlock(s.store, dk)
	defer unlock()
	op := writeOp{del: true, key: dk}
	if o.ETag == "" {
		return s.b.sc.write(ctx, s.store, op)
	}
	cur, err := s.b.sc.get(ctx, s.store, dk)
	if err != nil {
		return err
	}
	if c := core.Precondition(key, cur.found, etagOf(cur), o); c != nil {
		return c
	}
	op.etag = cur.version
	return s.conditional(key, o.ETag, s.b.sc.write(ctx, s.store, op))
}

func (s *stateStore) Transact(ctx context.Context, ops []sdk.Op) error {
	if err := core.CheckOps(ops); err != nil {
		return err
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = op.Key
	}
	dks := s.keys(names)
	unlock := s.b.locks.lock(s.store, dks...)
	defer unlock()
	cur, err := s.b.sc.bulkGet(ctx, s.store, dks)
	if err != nil {
		return err
	}
	if c := core.CheckTransact(ops, func(key string) (bool, string, error) {
		it := cur[s.prefix+key]
		return it.found, etagOf(it), nil
	}); c != nil {
		return c
	}
	// Every precondition holds now; send each conditional op with the
	// store's own condition so that a writer elsewhere that changes a key
	// in between is caught.
	ws := make([]writeOp, len(ops))
	for i, op := range ops {
		w := writeOp{key: s.prefix + op.Key}
		if op.Kind == sdk.OpDelete {
			w.del = true
		} else {
			w.value, w.md = op.Value, ttlMeta(op.TTL)
		}
		switch {
		case op.ETag != "":
			w.etag = cur[w.key].version
		case op.IfAbsent:
			s.ifAbsent(&w)
		}
		ws[i] = w
	}
	err = s.b.sc.transact(ctx, s.store, ws)
	if sdk.IsCode(err, sdk.Conflict) {
		return sdk.Errorf(sdk.Conflict, "state transaction: a key changed under it (a writer in another process): %v", err)
	}
	return err
}

// keyLocks keeps this process's writes of a key out of a transaction on
// it, so that a transaction's check and its write see no write of this
// process in between. Single-key writes share a key (Redis checks their
// ETags atomically, so they may race each other); a transaction holds its
// keys alone. Keys hash onto a fixed set of locks.
type keyLocks struct {
	m [512]sync.RWMutex
}

// rlock takes key for a single-key write.
func (l *keyLocks) rlock(store, key string) func() {
	x := stripe(store, key, len(l.m))
	l.m[x].RLock()
	return l.m[x].RUnlock
}

func stripe(store, key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(store))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// lock takes keys for a transaction.
func (l *keyLocks) lock(store string, keys ...string) func() {
	idx := make([]int, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, stripe(store, k, len(l.m)))
	}
	sort.Ints(idx)
	n := 0
	for i, x := range idx {
		if i == 0 || x != idx[i-1] {
			idx[n] = x
			n++
		}
	}
	idx = idx[:n]
	for _, x := range idx {
		l.m[x].Lock()
	}
	return func() {
		for i := len(idx) - 1; i >= 0; i-- {
			l.m[idx[i]].Unlock()
		}
	}
}
