// Package core holds what the in-process backends (memory and embedded) must
// agree on so that they behave identically: argument validation and ETag
// preconditions for state, the CloudEvents envelope a publish produces, the
// stored form of a queued event, the per-subscription delivery loop with its
// retry and dead-letter rules, and the map-backed config and secrets.
//
// Keeping these in one place is what lets the memory backend stand in for the
// embedded one in unit tests: the only difference left between them is where
// the bytes live.
package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// Delivery outcomes reported to OnDeliver hooks.
const (
	OutcomeOK         = "ok"         // the handler acknowledged the event
	OutcomeRetry      = "retry"      // the handler failed; the event will be redelivered
	OutcomeDeadLetter = "deadletter" // the event was moved to the dead-letter topic
)

// DefaultEventType is the CloudEvents type of a message that names none.
const DefaultEventType = "roam.event"

// DefaultContentType is the content type of a message that names none.
const DefaultContentType = "application/json"

// Policy returns p, or backend.DefaultRetryPolicy when p is the zero value. A
// policy with fewer than one attempt is taken to mean one.
func Policy(p backend.RetryPolicy) backend.RetryPolicy {
	if p == (backend.RetryPolicy{}) {
		return backend.DefaultRetryPolicy
	}
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 1
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	return p
}

// ErrClosed is returned by every capability of a closed backend.
func ErrClosed(name string) error {
	return sdk.NewError(sdk.Unavailable, name+" backend is closed")
}

// ---- state ----

// CheckStore validates a state store name.
func CheckStore(store string) error {
	if store == "" {
		return sdk.NewError(sdk.InvalidArgument, "state store name is empty")
	}
	return nil
}

// CheckKey validates a state key.
func CheckKey(key string) error {
	if key == "" {
		return sdk.NewError(sdk.InvalidArgument, "state key is empty")
	}
	return nil
}

// CheckKeys validates every key of a BulkGet.
func CheckKeys(keys []string) error {
	for _, k := range keys {
		if err := CheckKey(k); err != nil {
			return err
		}
	}
	return nil
}

// CheckSet validates the arguments of a Set.
func CheckSet(key string, o sdk.WriteOptions) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if o.ETag != "" && o.IfAbsent {
		return sdk.Errorf(sdk.InvalidArgument, "state %s: ETag and IfAbsent exclude each other", sdk.QuoteKey(key))
	}
	if o.TTL < 0 {
		return sdk.Errorf(sdk.InvalidArgument, "state %s: negative TTL %v", sdk.QuoteKey(key), o.TTL)
	}
	return nil
}

// CheckDelete validates the arguments of a Delete.
func CheckDelete(key string, o sdk.WriteOptions) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if o.IfAbsent {
		return sdk.Errorf(sdk.InvalidArgument, "state %s: IfAbsent applies to Set only", sdk.QuoteKey(key))
	}
	return nil
}

// CheckOps validates every op of a transaction.
func CheckOps(ops []sdk.Op) error {
	for i, op := range ops {
		var err error
		switch op.Kind {
		case sdk.OpSet:
			err = CheckSet(op.Key, op.Options())
		case sdk.OpDelete:
			err = CheckDelete(op.Key, op.Options())
		default:
			err = sdk.Errorf(sdk.InvalidArgument, "transaction op %d: unknown kind %d", i, op.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Precondition checks a write's ETag or IfAbsent condition against the
// stored item: exists says whether the key is present (and unexpired), cur is
// its ETag. It returns a Conflict error or nil.
func Precondition(key string, exists bool, cur string, o sdk.WriteOptions) error {
	switch {
	case o.IfAbsent && exists:
		return sdk.Errorf(sdk.Conflict, "state %s: key already exists", sdk.QuoteKey(key))
	case o.ETag != "" && !exists:
		return sdk.Errorf(sdk.Conflict, "state %s: ETag %s given but the key does not exist", sdk.QuoteKey(key), o.ETag)
	case o.ETag != "" && o.ETag != cur:
		return sdk.Errorf(sdk.Conflict, "state %s: ETag %s is stale", sdk.QuoteKey(key), o.ETag)
	}
	return nil
}

// Lookup reports whether key exists and its ETag.
type Lookup func(key string) (exists bool, etag string, err error)

// CheckTransact checks the preconditions of every op as if the earlier ops of
// the same transaction had been applied, without applying anything. A key
// written earlier in the transaction has an ETag nobody can know yet, so a
// later op naming any ETag for it conflicts. It returns the first Conflict.
func CheckTransact(ops []sdk.Op, lookup Lookup) error {
	type view struct {
		exists bool
		etag   string
	}
	overlay := map[string]view{}
	for _, op := range ops {
		v, seen := overlay[op.Key]
		if !seen {
			ex, et, err := lookup(op.Key)
			if err != nil {
				return err
			}
			v = view{ex, et}
		}
		if err := Precondition(op.Key, v.exists, v.etag, op.Options()); err != nil {
			return err
		}
		if op.Kind == sdk.OpSet {
			overlay[op.Key] = view{exists: true, etag: "\x00pending"}
		} else {
			overlay[op.Key] = view{}
		}
	}
	return nil
}

// FormatETag renders a sequence number as an ETag.
func FormatETag(seq uint64) string { return strconv.FormatUint(seq, 10) }

// Expiry returns the expiry instant for a TTL in Unix nanoseconds, 0 for
// none. An instant past what int64 nanoseconds hold (after 2262) is the
// last one they do: it never comes, where the sum would wrap negative and
// the item read as long expired.
func Expiry(now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	n := now.UnixNano()
	if int64(ttl) > math.MaxInt64-n {
		return math.MaxInt64
	}
	return n + int64(ttl)
}

// Expired reports whether an item with the given expiry (Unix ns, 0 for none)
// has expired at now.
func Expired(expiry int64, now time.Time) bool {
	return expiry != 0 && now.UnixNano() >= expiry
}

// ---- events ----

// Record is the stored form of a queued event: the CloudEvents envelope plus
// the publisher's broker metadata, which is not part of the event but must
// follow it to a dead-letter topic.
type Record struct {
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Subject         string            `json:"subject,omitempty"`
	Time            time.Time         `json:"time"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	PubSub          string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	TraceParent     string            `json:"traceparent,omitempty"`
	TraceState      string            `json:"tracestate,omitempty"`
	Data            []byte            `json:"data,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	// DeadLetters are the topics the event was dead-lettered from, oldest
	// first: where it has failed for good. It is the backend's, not the
	// subscriber's, and lets Loops stop a dead-letter cycle.
	DeadLetters []string `json:"deadletters,omitempty"`
}

// CheckMessage validates a message before it is published.
func CheckMessage(m sdk.Message) error {
	if m.PubSub == "" || m.Topic == "" {
		return sdk.Errorf(sdk.InvalidArgument, "publish: pubsub and topic are required (got %q/%q)", m.PubSub, m.Topic)
	}
	if err := CheckUTF8Names("publish", m.PubSub, m.Topic); err != nil {
		return err
	}
	return CheckPubSubName(m.PubSub)
}

// CheckUTF8Names rejects pub/sub and topic names that are not UTF-8. An
// event crosses JSON (the embedded backend's stored record, Dapr's
// CloudEvents) and the browser, which all turn such a name into U+FFFD:
// the embedded backend delivered an event of topic "\xff" as one of topic
// "\ufffd", which its subscriber's app does not take, so every delivery
// failed until the event was dead-lettered.
func CheckUTF8Names(what string, names ...string) error {
	for _, n := range names {
		if !utf8.ValidString(n) {
			return sdk.Errorf(sdk.InvalidArgument, "%s: pubsub and topic names must be UTF-8 (got %q)", what, n)
		}
	}
	return nil
}

// CheckPubSubName rejects pub/sub component names containing NUL, which the
// embedded backend uses to separate component and topic in bucket names.
func CheckPubSubName(name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return sdk.Errorf(sdk.InvalidArgument, "pubsub name %q contains NUL", name)
	}
	return nil
}

// NewRecord wraps a message published by appID in a CloudEvents 1.0
// envelope. When ctx carries a trace context (sdk.Trace: the host's
// producer span, when it traces), the event carries it as its traceparent
// and tracestate: the CloudEvents distributed-tracing extension, which the
// subscriber's host continues.
func NewRecord(ctx context.Context, appID string, m sdk.Message) *Record {
	tc := sdk.Trace(ctx)
	r := &Record{
		ID:              NewID(),
		Source:          appID,
		Type:            m.Type,
		Time:            time.Now().UTC(),
		DataContentType: m.ContentType,
		PubSub:          m.PubSub,
		Topic:           m.Topic,
		TraceParent:     tc.TraceParent,
		TraceState:      tc.TraceState,
		Data:            append([]byte(nil), m.Data...),
	}
	if r.Type == "" {
		r.Type = DefaultEventType
	}
	if r.DataContentType == "" {
		r.DataContentType = DefaultContentType
	}
	if len(m.Metadata) > 0 {
		r.Metadata = make(map[string]string, len(m.Metadata))
		for k, v := range m.Metadata {
			r.Metadata[k] = v
		}
	}
	return r
}

// Event returns the event a subscriber receives. Each call returns a fresh
// copy, so a handler may keep or modify it.
func (r *Record) Event() *sdk.Event {
	return &sdk.Event{
		SpecVersion:     "1.0",
		ID:              r.ID,
		Source:          r.Source,
		Type:            r.Type,
		Subject:         r.Subject,
		Time:            r.Time,
		DataContentType: r.DataContentType,
		PubSub:          r.PubSub,
		Topic:           r.Topic,
		TraceParent:     r.TraceParent,
		TraceState:      r.TraceState,
		Data:            append([]byte(nil), r.Data...),
	}
}

// DeadLettered returns a copy of r bound for topic: the same id, source,
// type, data and metadata, so the dead-letter consumer sees which event
// failed, and r's topic added to its DeadLetters.
func (r *Record) DeadLettered(topic string) *Record {
	c := *r
	c.DeadLetters = append(slices.Clip(r.DeadLetters), r.Topic)
	c.Topic = topic
	return &c
}

// Loops reports whether dead-lettering r to topic would send it back to a
// topic where it has failed for good already: its own, or one it was
// dead-lettered from. Two subscriptions whose dead-letter topics name each
// other's topics, or a longer cycle of them, otherwise passed a failing
// event round for ever, MaxAttempts deliveries per lap.
func (r *Record) Loops(topic string) bool {
	return topic == r.Topic || slices.Contains(r.DeadLetters, topic)
}

// NewID returns a random UUID (version 4), used as CloudEvents id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// ---- config and secrets ----

// Config is a map-backed sdk.Config.
type Config map[string]string

// Get returns the value of key or NotFound.
func (c Config) Get(ctx context.Context, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	v, ok := c[key]
	if !ok {
		return "", sdk.Errorf(sdk.NotFound, "config key %q is not set", key)
	}
	return v, nil
}

// Secrets is a map-backed sdk.Secrets: store name → key → value.
type Secrets map[string]map[string]string

// Get returns the secret or NotFound.
func (s Secrets) Get(ctx context.Context, store, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	st, ok := s[store]
	if !ok {
		return "", sdk.Errorf(sdk.NotFound, "secret store %q does not exist", store)
	}
	v, ok := st[key]
	if !ok {
		return "", sdk.Errorf(sdk.NotFound, "secret %q not found in store %q", key, store)
	}
	return v, nil
}
