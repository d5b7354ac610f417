//go:build wasip1

package sdk

// This file is the SDK's wasip1 side: the guest half of the ABI in package
// abi. It exports the entry points a host calls and implements Env on the
// host's imports, so that app code built for wasip1 is the same source as
// native. Nothing here is specific to one host: the wazero edge host and the
// browser's JS host implement the same imports.

import (
	"context"
	"log/slog"
	"strings"
	"time"
	"unsafe"

	"github.com/roam-dev/roam/abi"
)

//go:wasmimport roam_v1 state_get
func hostStateGet(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 state_bulk_get
func hostStateBulkGet(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 state_set
func hostStateSet(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 state_delete
func hostStateDelete(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 state_transact
func hostStateTransact(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 publish
func hostPublish(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 invoke
func hostInvoke(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 config_get
func hostConfigGet(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 secret_get
func hostSecretGet(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 log
func hostLog(ptr unsafe.Pointer, n uint32) uint64

//go:wasmimport roam_v1 take_result
func hostTakeResult(ptr unsafe.Pointer)

// hostCall runs one operation import and collects its reply.
func hostCall(fn func(unsafe.Pointer, uint32) uint64, req []byte) ([]byte, error) {
	return hostCallInto(fn, req, nil)
}

// hostCallInto is hostCall with the reply read into dst when it fits.
func hostCallInto(fn func(unsafe.Pointer, uint32) uint64, req, dst []byte) ([]byte, error) {
	var p unsafe.Pointer
	if len(req) > 0 {
		p = unsafe.Pointer(&req[0])
	}
	code, n := abi.UnpackResult(fn(p, uint32(len(req))))
	var out []byte
	if n > 0 {
		if int(n) <= cap(dst) {
			out = dst[:n]
		} else {
			out = make([]byte, n)
		}
		hostTakeResult(unsafe.Pointer(&out[0]))
	}
	if code != abi.OK {
		return nil, &Error{Code: code, Message: string(out)}
	}
	return out, nil
}

// scratch is a buffer lent to one user at a time: the requests to the
// host's imports are encoded into it, since the host copies them during the
// import call. The guest is single-threaded, but a goroutine can be
// switched out while it holds the buffer (in a GC assist, say); another
// one then gets no buffer and allocates its own, so the flag needs no
// atomics.
type scratch struct {
	b    []byte
	busy bool
}

func (s *scratch) take() ([]byte, bool) {
	if s.busy {
		return nil, false
	}
	s.busy = true
	return s.b[:0], true
}

func (s *scratch) put(b []byte, owned bool) {
	if !owned {
		return
	}
	if cap(b) <= 64<<10 {
		s.b = b[:0]
	}
	s.busy = false
}

// hostRequest runs one operation import on a request that fill encodes
// into the scratch buffer, and collects the reply.
func hostRequest(fn func(unsafe.Pointer, uint32) uint64, fill func([]byte) []byte) ([]byte, error) {
	b, owned := guest.scratch.take()
	b = fill(b)
	out, err := hostCall(fn, b)
	guest.scratch.put(b, owned)
	return out, err
}

// guest is the module's one app instance. A module holds exactly one app and
// a host calls an instance from one goroutine at a time, so plain globals
// suffice; they also keep the buffers reachable for the GC.
var guest struct {
	router *Router
	env    *guestEnv
	req    []byte // the buffer roam_alloc hands out
	res    []byte // the frame of the last export call
	// scratch holds the requests to the host's imports; reply, the values
	// GetJSON borrows.
	scratch, reply scratch
	// hostTraces: a call carried a trace context, so the host reads one
	// back (ABI v1.1).
	hostTraces bool
	// depth counts the roam_handle calls in progress. The JS host calls
	// an instance again from inside an import (an app that invokes
	// itself), while the outer call may be building its reply in res; a
	// nested call's frame goes to nested instead.
	depth  int
	nested []byte
}

//go:wasmexport roam_abi_version
func exportABIVersion() int32 { return abi.VersionMajor<<16 | abi.VersionMinor }

//go:wasmexport roam_alloc
func exportAlloc(size int32) uint32 {
	if size < 0 {
		return 0
	}
	if cap(guest.req) < int(size) {
		guest.req = make([]byte, size, max(int(size), 2*cap(guest.req)))
	}
	guest.req = guest.req[:size]
	if size == 0 {
		guest.req = guest.req[:1]
	}
	return uint32(uintptr(unsafe.Pointer(&guest.req[0])))
}

func frame(c abi.Code, payload []byte) uint64 {
	buf := &guest.res
	if guest.depth > 1 {
		buf = &guest.nested // the outer call's reply is being built in res
	}
	*buf = append(append((*buf)[:0], byte(c)), payload...)
	return abi.PackFrame(uint32(uintptr(unsafe.Pointer(&(*buf)[0]))), uint32(len(*buf)))
}

func errorFrame(err error) uint64 {
	c := CodeOf(err)
	if c == OK {
		c = Internal
	}
	return frame(c, []byte(err.Error()))
}

// theApp returns the module's one app.
func theApp() (*App, error) {
	apps := Apps()
	if len(apps) != 1 {
		ids := make([]string, len(apps))
		for i, a := range apps {
			ids[i] = a.ID()
		}
		return nil, Errorf(FailedPrecondition, "a wasm module holds exactly one app; this one registers %d (%s)", len(apps), strings.Join(ids, ", "))
	}
	return apps[0], nil
}

// exportAppID names the app before its setup runs (ABI v1.2): apps register
// during package initialisation, which _initialize has already run.
//
//go:wasmexport roam_app_id
func exportAppID() uint64 {
	a, err := theApp()
	if err != nil {
		return errorFrame(err)
	}
	return frame(abi.OK, []byte(a.ID()))
}

//go:wasmexport roam_init
func exportInit() uint64 {
	a, err := theApp()
	if err != nil {
		return errorFrame(err)
	}
	env := &guestEnv{id: a.ID()}
	r, err := a.Setup(env)
	if err != nil {
		return errorFrame(err)
	}
	guest.router, guest.env = r, env
	m := abi.Manifest{AppID: a.ID(), Methods: r.Methods()}
	for _, s := range r.Subscriptions() {
		m.Subscriptions = append(m.Subscriptions, abi.ManifestSub{PubSub: s.PubSub, Topic: s.Topic, DeadLetterTopic: s.DeadLetterTopic})
	}
	return frame(abi.OK, abi.AppendManifest(nil, m))
}

//go:wasmexport roam_handle
func exportHandle(ptr, n uint32) uint64 {
	guest.depth++
	defer func() { guest.depth-- }()
	if guest.router == nil {
		return errorFrame(NewError(FailedPrecondition, "roam_handle before roam_init"))
	}
	if len(guest.req) == 0 || uint32(uintptr(unsafe.Pointer(&guest.req[0]))) != ptr || int(n) > len(guest.req) {
		return errorFrame(NewError(InvalidArgument, "roam_handle: request is not in the buffer roam_alloc returned"))
	}
	// abi.ReadCall, without copying the name (a map key here) nor the body.
	r := abi.Reader{B: guest.req[:n]}
	kind, name, rid, deadlineMs, body := r.Uvarint(), r.Bytes(), r.Bytes(), r.Uvarint(), r.Bytes()
	var tp, ts []byte
	if r.Err() == nil && len(r.B) > 0 {
		tp, ts = r.Bytes(), r.Bytes()
	}
	if r.Done() != nil {
		return errorFrame(NewError(InvalidArgument, "roam_handle: malformed call"))
	}
	var tc TraceContext
	if len(tp) > 0 {
		tc = TraceContext{TraceParent: string(tp), TraceState: string(ts)}
		guest.hostTraces = true
	}
	var deadline time.Time
	if deadlineMs > 0 {
		deadline = time.UnixMilli(int64(deadlineMs))
	}
	ctx := newCallContext(string(rid), tc, deadline)
	defer ctx.stop()
	// The reply is encoded straight into the frame buffer, after the
	// status byte; a nested call's into a buffer of its own (see depth).
	nested := guest.depth > 1
	var dst []byte
	if nested {
		dst = []byte{byte(abi.OK)}
	} else {
		dst = append(guest.res[:0], byte(abi.OK))
	}
	out, err := dispatch(ctx, kind, name, body, dst)
	if err != nil {
		return errorFrame(err)
	}
	if len(out) == 0 || out[0] != byte(abi.OK) {
		// An AppendJSON that returned its encoding without appending it
		// to its argument (JSON never starts with a NUL byte).
		return frame(abi.OK, out)
	}
	if nested {
		return frame(abi.OK, out[1:])
	}
	guest.res = out
	return abi.PackFrame(uint32(uintptr(unsafe.Pointer(&out[0]))), uint32(len(out)))
}

// dispatch runs one call; on success its reply is appended to dst.
func dispatch(ctx context.Context, kind uint64, name, body, dst []byte) ([]byte, error) {
	app := guest.router.AppID()
	switch kind {
	case abi.KindMethod:
		if a, ok := guest.router.appenders[string(name)]; ok {
			return callMethod(ctx, app, name, a, nil, body, dst)
		}
		if h, ok := guest.router.methods[string(name)]; ok {
			return callMethod(ctx, app, name, nil, h, body, dst)
		}
		return nil, Errorf(NotFound, "app %q has no method %s", app, QuoteName(string(name)))
	case abi.KindEvent:
		pubsub, topic, _ := strings.Cut(string(name), "/")
		for _, s := range guest.router.subs {
			if s.PubSub == pubsub && s.Topic == topic {
				var e Event
				if err := e.UnmarshalJSON(body); err != nil {
					return nil, Errorf(InvalidArgument, "event on %s: not a CloudEvent: %v", name, err)
				}
				return dst, callEvent(ctx, app, topic, s.Handler, &e)
			}
		}
		return nil, Errorf(NotFound, "app %q does not subscribe to %s", app, name)
	}
	return nil, Errorf(InvalidArgument, "unknown call kind %d", kind)
}

// callMethod runs a method handler, its append form a when it has one, and
// turns a panic into an error. (A function of its own: the deferred
// recovery then keeps its results on the stack.)
func callMethod(ctx context.Context, app string, name []byte, a appendHandler, h Handler, body, dst []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, Errorf(Internal, "%s %s panicked: %v", app, name, p)
		}
	}()
	if a != nil {
		return a(ctx, dst, body)
	}
	if out, err = h(ctx, body); err != nil {
		return nil, err
	}
	return append(dst, out...), nil
}

func callEvent(ctx context.Context, app, topic string, h EventHandler, e *Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Errorf(Internal, "%s event %s panicked: %v", app, topic, p)
		}
	}()
	return h(ctx, e)
}

// guestEnv is Env on the host's imports.
type guestEnv struct {
	id       string
	logger   *slog.Logger
	loggerID string
}

func (e *guestEnv) AppID() string            { return e.id }
func (e *guestEnv) State(store string) State { return guestState{store: store} }
func (e *guestEnv) Publisher() Publisher     { return guestPublisher{} }
func (e *guestEnv) Invoker() Invoker         { return guestInvoker{} }
func (e *guestEnv) Config() Config           { return guestConfig{} }
func (e *guestEnv) Secrets() Secrets         { return guestSecrets{} }
func (e *guestEnv) Log(ctx context.Context) *slog.Logger {
	// The last logger is reused for the same request id: a handler that
	// logs twice, or calls Log per record, builds one.
	id := RequestID(ctx)
	if l := e.logger; l != nil && e.loggerID == id {
		return l
	}
	l := slog.New(guestLogHandler{requestID: id})
	e.logger, e.loggerID = l, id
	return l
}

type guestState struct{ store string }

func (s guestState) Get(ctx context.Context, key string) (Item, error) {
	out, err := hostRequest(hostStateGet, func(b []byte) []byte {
		return abi.AppendString(abi.AppendString(b, s.store), key)
	})
	if err != nil {
		return Item{}, err
	}
	r := abi.Reader{B: out}
	it := Item{Key: key, Value: r.Bytes(), ETag: r.String()}
	if r.Done() != nil {
		return Item{}, NewError(Internal, "state_get: malformed reply from host")
	}
	return it, nil
}

func (s guestState) getScratch(ctx context.Context, key string) (value []byte, etag string, buf []byte, err error) {
	req, reqOwned := guest.scratch.take()
	req = abi.AppendString(abi.AppendString(req, s.store), key)
	dst, owned := guest.reply.take()
	out, err := hostCallInto(hostStateGet, req, dst)
	guest.scratch.put(req, reqOwned)
	r := abi.Reader{B: out}
	if err == nil {
		value, etag = r.Bytes(), r.String()
		if r.Done() != nil {
			err = NewError(Internal, "state_get: malformed reply from host")
		}
	}
	if out == nil {
		out = dst
	}
	if err != nil {
		guest.reply.put(out, owned)
		return nil, "", nil, err
	}
	if !owned {
		return value, etag, nil, nil // a reply of its own
	}
	return value, etag, out, nil
}

func (s guestState) putScratch(buf []byte) {
	if buf != nil {
		guest.reply.put(buf, true)
	}
}

func (s guestState) BulkGet(ctx context.Context, keys []string) ([]Item, error) {
	out, err := hostRequest(hostStateBulkGet, func(b []byte) []byte {
		b = abi.AppendString(b, s.store)
		b = abi.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = abi.AppendString(b, k)
		}
		return b
	})
	if err != nil {
		return nil, err
	}
	r := abi.Reader{B: out}
	items := make([]Item, len(keys))
	for i, k := range keys {
		v, etag := r.Bytes(), r.String()
		items[i] = Item{Key: k, ETag: etag}
		if etag != "" {
			items[i].Value = v
		}
	}
	if r.Done() != nil {
		return nil, NewError(Internal, "state_bulk_get: malformed reply from host")
	}
	return items, nil
}

func appendOptions(b []byte, o WriteOptions) []byte {
	var flags uint64
	if o.IfAbsent {
		flags |= abi.FlagIfAbsent
	}
	return abi.AppendWriteOptions(b, o.ETag, abi.TTLMillis(o.TTL), flags)
}

func (s guestState) Set(ctx context.Context, key string, value []byte, o WriteOptions) error {
	_, err := hostRequest(hostStateSet, func(b []byte) []byte {
		b = abi.AppendString(abi.AppendString(b, s.store), key)
		return appendOptions(abi.AppendBytes(b, value), o)
	})
	return err
}

func (s guestState) Delete(ctx context.Context, key string, o WriteOptions) error {
	_, err := hostRequest(hostStateDelete, func(b []byte) []byte {
		return appendOptions(abi.AppendString(abi.AppendString(b, s.store), key), o)
	})
	return err
}

func (s guestState) Transact(ctx context.Context, ops []Op) error {
	_, err := hostRequest(hostStateTransact, func(b []byte) []byte {
		b = abi.AppendString(b, s.store)
		b = abi.AppendUvarint(b, uint64(len(ops)))
		for _, op := range ops {
			b = abi.AppendUvarint(b, uint64(op.Kind))
			b = abi.AppendString(b, op.Key)
			b = abi.AppendBytes(b, op.Value)
			b = appendOptions(b, op.Options())
		}
		return b
	})
	return err
}

type guestPublisher struct{}

func (guestPublisher) Publish(ctx context.Context, m Message) error {
	_, err := hostRequest(hostPublish, func(b []byte) []byte {
		b = abi.AppendString(b, m.PubSub)
		b = abi.AppendString(b, m.Topic)
		b = abi.AppendBytes(b, m.Data)
		b = abi.AppendString(b, m.ContentType)
		b = abi.AppendString(b, m.Type)
		b = abi.AppendUvarint(b, uint64(len(m.Metadata)))
		for k, v := range m.Metadata {
			b = abi.AppendString(abi.AppendString(b, k), v)
		}
		return appendTrace(ctx, b)
	})
	return err
}

// appendTrace appends ctx's trace context (ABI v1.1) to an invoke or
// publish request, once the host has shown it speaks v1.1 by sending one
// with a call: a v1.0 host would refuse the trailing fields.
func appendTrace(ctx context.Context, b []byte) []byte {
	if !guest.hostTraces {
		return b
	}
	if tc := Trace(ctx); tc.TraceParent != "" {
		return abi.AppendTrace(b, tc.TraceParent, tc.TraceState)
	}
	return b
}

type guestInvoker struct{}

func (guestInvoker) Invoke(ctx context.Context, appID, method string, data []byte) ([]byte, error) {
	return hostRequest(hostInvoke, func(b []byte) []byte {
		b = abi.AppendBytes(abi.AppendString(abi.AppendString(b, appID), method), data)
		return appendTrace(ctx, b)
	})
}

type guestConfig struct{}

func (guestConfig) Get(ctx context.Context, key string) (string, error) {
	out, err := hostCall(hostConfigGet, abi.AppendString(nil, key))
	return string(out), err
}

type guestSecrets struct{}

func (guestSecrets) Get(ctx context.Context, store, key string) (string, error) {
	out, err := hostCall(hostSecretGet, abi.AppendString(abi.AppendString(nil, store), key))
	return string(out), err
}

// guestLogHandler sends records to the host, which adds the app id and
// writes them to its own bounded log pipeline.
type guestLogHandler struct {
	requestID string
	attrs     []slog.Attr
	group     string
}

func (h guestLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h guestLogHandler) Handle(_ context.Context, r slog.Record) error {
	_, err := hostRequest(hostLog, func(b []byte) []byte {
		return appendLogRecord(b, h.requestID, h.group, h.attrs, r)
	})
	return err
}

func (h guestLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return h
}

func (h guestLogHandler) WithGroup(name string) slog.Handler {
	if h.group != "" {
		name = h.group + "." + name
	}
	h.group = name
	return h
}
