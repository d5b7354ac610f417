package abi

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Version is the ABI version. A host refuses a module whose major version
// differs from its own. Minor versions only add: imports, exports, and
// optional fields appended to the end of a message, which a side sends only
// to a peer that reports (or proved by sending one) the minor that defines
// them, so that every v1.x host runs every v1.y guest.
//
// Minor 1 adds the W3C trace context: TraceParent and TraceState at the end
// of a Call (the host sends them only to guests reporting minor ≥ 1, and only
// when it traces), and the same two strings at the end of an invoke or
// publish request (a guest sends them only when its call carried them).
//
// Minor 2 adds the roam_app_id export, which names the module's app before
// its setup runs, so that a host binds the app's own capabilities to the
// first roam_init instead of setting the app up twice.
const (
	VersionMajor = 1
	VersionMinor = 2
)

// ImportModule is the wasm import module of this major version. A module
// built against another major imports a different name, which lets a host
// name the mismatch before instantiating anything.
const ImportModule = "roam_v1"

// ImportModulePrefix starts the import module name of every major version.
const ImportModulePrefix = "roam_v"

// Exports of a guest module.
//
//	roam_abi_version() -> i32            major<<16 | minor
//	roam_alloc(size i32) -> i32          pointer to a guest buffer of size bytes,
//	                                     valid until the next roam_alloc
//	roam_app_id() -> i64                 (v1.2) returns a Frame holding the id of
//	                                     the module's app, without running its
//	                                     setup (or the error: no app, or several)
//	roam_init() -> i64                   binds the app; returns a Frame holding
//	                                     the Manifest (or the setup error)
//	roam_handle(ptr i32, len i32) -> i64 runs one Call read from [ptr, ptr+len)
//	                                     and returns a Frame holding the reply
//
// A Frame is an i64 packing a guest pointer (high 32 bits) and a length (low
// 32 bits). The bytes at the pointer are one status byte (a Code) followed by
// the payload: the reply body on OK, the error message otherwise. They stay
// valid until the next call into the guest.
const (
	ExportABIVersion = "roam_abi_version"
	ExportAlloc      = "roam_alloc"
	ExportAppID      = "roam_app_id" // v1.2, optional
	ExportInit       = "roam_init"
	ExportHandle     = "roam_handle"
)

// Imports of module ImportModule. Every operation import takes the pointer
// and length of its encoded request in guest memory and returns an i64 whose
// high 32 bits are a Code and low 32 bits the length of the host's reply. The
// guest then allocates that many bytes and calls take_result to have the host
// copy the reply in. On a non-OK code the reply is the error message.
//
//	state_get(ptr, len) -> i64        store, key                 -> ItemReply
//	state_bulk_get(ptr, len) -> i64   store, n, n×key            -> n×ItemReply
//	state_set(ptr, len) -> i64        store, key, value, WriteOptions
//	state_delete(ptr, len) -> i64     store, key, WriteOptions
//	state_transact(ptr, len) -> i64   store, n, n×Op
//	publish(ptr, len) -> i64          pubsub, topic, data, content type, type, n, n×(key, value)
//	                                  [, traceparent, tracestate]
//	invoke(ptr, len) -> i64           app, method, data [, traceparent, tracestate]
//	                                                             -> reply body
//	config_get(ptr, len) -> i64       key                        -> value
//	secret_get(ptr, len) -> i64       store, key                 -> value
//	log(ptr, len) -> i64              level (zigzag), message, n, n×(key, value)
//	take_result(ptr)                  copies the pending reply to ptr
const (
	ImportStateGet      = "state_get"
	ImportStateBulkGet  = "state_bulk_get"
	ImportStateSet      = "state_set"
	ImportStateDelete   = "state_delete"
	ImportStateTransact = "state_transact"
	ImportPublish       = "publish"
	ImportInvoke        = "invoke"
	ImportConfigGet     = "config_get"
	ImportSecretGet     = "secret_get"
	ImportLog           = "log"
	ImportTakeResult    = "take_result"
)

// Call kinds, the first field of a roam_handle request.
const (
	KindMethod = 1 // name is the method; body is the request
	KindEvent  = 2 // name is "pubsub/topic"; body is the CloudEvent JSON
)

// Call is one roam_handle request: kind, name, request id, deadline (Unix
// milliseconds, 0 for none), body, then, since v1.1 and only when the call
// is traced, the W3C traceparent and tracestate of the span the guest
// handler runs in. A guest hands them back with its invoke and publish
// requests, so that the host parents the spans of those calls correctly
// even when they are made from a goroutine of another call.
type Call struct {
	Kind        uint64
	Name        string
	RequestID   string
	DeadlineMs  uint64
	Body        []byte
	TraceParent string // v1.1, optional
	TraceState  string // v1.1, optional
}

// AppendCall encodes c. The trace context is appended only when it is set,
// so an untraced call encodes as in v1.0.
func AppendCall(b []byte, c Call) []byte {
	b = AppendUvarint(b, c.Kind)
	b = AppendString(b, c.Name)
	b = AppendString(b, c.RequestID)
	b = AppendUvarint(b, c.DeadlineMs)
	b = AppendBytes(b, c.Body)
	return AppendTrace(b, c.TraceParent, c.TraceState)
}

// ReadCall decodes a Call of v1.0 or v1.1. Body aliases b.
func ReadCall(b []byte) (Call, error) {
	r := Reader{B: b}
	c := Call{Kind: r.Uvarint(), Name: r.String(), RequestID: r.String(), DeadlineMs: r.Uvarint(), Body: r.Bytes()}
	c.TraceParent, c.TraceState = ReadTrace(&r)
	return c, r.Done()
}

// AppendTrace appends the optional trailing trace context of v1.1 (a Call,
// an invoke or a publish request): nothing when both are empty.
func AppendTrace(b []byte, traceparent, tracestate string) []byte {
	if traceparent == "" && tracestate == "" {
		return b
	}
	return AppendString(AppendString(b, traceparent), tracestate)
}

// ReadTrace reads the optional trailing trace context: two strings when
// bytes remain, else none. The strings are not validated here; a host
// parses them and ignores what does not parse.
func ReadTrace(r *Reader) (traceparent, tracestate string) {
	if r.err != nil || len(r.B) == 0 {
		return "", ""
	}
	return r.String(), r.String()
}

// Manifest is what roam_init reports: the app and its handlers.
type Manifest struct {
	AppID         string
	Methods       []string
	Subscriptions []ManifestSub
}

// ManifestSub is one subscription in a Manifest.
type ManifestSub struct {
	PubSub, Topic, DeadLetterTopic string
}

// AppendManifest encodes m.
func AppendManifest(b []byte, m Manifest) []byte {
	b = AppendString(b, m.AppID)
	b = AppendUvarint(b, uint64(len(m.Methods)))
	for _, s := range m.Methods {
		b = AppendString(b, s)
	}
	b = AppendUvarint(b, uint64(len(m.Subscriptions)))
	for _, s := range m.Subscriptions {
		b = AppendString(b, s.PubSub)
		b = AppendString(b, s.Topic)
		b = AppendString(b, s.DeadLetterTopic)
	}
	return b
}

// ReadManifest decodes a Manifest.
func ReadManifest(b []byte) (Manifest, error) {
	r := Reader{B: b}
	m := Manifest{AppID: r.String()}
	n := r.Count()
	for i := 0; i < n; i++ {
		m.Methods = append(m.Methods, r.String())
	}
	n = r.Count()
	for i := 0; i < n; i++ {
		m.Subscriptions = append(m.Subscriptions, ManifestSub{r.String(), r.String(), r.String()})
	}
	return m, r.Done()
}

// WriteOptions flags.
const (
	FlagIfAbsent = 1
)

// AppendWriteOptions encodes an ETag, a TTL in milliseconds (TTLMillis)
// and flags.
func AppendWriteOptions(b []byte, etag string, ttlMs uint64, flags uint64) []byte {
	b = AppendString(b, etag)
	b = AppendUvarint(b, ttlMs)
	return AppendUvarint(b, flags)
}

// MaxTTLMillis is the longest TTL in whole milliseconds: the most a
// time.Duration holds.
const MaxTTLMillis = math.MaxInt64 / int64(time.Millisecond)

// TTLMillis is a TTL as WriteOptions carry it: whole milliseconds, rounded
// up so that a TTL under a millisecond still expires (but not past
// MaxTTLMillis), in the two's complement of an int64 so that a negative
// TTL crosses as it is and the host's backend refuses it as it would
// natively.
func TTLMillis(ttl time.Duration) uint64 {
	ms := int64(ttl / time.Millisecond)
	if ttl > 0 && ttl%time.Millisecond != 0 && ms < MaxTTLMillis {
		ms++
	}
	return uint64(ms)
}

// Op kinds in state_transact, matching sdk.OpKind.
const (
	OpSet    = 1
	OpDelete = 2
)

// PackResult packs a code and a length into an import's i64 result.
func PackResult(c Code, n uint32) uint64 { return uint64(c)<<32 | uint64(n) }

// UnpackResult splits an import's i64 result.
func UnpackResult(v uint64) (Code, uint32) { return Code(v >> 32), uint32(v) }

// PackFrame packs a guest pointer and length into an export's i64 result.
func PackFrame(ptr, n uint32) uint64 { return uint64(ptr)<<32 | uint64(n) }

// UnpackFrame splits an export's i64 result.
func UnpackFrame(v uint64) (ptr, n uint32) { return uint32(v >> 32), uint32(v) }

// The encoding: unsigned varints, and byte strings as a varint length
// followed by the bytes. Fields follow each other in the order documented for
// each message; there are no tags. It is the leanest framing that both a Go
// guest and the JS host can write without a library, and it costs no
// reflection on either side.

// AppendUvarint appends v as an unsigned varint.
func AppendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendBytes appends a length-prefixed byte string.
func AppendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// AppendString appends a length-prefixed string.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// ErrMalformed reports a message that does not decode.
var ErrMalformed = errors.New("abi: malformed message")

// Reader decodes the encoding. It never panics: the first error sticks, and
// every later read returns a zero value.
type Reader struct {
	B   []byte
	err error
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.B)
	if n <= 0 {
		r.err = ErrMalformed
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Count reads a length that must fit in what is left (each element takes at
// least one byte), so a hostile count cannot make the caller allocate.
func (r *Reader) Count() int {
	v := r.Uvarint()
	if v > uint64(len(r.B)) {
		r.fail()
		return 0
	}
	return int(v)
}

// Bytes reads a length-prefixed byte string. The result aliases the input.
func (r *Reader) Bytes() []byte {
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.B)) {
		r.fail()
		return nil
	}
	v := r.B[:n:n]
	r.B = r.B[n:]
	return v
}

// String reads a length-prefixed string.
func (r *Reader) String() string { return string(r.Bytes()) }

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrMalformed
	}
	r.B = nil
}

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Done returns the first decoding error, or ErrMalformed if bytes remain.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.B) != 0 {
		return ErrMalformed
	}
	return nil
}
