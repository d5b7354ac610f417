package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/tracectx"
	"github.com/roam-dev/roam/internal/wasmrt"
	"github.com/roam-dev/roam/sdk"
)

// Binding says what the imports of a module's instances reach. It is the
// edge counterpart of native.Setup's Env: the capabilities of an app come
// from Backend, scoped to the app id the module reports, and invocations go
// through Invoker so that apps co-hosted in this process (wasm or native) are
// called in-process.
type Binding struct {
	Backend backend.Backend
	// Invoker returns the invoker of the app with the given id. Pass
	// host.Server.Invoker. Nil means Backend.Invoker.
	Invoker func(caller string) sdk.Invoker
	// Logger receives the apps' log records and their stdout and stderr.
	Logger *slog.Logger
	// Tracing, when set, puts spans around the apps' state operations and
	// publications (pass host.Server.Tracing; invocations get theirs from
	// Invoker). Nil traces nothing.
	Tracing host.Tracer
}

// maxCachedStores bounds the per-app cache of state stores, whose names come
// from the guest: a module cannot grow the host's memory by inventing names.
const maxCachedStores = 64

// caps are one app's capabilities, resolved from a Binding once per app.
type caps struct {
	id     string
	b      backend.Backend
	inv    sdk.Invoker
	pub    sdk.Publisher
	cfg    sdk.Config
	sec    sdk.Secrets
	log    *slog.Logger
	tr     host.Tracer
	stores sync.Map // store name -> sdk.State
	nstore int
	mu     sync.Mutex
	// discovery marks the capabilities of the very first roam_init of a
	// module, before the host knows which app it holds; see Module.
	discovery bool
}

func (b Binding) bind(appID string) *caps {
	log := b.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &caps{id: appID, b: b.Backend, log: log.With("app", appID), tr: b.Tracing}
	if b.Backend != nil {
		c.cfg, c.sec = host.EnvConfig(b.Backend.Config(appID), nil), b.Backend.Secrets(appID)
		c.pub = host.TracedPublisher(b.Tracing, appID, b.Backend.Publisher(appID))
		c.inv = b.Backend.Invoker(appID)
	}
	if b.Invoker != nil {
		c.inv = b.Invoker(appID)
	}
	return c
}

// discoveryCaps serve the first roam_init of a module whose app id is not
// known yet. Config, secrets and logs are answered (no backend scopes them
// by app); state, publish and invoke are refused, because a wrong scope there
// would read or write another app's data.
func (b Binding) discoveryCaps() *caps {
	c := b.bind("")
	c.log = c.log.With("phase", "discovery")
	c.discovery = true
	return c
}

var errDiscovery = sdk.NewError(sdk.FailedPrecondition, "state, publish and invoke are not available while the host reads a module's manifest (its first roam_init); this instance is discarded and the app set up again with them")

func (c *caps) state(store string) (sdk.State, error) {
	if c.discovery || c.b == nil {
		return nil, errDiscovery
	}
	if s, ok := c.stores.Load(store); ok {
		return s.(sdk.State), nil
	}
	s := host.TracedState(c.tr, c.id, store, c.b.Name(), c.b.State(c.id, store))
	c.mu.Lock()
	if c.nstore < maxCachedStores {
		c.nstore++
		c.stores.Store(store, s)
	}
	c.mu.Unlock()
	return s, nil
}

// callState is what the host imports need during one export call: it
// travels in the context wazero hands to host functions. An instance owns
// one and reuses it, since it runs one call at a time.
type callState struct {
	ctx    context.Context // the request's: capabilities run under it
	caps   *caps
	module *Module // the module being called, for re-entrancy detection
	// overflow is whether the instance called is an extra one of a
	// re-entrant call: the calls it makes carry that their chain holds it.
	overflow bool
	// result is the reply take_result copies into the guest; it aliases
	// scratch.
	result  []byte
	scratch []byte
	imports int // operation imports other than log called during this call
}

// maxReply bounds an import's reply: the guest copies it into its linear
// memory, so nothing larger than the module's memory limit can be taken.
func (st *callState) maxReply() int {
	limit := uint64(DefaultMemoryLimitPages) << 16
	if st.module != nil {
		limit = uint64(st.module.opts.MemoryLimitPages) << 16
	}
	return int(min(limit, math.MaxUint32))
}

type stateKey struct{}

func stateOf(ctx context.Context) *callState {
	st, _ := ctx.Value(stateKey{}).(*callState)
	return st
}

// chain lists the modules a call went through, innermost first, so that a
// module invoking itself (directly or through others) is recognised and not
// deadlocked behind its own busy pool. overflow marks a link made from an
// extra instance of a re-entrant call (pool.overflowInstance), which bounds
// how many of them one chain may hold (reentries).
type chain struct {
	m        *Module
	overflow bool
	next     *chain
}

type chainKey struct{}

func withCaller(ctx context.Context, m *Module, overflow bool) context.Context {
	next, _ := ctx.Value(chainKey{}).(*chain)
	return context.WithValue(ctx, chainKey{}, &chain{m: m, overflow: overflow, next: next})
}

// reentries counts the extra instances of m that ctx's call chain holds.
func reentries(ctx context.Context, m *Module) int {
	n := 0
	c, _ := ctx.Value(chainKey{}).(*chain)
	for ; c != nil; c = c.next {
		if c.m == m && c.overflow {
			n++
		}
	}
	return n
}

func inChain(ctx context.Context, m *Module) bool {
	c, _ := ctx.Value(chainKey{}).(*chain)
	for ; c != nil; c = c.next {
		if c.m == m {
			return true
		}
	}
	return false
}

// handler runs one operation import on its decoded request. The request is
// the host's own copy; the reply may alias st.scratch.
type handler func(st *callState, req []byte) ([]byte, error)

// operation imports, in the order abi documents them.
var operations = []struct {
	name string
	fn   handler
}{
	{abi.ImportStateGet, opStateGet},
	{abi.ImportStateBulkGet, opStateBulkGet},
	{abi.ImportStateSet, opStateSet},
	{abi.ImportStateDelete, opStateDelete},
	{abi.ImportStateTransact, opStateTransact},
	{abi.ImportPublish, opPublish},
	{abi.ImportInvoke, opInvoke},
	{abi.ImportConfigGet, opConfigGet},
	{abi.ImportSecretGet, opSecretGet},
	{abi.ImportLog, opLog},
}

// Bounds on the element counts of one import request. A count cannot
// exceed the request's length (abi.Reader.Count), but each element costs the
// host more than its one byte of encoding; these keep a hostile guest from
// turning its memory into tens of times as much of the host's.
const (
	maxBatch    = 100_000 // keys of state_bulk_get, ops of state_transact
	maxMetadata = 1_000   // metadata entries of publish
)

// maxImportRequest bounds one import request. It is far above anything the
// SDK sends except large state values and invoke bodies, which the host's own
// request limits already cap.
const maxImportRequest = 64 << 20

// memory is the part of wasmrt.Memory the imports use, so that tests and the
// fuzz target can run them on a plain byte slice.
type guestMemory interface {
	Read(offset, n uint32) ([]byte, bool)
	Write(offset uint32, v []byte) bool
}

// trap is raised (as a panic, which wazero turns into an error returned
// from the export call) when a guest breaks the protocol so badly that the
// instance must not continue, such as handing take_result a pointer outside
// its memory.
type trap struct{ msg string }

func (t trap) Error() string { return t.msg }

// dispatch runs operation import op for the guest request at [ptr, ptr+n):
// it never panics; every failure is a code and a message for the guest.
func dispatch(ctx context.Context, mem guestMemory, op int, ptr, n uint32) (res uint64) {
	st := stateOf(ctx)
	if st == nil {
		// Called outside roam_init/roam_handle (from _initialize, say).
		return abi.PackResult(abi.FailedPrecondition, 0)
	}
	name := operations[op].name
	defer func() {
		if p := recover(); p != nil {
			st.caps.log.Error("host import panicked", "import", name, "panic", fmt.Sprint(p))
			res = st.fail(sdk.Errorf(sdk.Internal, "%s: host error: %v", name, p))
		}
	}()
	if name != abi.ImportLog {
		st.imports++
	}
	if n > maxImportRequest {
		return st.fail(sdk.Errorf(sdk.InvalidArgument, "%s: request of %d bytes exceeds the host's limit of %d", name, n, maxImportRequest))
	}
	var view []byte
	if n > 0 {
		var ok bool
		if view, ok = mem.Read(ptr, n); !ok {
			return st.fail(sdk.Errorf(sdk.InvalidArgument, "%s: request [%d, +%d) is outside the module's memory", name, ptr, n))
		}
	}
	// Copy: capabilities may keep what they are given, and the view points
	// into memory the guest reuses.
	req := bytes.Clone(view)
	out, err := operations[op].fn(st, req)
	if err != nil {
		return st.fail(err)
	}
	if len(out) > st.maxReply() {
		return st.fail(sdk.Errorf(sdk.Internal, "%s: reply of %d bytes exceeds the module's memory limit of %d bytes", name, len(out), st.maxReply()))
	}
	st.result = out
	return abi.PackResult(abi.OK, uint32(len(out)))
}

// fail stores err's message as the pending reply and returns its code.
func (st *callState) fail(err error) uint64 {
	c := sdk.CodeOf(err)
	if c == abi.OK || !c.Valid() {
		c = abi.Internal
	}
	st.result = append(st.scratch[:0], err.Error()...)
	st.scratch = st.result
	return abi.PackResult(c, uint32(len(st.result)))
}

// takeResult copies the pending reply to ptr. A pointer that does not hold
// the reply is a broken guest: it traps.
func takeResult(ctx context.Context, mem guestMemory, ptr uint32) error {
	st := stateOf(ctx)
	if st == nil {
		return nil
	}
	out := st.result
	st.result = nil
	if len(out) > 0 && !mem.Write(ptr, out) {
		return trap{fmt.Sprintf("take_result: [%d, +%d) is outside the module's memory", ptr, len(out))}
	}
	return nil
}

// newHostModule builds the roam_v1 import module.
func newHostModule(rt wasmrt.Runtime) wasmrt.HostModuleBuilder {
	b := rt.NewHostModuleBuilder(abi.ImportModule)
	i32, i64 := wasmrt.ValueTypeI32, wasmrt.ValueTypeI64
	for op := range operations {
		b.NewFunctionBuilder().
			WithGoModuleFunction(wasmrt.GoModuleFunc(func(ctx context.Context, mod wasmrt.Module, stack []uint64) {
				stack[0] = dispatch(ctx, mod.Memory(), op, uint32(stack[0]), uint32(stack[1]))
			}), []wasmrt.ValueType{i32, i32}, []wasmrt.ValueType{i64}).
			WithParameterNames("ptr", "len").
			Export(operations[op].name)
	}
	b.NewFunctionBuilder().
		WithGoModuleFunction(wasmrt.GoModuleFunc(func(ctx context.Context, mod wasmrt.Module, stack []uint64) {
			if err := takeResult(ctx, mod.Memory(), uint32(stack[0])); err != nil {
				panic(err) // wazero turns it into an error of the export call
			}
		}), []wasmrt.ValueType{i32}, nil).
		WithParameterNames("ptr").
		Export(abi.ImportTakeResult)
	return b
}

// importSignatures are the params and results of every roam_v1 import.
func importSignature(name string) (params, results []wasmrt.ValueType, ok bool) {
	if name == abi.ImportTakeResult {
		return []wasmrt.ValueType{wasmrt.ValueTypeI32}, nil, true
	}
	for _, o := range operations {
		if o.name == name {
			return []wasmrt.ValueType{wasmrt.ValueTypeI32, wasmrt.ValueTypeI32}, []wasmrt.ValueType{wasmrt.ValueTypeI64}, true
		}
	}
	return nil, nil, false
}

func malformed(op string) error {
	return sdk.NewError(sdk.InvalidArgument, op+": malformed request")
}

func opStateGet(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	store, key := r.String(), r.String()
	if r.Done() != nil {
		return nil, malformed(abi.ImportStateGet)
	}
	s, err := st.caps.state(store)
	if err != nil {
		return nil, err
	}
	it, err := s.Get(st.ctx, key)
	if err != nil {
		return nil, err
	}
	out := abi.AppendBytes(st.scratch[:0], it.Value)
	out = abi.AppendString(out, it.ETag)
	st.scratch = out
	return out, nil
}

func opStateBulkGet(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	store := r.String()
	n := r.Count()
	if n > maxBatch {
		return nil, sdk.Errorf(sdk.InvalidArgument, "state_bulk_get: %d keys exceed the host's limit of %d", n, maxBatch)
	}
	// Keys may repeat, and each copy of a value costs the host: the
	// backends copy every item they return, and the reply holds each. A
	// request of 200 KB naming one key 100,000 times read a 1 MiB value
	// into 100 GB. So the backend reads each key once (at[i] is keys[i]'s
	// index in uniq), and the reply stops at what the guest could take.
	keys := make([]string, 0, n)
	at := make([]int, 0, n)
	seen := make(map[string]int, n)
	for i := 0; i < n; i++ {
		k := r.String()
		j, ok := seen[k]
		if !ok {
			j = len(keys)
			seen[k] = j
			keys = append(keys, k)
		}
		at = append(at, j)
	}
	if r.Done() != nil {
		return nil, malformed(abi.ImportStateBulkGet)
	}
	s, err := st.caps.state(store)
	if err != nil {
		return nil, err
	}
	items, err := s.BulkGet(st.ctx, keys)
	if err != nil {
		return nil, err
	}
	if len(items) != len(keys) {
		return nil, sdk.Errorf(sdk.Internal, "state_bulk_get: the backend returned %d items for %d keys", len(items), len(keys))
	}
	limit := st.maxReply()
	out := st.scratch[:0]
	for _, j := range at {
		it := items[j]
		if len(out)+len(it.Value)+len(it.ETag)+2*binary.MaxVarintLen64 > limit {
			st.scratch = out[:0]
			return nil, sdk.Errorf(sdk.InvalidArgument, "state_bulk_get: the reply for %d keys exceeds %d bytes, the module's memory limit; read fewer keys at a time", len(at), limit)
		}
		out = abi.AppendBytes(out, it.Value)
		out = abi.AppendString(out, it.ETag)
	}
	st.scratch = out
	return out, nil
}

// readOptions decodes the WriteOptions encoding.
func readOptions(r *abi.Reader, op string) (sdk.WriteOptions, error) {
	etag, ttl, flags := r.String(), r.Uvarint(), r.Uvarint()
	if r.Err() != nil {
		return sdk.WriteOptions{}, malformed(op)
	}
	if flags&^abi.FlagIfAbsent != 0 {
		return sdk.WriteOptions{}, sdk.Errorf(sdk.InvalidArgument, "%s: unknown write flags %#x (a module built for a newer ABI?)", op, flags)
	}
	// The TTL is an int64 of milliseconds in two's complement: a negative
	// one goes on to the backend, which refuses it as it does natively.
	ms := int64(ttl)
	if ms > abi.MaxTTLMillis || ms < -abi.MaxTTLMillis {
		return sdk.WriteOptions{}, sdk.Errorf(sdk.InvalidArgument, "%s: ttl of %d ms is out of range", op, ms)
	}
	return sdk.WriteOptions{ETag: etag, TTL: time.Duration(ms) * time.Millisecond, IfAbsent: flags&abi.FlagIfAbsent != 0}, nil
}

func opStateSet(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	store, key, value := r.String(), r.String(), r.Bytes()
	o, err := readOptions(&r, abi.ImportStateSet)
	if err != nil {
		return nil, err
	}
	if r.Done() != nil {
		return nil, malformed(abi.ImportStateSet)
	}
	s, err := st.caps.state(store)
	if err != nil {
		return nil, err
	}
	return nil, s.Set(st.ctx, key, value, o)
}

func opStateDelete(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	store, key := r.String(), r.String()
	o, err := readOptions(&r, abi.ImportStateDelete)
	if err != nil {
		return nil, err
	}
	if r.Done() != nil {
		return nil, malformed(abi.ImportStateDelete)
	}
	s, err := st.caps.state(store)
	if err != nil {
		return nil, err
	}
	return nil, s.Delete(st.ctx, key, o)
}

func opStateTransact(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	store := r.String()
	n := r.Count()
	if n > maxBatch {
		return nil, sdk.Errorf(sdk.InvalidArgument, "state_transact: %d ops exceed the host's limit of %d", n, maxBatch)
	}
	ops := make([]sdk.Op, 0, n)
	for i := 0; i < n; i++ {
		kind := r.Uvarint()
		key, value := r.String(), r.Bytes()
		o, err := readOptions(&r, abi.ImportStateTransact)
		if err != nil {
			return nil, err
		}
		if kind != abi.OpSet && kind != abi.OpDelete {
			return nil, sdk.Errorf(sdk.InvalidArgument, "state_transact: unknown op kind %d", kind)
		}
		ops = append(ops, sdk.Op{Kind: sdk.OpKind(kind), Key: key, Value: value, ETag: o.ETag, TTL: o.TTL, IfAbsent: o.IfAbsent})
	}
	if r.Done() != nil {
		return nil, malformed(abi.ImportStateTransact)
	}
	s, err := st.caps.state(store)
	if err != nil {
		return nil, err
	}
	return nil, s.Transact(st.ctx, ops)
}

func opPublish(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	m := sdk.Message{PubSub: r.String(), Topic: r.String(), Data: r.Bytes(), ContentType: r.String(), Type: r.String()}
	if n := r.Count(); n > 0 {
		if n > maxMetadata {
			return nil, sdk.Errorf(sdk.InvalidArgument, "publish: %d metadata entries exceed the host's limit of %d", n, maxMetadata)
		}
		m.Metadata = make(map[string]string, n)
		for i := 0; i < n; i++ {
			k := r.String()
			m.Metadata[k] = r.String()
		}
	}
	tp, ts := abi.ReadTrace(&r)
	if r.Done() != nil {
		return nil, malformed(abi.ImportPublish)
	}
	if len(m.Data) == 0 {
		m.Data = nil
	}
	if st.caps.discovery || st.caps.pub == nil {
		return nil, errDiscovery
	}
	return nil, st.caps.pub.Publish(st.traced(tp, ts), m)
}

// traced returns the context of an invoke or publish: the call's, with
// the trace context the guest sent (ABI v1.1) as the parent of the spans
// the host starts for it. The guest's word is what counts, because it may
// publish from a goroutine of an earlier call; a traceparent that does not
// parse is ignored, leaving the call's own span as the parent.
func (st *callState) traced(tp, ts string) context.Context {
	if tp == "" || !tracectx.Valid(tp) {
		return st.ctx
	}
	return sdk.WithTrace(st.ctx, sdk.TraceContext{TraceParent: tp, TraceState: ts})
}

func opInvoke(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	app, method, data := r.String(), r.String(), r.Bytes()
	tp, ts := abi.ReadTrace(&r)
	if r.Done() != nil {
		return nil, malformed(abi.ImportInvoke)
	}
	if len(data) == 0 {
		data = nil
	}
	if st.caps.discovery || st.caps.inv == nil {
		return nil, errDiscovery
	}
	ctx := st.traced(tp, ts)
	if st.module != nil {
		ctx = withCaller(ctx, st.module, st.overflow)
	}
	return st.caps.inv.Invoke(ctx, app, method, data)
}

func opConfigGet(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	key := r.String()
	if r.Done() != nil {
		return nil, malformed(abi.ImportConfigGet)
	}
	if st.caps.cfg == nil {
		return nil, sdk.NewError(sdk.NotFound, "no configuration here")
	}
	v, err := st.caps.cfg.Get(st.ctx, key)
	if err != nil {
		return nil, err
	}
	st.scratch = append(st.scratch[:0], v...)
	return st.scratch, nil
}

func opSecretGet(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	store, key := r.String(), r.String()
	if r.Done() != nil {
		return nil, malformed(abi.ImportSecretGet)
	}
	if st.caps.sec == nil {
		return nil, sdk.NewError(sdk.NotFound, "no secrets here")
	}
	v, err := st.caps.sec.Get(st.ctx, store, key)
	if err != nil {
		return nil, err
	}
	st.scratch = append(st.scratch[:0], v...)
	return st.scratch, nil
}

// Bounds on one guest log record, so that a module cannot flood the log
// pipeline with a single call.
const (
	maxLogMessage = 8 << 10
	maxLogAttrs   = 64
	maxLogValue   = 4 << 10
)

func opLog(st *callState, req []byte) ([]byte, error) {
	r := abi.Reader{B: req}
	zz := r.Uvarint()
	level := int64(zz>>1) ^ -int64(zz&1)
	msg := r.Bytes()
	n := r.Count()
	if level < math.MinInt32 || level > math.MaxInt32 {
		return nil, sdk.Errorf(sdk.InvalidArgument, "log: level %d is out of range", level)
	}
	lv := slog.Level(level)
	enabled := st.caps.log.Enabled(st.ctx, lv)
	var attrs []slog.Attr
	if enabled {
		attrs = make([]slog.Attr, 0, min(n, maxLogAttrs))
	}
	for i := 0; i < n; i++ {
		k, v := r.Bytes(), r.Bytes()
		if enabled && i < maxLogAttrs {
			attrs = append(attrs, slog.String(truncate(k, maxLogValue), truncate(v, maxLogValue)))
		}
	}
	if r.Done() != nil {
		return nil, malformed(abi.ImportLog)
	}
	if enabled {
		if n > maxLogAttrs {
			attrs = append(attrs, slog.Int("attrs_dropped", n-maxLogAttrs))
		}
		attrs = append(attrs, host.TraceLogAttrs(st.ctx)...)
		st.caps.log.LogAttrs(st.ctx, lv, truncate(msg, maxLogMessage), attrs...)
	}
	return nil, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}
