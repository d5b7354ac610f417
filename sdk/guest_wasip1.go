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
	var p unsafe.Pointer
	if len(req) > 0 {
		p = unsafe.Pointer(&req[0])
	}
	code, n := abi.UnpackResult(fn(p, uint32(len(req))))
	var out []byte
	if n > 0 {
		out = make([]byte, n)
		hostTakeResult(unsafe.Pointer(&out[0]))
	}
	if code != abi.OK {
		return nil, &Error{Code: code, Message: string(out)}
	}
	return out, nil
}

// guest is the module's one app instance. A module holds exactly one app and
// a host calls an instance from one goroutine at a time, so plain globals
// suffice; they also keep the buffers reachable for the GC.
var guest struct {
	router *Router
	env    *guestEnv
	req    []byte // the buffer roam_alloc hands out
	res    []byte // the frame of the last export call
	// hostTraces: a call carried a trace context, so the host reads one
	// back (ABI v1.1).
	hostTraces bool
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
	guest.res = append(append(guest.res[:0], byte(c)), payload...)
	return abi.PackFrame(uint32(uintptr(unsafe.Pointer(&guest.res[0]))), uint32(len(guest.res)))
}

func errorFrame(err error) uint64 {
	c := CodeOf(err)
	if c == OK {
		c = Internal
	}
	return frame(c, []byte(err.Error()))
}

//go:wasmexport roam_init
func exportInit() uint64 {
	apps := Apps()
	if len(apps) != 1 {
		ids := make([]string, len(apps))
		for i, a := range apps {
			ids[i] = a.ID()
		}
		return errorFrame(Errorf(FailedPrecondition, "a wasm module holds exactly one app; this one registers %d (%s)", len(apps), strings.Join(ids, ", ")))
	}
	a := apps[0]
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
	if guest.router == nil {
		return errorFrame(NewError(FailedPrecondition, "roam_handle before roam_init"))
	}
	if len(guest.req) == 0 || uint32(uintptr(unsafe.Pointer(&guest.req[0]))) != ptr || int(n) > len(guest.req) {
		return errorFrame(NewError(InvalidArgument, "roam_handle: request is not in the buffer roam_alloc returned"))
	}
	c, err := abi.ReadCall(guest.req[:n])
	if err != nil {
		return errorFrame(NewError(InvalidArgument, "roam_handle: malformed call"))
	}
	ctx := WithRequestID(context.Background(), c.RequestID)
	if c.TraceParent != "" {
		ctx = WithTrace(ctx, TraceContext{TraceParent: c.TraceParent, TraceState: c.TraceState})
		guest.hostTraces = true
	}
	if c.DeadlineMs > 0 {
		var cancel context.CancelFunc
		ctx, cancel = withLazyDeadline(ctx, time.UnixMilli(int64(c.DeadlineMs)))
		defer cancel()
	}
	out, err := dispatch(ctx, c)
	if err != nil {
		return errorFrame(err)
	}
	return frame(abi.OK, out)
}

func dispatch(ctx context.Context, c abi.Call) (out []byte, err error) {
	app := guest.router.AppID()
	switch c.Kind {
	case abi.KindMethod:
		h, ok := guest.router.Method(c.Name)
		if !ok {
			return nil, Errorf(NotFound, "app %q has no method %q", app, c.Name)
		}
		defer func() {
			if p := recover(); p != nil {
				out, err = nil, Errorf(Internal, "%s %s panicked: %v", app, c.Name, p)
			}
		}()
		return h(ctx, c.Body)
	case abi.KindEvent:
		pubsub, topic, _ := strings.Cut(c.Name, "/")
		for _, s := range guest.router.subs {
			if s.PubSub == pubsub && s.Topic == topic {
				var e Event
				if err := e.UnmarshalJSON(c.Body); err != nil {
					return nil, Errorf(InvalidArgument, "event on %s: not a CloudEvent: %v", c.Name, err)
				}
				defer func() {
					if p := recover(); p != nil {
						out, err = nil, Errorf(Internal, "%s event %s panicked: %v", app, topic, p)
					}
				}()
				return nil, s.Handler(ctx, &e)
			}
		}
		return nil, Errorf(NotFound, "app %q does not subscribe to %s", app, c.Name)
	}
	return nil, Errorf(InvalidArgument, "unknown call kind %d", c.Kind)
}

// guestEnv is Env on the host's imports.
type guestEnv struct {
	id string
}

func (e *guestEnv) AppID() string            { return e.id }
func (e *guestEnv) State(store string) State { return guestState{store: store} }
func (e *guestEnv) Publisher() Publisher     { return guestPublisher{} }
func (e *guestEnv) Invoker() Invoker         { return guestInvoker{} }
func (e *guestEnv) Config() Config           { return guestConfig{} }
func (e *guestEnv) Secrets() Secrets         { return guestSecrets{} }
func (e *guestEnv) Log(ctx context.Context) *slog.Logger {
	return slog.New(guestLogHandler{requestID: RequestID(ctx)})
}

type guestState struct{ store string }

func (s guestState) Get(ctx context.Context, key string) (Item, error) {
	out, err := hostCall(hostStateGet, abi.AppendString(abi.AppendString(nil, s.store), key))
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

func (s guestState) BulkGet(ctx context.Context, keys []string) ([]Item, error) {
	b := abi.AppendString(nil, s.store)
	b = abi.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = abi.AppendString(b, k)
	}
	out, err := hostCall(hostStateBulkGet, b)
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
	return abi.AppendWriteOptions(b, o.ETag, uint64(o.TTL/time.Millisecond), flags)
}

func (s guestState) Set(ctx context.Context, key string, value []byte, o WriteOptions) error {
	b := abi.AppendString(abi.AppendString(nil, s.store), key)
	b = appendOptions(abi.AppendBytes(b, value), o)
	_, err := hostCall(hostStateSet, b)
	return err
}

func (s guestState) Delete(ctx context.Context, key string, o WriteOptions) error {
	b := appendOptions(abi.AppendString(abi.AppendString(nil, s.store), key), o)
	_, err := hostCall(hostStateDelete, b)
	return err
}

func (s guestState) Transact(ctx context.Context, ops []Op) error {
	b := abi.AppendString(nil, s.store)
	b = abi.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		b = abi.AppendUvarint(b, uint64(op.Kind))
		b = abi.AppendString(b, op.Key)
		b = abi.AppendBytes(b, op.Value)
		b = appendOptions(b, op.Options())
	}
	_, err := hostCall(hostStateTransact, b)
	return err
}

type guestPublisher struct{}

func (guestPublisher) Publish(ctx context.Context, m Message) error {
	b := abi.AppendString(nil, m.PubSub)
	b = abi.AppendString(b, m.Topic)
	b = abi.AppendBytes(b, m.Data)
	b = abi.AppendString(b, m.ContentType)
	b = abi.AppendString(b, m.Type)
	b = abi.AppendUvarint(b, uint64(len(m.Metadata)))
	for k, v := range m.Metadata {
		b = abi.AppendString(abi.AppendString(b, k), v)
	}
	b = appendTrace(ctx, b)
	_, err := hostCall(hostPublish, b)
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
	b := abi.AppendBytes(abi.AppendString(abi.AppendString(nil, appID), method), data)
	return hostCall(hostInvoke, appendTrace(ctx, b))
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
	kv := make([]string, 0, 2*(len(h.attrs)+r.NumAttrs()+1))
	if h.requestID != "" {
		kv = append(kv, "request_id", h.requestID)
	}
	add := func(a slog.Attr) bool {
		k := a.Key
		if h.group != "" {
			k = h.group + "." + k
		}
		kv = append(kv, k, a.Value.Resolve().String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	lv := int64(r.Level)
	b := abi.AppendUvarint(nil, uint64(lv<<1^lv>>63))
	b = abi.AppendString(b, r.Message)
	b = abi.AppendUvarint(b, uint64(len(kv)/2))
	for _, s := range kv {
		b = abi.AppendString(b, s)
	}
	_, err := hostCall(hostLog, b)
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
