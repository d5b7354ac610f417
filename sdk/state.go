package sdk

import (
	"context"
	"time"
)

// State is a key/value store scoped to the calling app: two apps never see
// each other's keys, as with Dapr's default key prefix.
//
// Concurrency follows Dapr's first-write-wins model. A write that carries an
// ETag succeeds only if the stored item still has that ETag; otherwise it fails
// with Conflict. A write without an ETag is last-write-wins.
type State interface {
	// Get returns the item and its ETag, or an error with code NotFound when
	// the key is absent or its TTL has passed.
	Get(ctx context.Context, key string) (Item, error)
	// BulkGet returns one item per key, in order. An absent key yields an item
	// with a nil Value and an empty ETag, not an error.
	BulkGet(ctx context.Context, keys []string) ([]Item, error)
	// Set stores value under key. A non-empty o.ETag makes it conditional; a
	// positive o.TTL makes the item expire. A Set without TTL clears any TTL.
	Set(ctx context.Context, key string, value []byte, o WriteOptions) error
	// Delete removes key. Without an ETag, deleting an absent key succeeds.
	// With one, the ETag must match the stored item (Conflict otherwise).
	Delete(ctx context.Context, key string, o WriteOptions) error
	// Transact applies every op atomically, or none of them. Any stale ETag
	// fails the whole transaction with Conflict.
	Transact(ctx context.Context, ops []Op) error
}

// Item is one stored value.
type Item struct {
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
	ETag  string `json:"etag,omitempty"`
}

// Found reports whether a BulkGet item exists.
func (it Item) Found() bool { return it.ETag != "" }

// WriteOptions qualifies a Set or Delete.
type WriteOptions struct {
	// ETag, when set, makes the write conditional (first-write-wins).
	ETag string
	// TTL, when positive, expires the item after that long. Set only.
	TTL time.Duration
	// IfAbsent makes a Set succeed only if the key does not exist (Conflict
	// otherwise): the create half of first-write-wins. It excludes ETag.
	IfAbsent bool
}

// OpKind says what a transaction op does.
type OpKind uint8

// Transaction op kinds.
const (
	OpSet    OpKind = 1
	OpDelete OpKind = 2
)

// Op is one step of a transaction.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	ETag  string
	TTL   time.Duration
	// IfAbsent: see WriteOptions.IfAbsent.
	IfAbsent bool
}

// Options returns the op's write options.
func (o Op) Options() WriteOptions {
	return WriteOptions{ETag: o.ETag, TTL: o.TTL, IfAbsent: o.IfAbsent}
}

// SetOp returns a transaction op that sets key.
func SetOp(key string, value []byte, o WriteOptions) Op {
	return Op{Kind: OpSet, Key: key, Value: value, ETag: o.ETag, TTL: o.TTL, IfAbsent: o.IfAbsent}
}

// DeleteOp returns a transaction op that deletes key. Its options are
// checked as Delete's are: IfAbsent is refused, not dropped (a delete "if
// absent" deleted the key that was there).
func DeleteOp(key string, o WriteOptions) Op {
	return Op{Kind: OpDelete, Key: key, ETag: o.ETag, IfAbsent: o.IfAbsent}
}

// GetJSON reads key and decodes its JSON value into a T. It returns the ETag
// for a later conditional write.
func GetJSON[T any](ctx context.Context, s State, key string) (T, string, error) {
	var v T
	if sg, ok := s.(scratchGetter); ok {
		value, etag, buf, err := sg.getScratch(ctx, key)
		if err != nil {
			return v, "", err
		}
		err = unmarshal(value, &v)
		sg.putScratch(buf)
		if err != nil {
			return v, "", Errorf(Internal, "state %s: stored value does not decode: %v", QuoteKey(key), err)
		}
		return v, etag, nil
	}
	it, err := s.Get(ctx, key)
	if err != nil {
		return v, "", err
	}
	if err := unmarshal(it.Value, &v); err != nil {
		return v, "", Errorf(Internal, "state %s: stored value does not decode: %v", QuoteKey(key), err)
	}
	return v, it.ETag, nil
}

// scratchGetter is a State that can lend a value in a reused buffer rather
// than hand it out in a new one: the wasm guest's, where an allocation costs
// microseconds. GetJSON only decodes the value (a decoder copies what it
// keeps), so it borrows: buf goes back with putScratch once decoded.
type scratchGetter interface {
	getScratch(ctx context.Context, key string) (value []byte, etag string, buf []byte, err error)
	putScratch(buf []byte) // buf as getScratch returned it, nil included

}

// SetJSON encodes v as JSON and stores it under key.
func SetJSON(ctx context.Context, s State, key string, v any, o WriteOptions) error {
	b, err := marshal(v)
	if err != nil {
		return Errorf(InvalidArgument, "state %s: value does not encode: %v", QuoteKey(key), err)
	}
	return s.Set(ctx, key, b, o)
}

// Update runs a read-modify-write loop on key with ETag concurrency: it reads
// the current value (the zero T when absent), calls fn, and writes the result
// conditionally, retrying on Conflict up to attempts times. It is the portable
// way to keep a counter or a stock level exact under concurrent writers.
func Update[T any](ctx context.Context, s State, key string, attempts int, fn func(cur T, exists bool) (T, error)) (T, error) {
	var zero T
	if attempts <= 0 {
		attempts = 1
	}
	var last error
	for i := 0; i < attempts; i++ {
		cur, etag, err := GetJSON[T](ctx, s, key)
		exists := err == nil
		if err != nil && !IsCode(err, NotFound) {
			return zero, err
		}
		next, err := fn(cur, exists)
		if err != nil {
			return zero, err
		}
		b, err := marshal(next)
		if err != nil {
			return zero, Errorf(InvalidArgument, "state %s: value does not encode: %v", QuoteKey(key), err)
		}
		o := WriteOptions{ETag: etag}
		if !exists {
			// An absent key has no ETag: creating it is conditional on it
			// still being absent, so two creators cannot both win.
			o = WriteOptions{IfAbsent: true}
		}
		err = s.Set(ctx, key, b, o)
		if err == nil {
			return next, nil
		}
		if !IsCode(err, Conflict) {
			return zero, err
		}
		last = err
		if err := ctx.Err(); err != nil {
			return zero, err
		}
	}
	return zero, last
}
