package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/wasmrt"
	"github.com/roam-dev/roam/sdk"
)

// An audit of what a guest can do to the host through its exports, the
// roam_v1 imports and WASI. The guests here are assembled by hand (guest),
// so that each does exactly the one wrong thing under test.

// Instructions for the hand-assembled guests.
var (
	spinForever = []byte{0x03, 0x40, 0x0c, 0x00, 0x0b} // loop br 0 end
)

func uleb(b []byte, v uint64) []byte {
	return binary.AppendUvarint(b, v)
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func i32Const(v int32) []byte { return sleb([]byte{0x41}, int64(v)) }
func i64Const(v int64) []byte { return sleb([]byte{0x42}, v) }

// guestApp is the app id of the hand-assembled guests.
const guestApp = "guest"

// Where a guest keeps its frames in memory.
const (
	guestInitFrame  = 1024 // OK, then the manifest
	guestAppIDFrame = 2048 // OK, then the app id
	guestOKFrame    = 3072 // OK, nothing else (memory is zero)
	guestBuffer     = 4096 // what roam_alloc returns
)

// guest is a hand-assembled Roam module: its exports do what a well-behaved
// module does (a valid manifest, an empty OK reply to every call) unless a
// body is given. Bodies are instructions without the final end; roam_handle
// and roam_alloc have their parameters as locals 0 and 1, and locals is
// the number of extra i32 locals every function gets.
type guest struct {
	initialize, abiVersion, alloc, init, handle []byte
	// imports are roam_v1 operation imports, functions 0.. in this order,
	// then take_result if takeResult.
	imports    []string
	takeResult bool
	// wasi imports (module wasi_snapshot_preview1), each with its params
	// (all i32) and an i32 result, after the roam_v1 ones.
	wasi     []wasiImport
	locals   int
	memPages int
	// data are more data segments, by offset.
	data map[int32][]byte
}

type wasiImport struct {
	name   string
	params int
	// types, when set, are the parameters' types instead (params i32s).
	types []byte
}

func (g guest) wasm() []byte {
	const i32, i64 = 0x7f, 0x7e
	section := func(out []byte, id byte, body []byte) []byte {
		return append(uleb(append(out, id), uint64(len(body))), body...)
	}
	name := func(b []byte, s string) []byte { return append(uleb(b, uint64(len(s))), s...) }
	vec := func(items ...[]byte) []byte {
		b := uleb(nil, uint64(len(items)))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	types := [][]byte{
		{0x60, 0, 0},                // 0: () -> ()
		{0x60, 0, 1, i32},           // 1: () -> i32
		{0x60, 1, i32, 1, i32},      // 2: (i32) -> i32
		{0x60, 0, 1, i64},           // 3: () -> i64
		{0x60, 2, i32, i32, 1, i64}, // 4: (i32, i32) -> i64
		{0x60, 1, i32, 0},           // 5: (i32) -> ()
	}
	var imps [][]byte
	for _, im := range g.imports {
		imps = append(imps, append(name(name(nil, abi.ImportModule), im), 0, 4))
	}
	if g.takeResult {
		imps = append(imps, append(name(name(nil, abi.ImportModule), abi.ImportTakeResult), 0, 5))
	}
	for _, w := range g.wasi {
		pt := w.types
		if pt == nil {
			pt = bytes.Repeat([]byte{i32}, w.params)
		}
		t := append(append([]byte{0x60}, uleb(nil, uint64(len(pt)))...), pt...)
		t = append(t, 1, i32)
		types = append(types, t)
		imps = append(imps, append(name(name(nil, "wasi_snapshot_preview1"), w.name), 0, byte(len(types)-1)))
	}
	nimp := len(imps)

	man := abi.AppendManifest([]byte{0}, abi.Manifest{AppID: guestApp, Methods: []string{"Call"}})
	appID := append([]byte{0}, guestApp...)
	or := func(body, def []byte) []byte {
		if body != nil {
			return body
		}
		return def
	}
	funcs := []struct {
		export string
		typ    byte
		body   []byte
	}{
		{"_initialize", 0, g.initialize},
		{abi.ExportABIVersion, 1, or(g.abiVersion, i32Const(abi.VersionMajor<<16|abi.VersionMinor))},
		{abi.ExportAlloc, 2, or(g.alloc, i32Const(guestBuffer))},
		{abi.ExportInit, 3, or(g.init, i64Const(int64(abi.PackFrame(guestInitFrame, uint32(len(man))))))},
		{abi.ExportHandle, 4, or(g.handle, i64Const(int64(abi.PackFrame(guestOKFrame, 1))))},
		{abi.ExportAppID, 3, i64Const(int64(abi.PackFrame(guestAppIDFrame, uint32(len(appID)))))},
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = section(out, 1, vec(types...))
	if nimp > 0 {
		out = section(out, 2, vec(imps...))
	}
	var fidx, exps, codes [][]byte
	for i, f := range funcs {
		fidx = append(fidx, []byte{f.typ})
		exps = append(exps, uleb(append(name(nil, f.export), 0), uint64(nimp+i)))
		body := []byte{0}
		if g.locals > 0 {
			body = append(uleb([]byte{1}, uint64(g.locals)), i32)
		}
		body = append(append(body, f.body...), 0x0b)
		codes = append(codes, append(uleb(nil, uint64(len(body))), body...))
	}
	out = section(out, 3, vec(fidx...))
	pages := max(g.memPages, 1)
	out = section(out, 5, vec(uleb([]byte{0}, uint64(pages))))
	exps = append(exps, append(name(nil, "memory"), 2, 0))
	out = section(out, 7, vec(exps...))
	out = section(out, 10, vec(codes...))
	seg := func(off int32, b []byte) []byte {
		s := append(append([]byte{0}, i32Const(off)...), 0x0b)
		return append(uleb(s, uint64(len(b))), b...)
	}
	segs := [][]byte{seg(guestInitFrame, man), seg(guestAppIDFrame, appID)}
	for off, b := range g.data {
		segs = append(segs, seg(off, b))
	}
	return section(out, 11, vec(segs...))
}

// loadGuest loads g, failing the test if the load does not end within a
// minute (the load's context is then cancelled, so that the test ends).
func loadGuest(t *testing.T, rt *Runtime, g guest, o ModuleOptions, b Binding) (*Module, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		m   *Module
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := rt.Load(ctx, g.wasm(), o, b)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		if r.m != nil {
			t.Cleanup(func() { r.m.Close(context.Background()) })
		}
		return r.m, r.err
	case <-time.After(time.Minute):
		cancel()
		<-done
		t.Fatal("the load did not end within a minute")
		return nil, nil
	}
}

// TestGuestSanity: the hand-assembled guest loads and answers a call.
func TestGuestSanity(t *testing.T) {
	rt := newRuntime(t, nil)
	m, err := loadGuest(t, rt, guest{}, ModuleOptions{PoolSize: 1, Name: "g.wasm"}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := m.Call(context.Background(), "Call", nil); err != nil || len(out) != 0 {
		t.Fatalf("Call: %q %v", out, err)
	}
}

// TestLoopingABIVersion: roam_abi_version runs after the instance is set
// up; one that loops must fail the load at the InitTimeout like any other
// export the load calls, not hold the load (and a CPU) for ever.
func TestLoopingABIVersion(t *testing.T) {
	rt := newRuntime(t, nil)
	const timeout = 300 * time.Millisecond
	start := time.Now()
	g := guest{abiVersion: append(spinForever, i32Const(0)...)}
	_, err := loadGuest(t, rt, g, ModuleOptions{PoolSize: 1, Name: "g.wasm", InitTimeout: timeout}, Binding{})
	if err == nil || !strings.Contains(err.Error(), "g.wasm: roam_abi_version: interrupted") {
		t.Fatalf("load: %v, want roam_abi_version interrupted", err)
	}
	if took := time.Since(start); took > timeout+10*time.Second {
		t.Errorf("the load failed after %s; want soon after its %s InitTimeout", took, timeout)
	}
}

// call is m.Call with a deadline.
func callGuest(m *Module, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return m.Call(ctx, "Call", nil)
}

// TestGuestBadFrames: a guest whose roam_handle or roam_alloc answers with
// a frame the host cannot read fails that call with Internal; the host
// keeps serving, with a fresh instance where the guest broke the ABI.
func TestGuestBadFrames(t *testing.T) {
	rt := newRuntime(t, nil)
	for _, c := range []struct {
		name string
		g    guest
		want string
	}{
		{"frame outside memory", guest{handle: i64Const(int64(abi.PackFrame(0xffffff00, 16)))}, "roam_handle returned a frame outside its memory"},
		{"frame of 4 GiB", guest{handle: i64Const(int64(abi.PackFrame(guestOKFrame, 0xffffffff)))}, "exceeds the module's limit"},
		{"empty frame", guest{handle: i64Const(0)}, "roam_handle returned a frame outside its memory"},
		{"frame past the end", guest{handle: i64Const(int64(abi.PackFrame(65535, 2)))}, "roam_handle returned a frame outside its memory"},
		{"alloc outside memory", guest{alloc: i32Const(-16)}, "outside its memory"},
		{"alloc of null", guest{alloc: i32Const(0)}, "outside its memory"},
		{"take_result outside memory", guest{
			imports: []string{abi.ImportConfigGet}, takeResult: true,
			// config_get(0, 0): malformed, so a reply (the error) is pending.
			handle: concat(i32Const(0), i32Const(0), []byte{0x10, 0, 0x1a}, i32Const(-8), []byte{0x10, 1},
				i64Const(int64(abi.PackFrame(guestOKFrame, 1)))),
		}, "the module broke the ABI: take_result"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := loadGuest(t, rt, c.g, ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool}, Binding{})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				_, err := callGuest(m, 10*time.Second)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("call: %v, want an error containing %q", err, c.want)
				}
			}
			waitFor(t, "the pool to settle", 10*time.Second, func() bool { s := m.Stats(); return s.Idle == 1 && s.Busy == 0 })
		})
	}
}

func concat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// sleepFor is a guest's WASI sleep of ns nanoseconds: poll_oneoff on one
// relative clock subscription, written at 8192, its event at 8448. The
// poll_oneoff import is the function at index fn.
func sleepFor(fn byte, ns int64) []byte {
	return concat(
		i32Const(8192+24), i64Const(ns), []byte{0x37, 0x03, 0x00}, // timeout: i64.store
		i32Const(8192), i32Const(8448), i32Const(1), i32Const(8512), []byte{0x10, fn, 0x1a},
	)
}

var pollOneoff = wasiImport{name: "poll_oneoff", params: 4}

// TestGuestSleepsPastDeadline: a guest asleep in WASI's poll_oneoff for
// centuries is woken at its deadline and stopped, wherever it sleeps: in a
// call, in its set-up, in roam_abi_version.
func TestGuestSleepsPastDeadline(t *testing.T) {
	rt := newRuntime(t, nil)
	const forever = 1 << 62
	// It sleeps again when woken, as a Go guest's scheduler does while its
	// timer is not due.
	sleepLoop := concat([]byte{0x03, 0x40}, sleepFor(0, forever), []byte{0x0c, 0x00, 0x0b})
	m, err := loadGuest(t, rt, guest{wasi: []wasiImport{pollOneoff}, handle: concat(sleepLoop, i64Const(int64(abi.PackFrame(guestOKFrame, 1))))},
		ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := callGuest(m, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("call: %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a guest asleep was stopped after %s", took)
	}
	for _, g := range []guest{
		{wasi: []wasiImport{pollOneoff}, initialize: sleepLoop},
		{wasi: []wasiImport{pollOneoff}, init: concat(sleepLoop, i64Const(0))},
		{wasi: []wasiImport{pollOneoff}, abiVersion: concat(sleepLoop, i32Const(abi.VersionMajor<<16))},
	} {
		start := time.Now()
		if _, err := loadGuest(t, rt, g, ModuleOptions{PoolSize: 1, InitTimeout: 300 * time.Millisecond}, Binding{}); err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("load: %v, want interrupted", err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("a guest asleep in its set-up was stopped after %s", took)
		}
	}
}

// nestedInvoke is the body of a conformance Invoke that invokes itself
// depth times, then Echo.
func nestedInvoke(depth int) string {
	body := `{"app":"conformance","method":"Echo","body":{"depth":0}}`
	for range depth - 1 {
		body = `{"app":"conformance","method":"Invoke","body":` + body + `}`
	}
	return body
}

// TestDeepSelfInvoke: an app that invokes itself deeper than its pool
// (each level holds an instance) gets a clear Unavailable as soon as its
// re-entrant instances run out, not a deadlock until the deadline, and
// the pool is whole afterwards.
func TestDeepSelfInvoke(t *testing.T) {
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2, MaxPoolSize: 4}, host.Options{RequestTimeout: 20 * time.Second}, confWasm)
	m := es.mods["conformance"]
	waitFor(t, "the pool to fill", 10*time.Second, func() bool { return m.Stats().Idle == 2 })
	if status, body := post(t, es.url, "conformance", "Invoke", nestedInvoke(3)); status != 200 || body != `{"depth":0}` {
		t.Fatalf("3 levels: %d %s", status, body)
	}
	start := time.Now()
	status, body := post(t, es.url, "conformance", "Invoke", nestedInvoke(40))
	if status != 503 || !strings.Contains(body, "too many re-entrant calls") {
		t.Fatalf("40 levels: %d %.300s, want 503 naming re-entrant calls", status, body)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("40 levels failed after %s: it waited", took)
	}
	waitFor(t, "the pool to settle", 10*time.Second, func() bool { s := m.Stats(); return s.Busy == 0 && s.Idle == 2 })
	if n := m.cur.Load().overflow.Load(); n != 0 {
		t.Errorf("%d re-entrant instances still counted", n)
	}
}

// TestMutualInvokeForever: two apps that invoke each other for ever (the
// guest invokes conformance's Invoke, which invokes the guest again) end
// with Unavailable once either runs out of re-entrant instances, well
// before the deadline, and leave both pools whole.
func TestMutualInvokeForever(t *testing.T) {
	req := abi.AppendString(nil, "conformance")
	req = abi.AppendString(req, "Invoke")
	req = abi.AppendBytes(req, []byte(`{"app":"guest","method":"Call"}`))
	const at, status = 8192, 3100
	g := guest{
		imports: []string{abi.ImportInvoke},
		// roam_handle: the code of invoke(req) is its reply's status.
		handle: concat(i32Const(status), i32Const(at), i32Const(int32(len(req))), []byte{0x10, 0},
			i64Const(32), []byte{0x88, 0xa7, 0x3a, 0x00, 0x00}, // i64.shr_u; i32.wrap_i64; i32.store8
			i64Const(int64(abi.PackFrame(status, 1)))),
		data: map[int32][]byte{at: req},
	}
	es := newEdgeServer(t, ModuleOptions{PoolSize: 2, MaxPoolSize: 4}, host.Options{RequestTimeout: 30 * time.Second}, confWasm, g.wasm())
	start := time.Now()
	code, body := post(t, es.url, "guest", "Call", "{}")
	if code != 503 {
		t.Fatalf("mutual recursion: %d %.300s, want 503", code, body)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("mutual recursion failed after %s: it waited", took)
	}
	for _, id := range []string{"guest", "conformance"} {
		m := es.mods[id]
		waitFor(t, id+"'s pool to settle", 10*time.Second, func() bool { s := m.Stats(); return s.Busy == 0 && s.Queued == 0 })
		if n := m.cur.Load().overflow.Load(); n != 0 {
			t.Errorf("%s: %d re-entrant instances still counted", id, n)
		}
	}
}

// TestPoolBudgetCountsMemoryInCalls: the pool's memory budget counts the
// memory its instances hold now, not as of their last call. A guest that
// grows to its memory limit in every call (and whose instances are
// recycled after it, so never counted at the end of one) made the pool grow
// to MaxPoolSize instances at the limit each, whatever PoolMemoryBytes.
func TestPoolBudgetCountsMemoryInCalls(t *testing.T) {
	req := abi.AppendString(nil, "elsewhere")
	req = abi.AppendString(req, "Wait")
	req = abi.AppendBytes(req, nil)
	const at, limitPages = 8192, 128 // 8 MiB
	g := guest{
		imports: []string{abi.ImportInvoke},
		// roam_handle: grow memory to the limit, then invoke (which waits
		// in the test's invoker).
		handle: concat(i32Const(limitPages-1), []byte{0x40, 0x00, 0x1a},
			i32Const(at), i32Const(int32(len(req))), []byte{0x10, 0, 0x1a},
			i64Const(int64(abi.PackFrame(guestOKFrame, 1)))),
		data: map[int32][]byte{at: req},
	}
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	b := Binding{Invoker: func(string) sdk.Invoker {
		return invokerFunc(func(ctx context.Context, app, method string, data []byte) ([]byte, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		})
	}}
	rt := newRuntime(t, nil)
	m, err := loadGuest(t, rt, g, ModuleOptions{PoolSize: 1, MaxPoolSize: 8, MemoryLimitPages: limitPages,
		PoolMemoryBytes: 2 * limitPages << 16, RecycleBytes: 1 << 20}, b)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	call := func() {
		go func() {
			_, err := callGuest(m, time.Minute)
			errs <- err
		}()
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not reach the invoker", what)
		}
	}
	call()
	wait("the first call")
	call() // queues: the pool grows by one, within the budget
	wait("the second call")
	call() // queues: two instances at 8 MiB fill the budget of 16 MiB
	// It stays queued: the pool does not grow for it.
	grew := func() bool {
		select {
		case <-entered:
			t.Errorf("the pool grew to %d instances at 8 MiB each, past its budget of 16 MiB", m.Stats().PoolSize)
			return true
		default:
			return false
		}
	}
	waitFor(t, "the third call to queue", 30*time.Second, func() bool { return grew() || m.Stats().Queued == 1 })
	// A queued call starts any growth before it waits (growLocked, under
	// the pool's lock): none is on its way.
	p := m.cur.Load()
	p.mu.Lock()
	n, live, growing := p.n, p.live, p.growing
	p.mu.Unlock()
	if n != 2 || live != 2 || growing != 0 {
		t.Errorf("the pool holds %d instances, %d in all with those on their way (%d growing); want 2, none coming", live, n, growing)
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// countingState records the keys of each BulkGet.
type countingState struct {
	sdk.State
	bulk []int
}

func (s *countingState) BulkGet(ctx context.Context, keys []string) ([]sdk.Item, error) {
	s.bulk = append(s.bulk, len(keys))
	return s.State.BulkGet(ctx, keys)
}

// TestBulkGetRepeatedKeys: state_bulk_get may name a key many times, and
// every copy of its value cost the host (the backends copy each item they
// return, and the host copied each into the reply): 100,000 copies of one
// key, a request of 200 KB, read a 1 MiB value into 100 GB of the host's
// memory, which no guest could even take. The backend now reads each key
// once, and a reply larger than the guest's memory limit is refused.
func TestBulkGetRepeatedKeys(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	c := Binding{Backend: b}.bind("t")
	cs := &countingState{State: b.State("t", "s")}
	c.stores.Store("s", cs)
	st := &callState{ctx: context.Background(), caps: c}
	value := bytes.Repeat([]byte("v"), 1<<10)
	if err := cs.Set(st.ctx, "k", value, sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	bulk := func(keys ...string) ([]byte, error) {
		req := abi.AppendString(nil, "s")
		req = abi.AppendUvarint(req, uint64(len(keys)))
		for _, k := range keys {
			req = abi.AppendString(req, k)
		}
		return opStateBulkGet(st, req)
	}

	// Repeats are answered in place, each with the value.
	out, err := bulk("k", "missing", "k")
	r := abi.Reader{B: out}
	v1, e1, v2, e2, v3, e3 := r.Bytes(), r.String(), r.Bytes(), r.String(), r.Bytes(), r.String()
	if err != nil || r.Done() != nil || !bytes.Equal(v1, value) || e1 == "" || len(v2) != 0 || e2 != "" || !bytes.Equal(v3, value) || e3 != e1 {
		t.Fatalf("bulk get with a repeated key: %v", err)
	}
	if len(cs.bulk) != 1 || cs.bulk[0] != 2 {
		t.Errorf("the backend read %v keys, want [2]: each key once", cs.bulk)
	}

	// 100,000 copies: 100 MB of reply for a guest of at most 64 MiB.
	keys := make([]string, maxBatch)
	for i := range keys {
		keys[i] = "k"
	}
	cs.bulk = nil
	out, err = bulk(keys...)
	if !sdk.IsCode(err, sdk.InvalidArgument) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("bulk get of %d copies of a %d-byte value: %d bytes, %v; want InvalidArgument", len(keys), len(value), len(out), err)
	}
	if len(cs.bulk) != 1 || cs.bulk[0] != 1 {
		t.Errorf("the backend read %v keys, want [1]", cs.bulk)
	}
}

// TestFreshStackAfterLongCall: after a call that ran long enough to have
// grown wazero's stack much, the instance's roam_handle is fetched afresh,
// so that the stack it grew (kept by wazero with the function: 121 MB after
// a recursion 4 million deep) is let go; a short call keeps it.
func TestFreshStackAfterLongCall(t *testing.T) {
	ctx := context.Background()
	m, err := newRuntime(t, nil).Load(ctx, confWasm, ModuleOptions{PoolSize: 1, MaxPoolSize: 1}, Binding{})
	if err != nil {
		t.Fatal(err)
	}
	handle := func() wasmrt.Function {
		p := m.cur.Load()
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.free) != 1 {
			t.Fatalf("%d free instances, want 1", len(p.free))
		}
		return p.free[0].handle
	}
	before := handle()
	if _, err := m.Call(ctx, "Echo", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if handle() != before {
		t.Error("a short call replaced roam_handle")
	}
	if _, err := m.Call(ctx, "Sleep", []byte(`{"ms":20}`)); err != nil {
		t.Fatal(err)
	}
	after := handle()
	if after == before {
		t.Error("roam_handle was kept after a 20 ms call")
	}
	if out, err := m.Call(ctx, "Echo", []byte(`{"ok":1}`)); err != nil || string(out) != `{"ok":1}` {
		t.Fatalf("Echo on the fresh function: %q %v", out, err)
	}
}

// TestCloseStopsReentrantSetUp: Runtime.Close stops the set-up of the extra
// instance a re-entrant call is waiting for, as it stops the calls in
// flight, instead of waiting out its InitTimeout. The guest invokes itself;
// its _initialize loops for ever once the wall clock passes a moment after
// its first instance was made, so only the re-entrant instance's does.
func TestCloseStopsReentrantSetUp(t *testing.T) {
	req := abi.AppendString(nil, guestApp)
	req = abi.AppendString(req, "Call")
	req = abi.AppendBytes(req, []byte(`{}`))
	const at, status, clock = 8192, 3100, 512
	after := time.Now().Add(time.Second)
	g := guest{
		imports: []string{abi.ImportInvoke},
		// clock_time_get(id i32, precision i64, out i32) -> errno
		wasi: []wasiImport{{name: "clock_time_get", types: []byte{0x7f, 0x7e, 0x7f}}},
		initialize: concat(i32Const(0), i64Const(0), i32Const(clock), []byte{0x10, 1, 0x1a},
			i32Const(clock), []byte{0x29, 0x03, 0x00}, // i64.load
			i64Const(after.UnixNano()), []byte{0x56}, // i64.gt_u
			[]byte{0x04, 0x40}, spinForever, []byte{0x0b}),
		handle: concat(i32Const(status), i32Const(at), i32Const(int32(len(req))), []byte{0x10, 0},
			i64Const(32), []byte{0x88, 0xa7, 0x3a, 0x00, 0x00}, // i64.shr_u; i32.wrap_i64; i32.store8
			i64Const(int64(abi.PackFrame(status, 1)))),
		data: map[int32][]byte{at: req},
	}
	rt, err := NewRuntime(context.Background(), RuntimeOptions{CacheDir: cacheDir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := memory.New(memory.Options{})
	srv := host.NewServer(b, host.Options{Logger: testLogger(t)})
	m, err := rt.Load(context.Background(), g.wasm(),
		ModuleOptions{PoolSize: 1, MaxPoolSize: FixedPool, InitTimeout: 2 * time.Minute},
		Binding{Backend: b, Invoker: srv.Invoker, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Add(m); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(after.Add(50 * time.Millisecond)))
	called := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		_, err := m.Call(ctx, "Call", nil)
		called <- err
	}()
	waitFor(t, "the re-entrant instance's set-up", 10*time.Second, func() bool { return m.cur.Load().overflow.Load() == 1 })
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Close took %s: it waited for the set-up", took)
	}
	// The guest replies with the re-entrant invoke's status code.
	select {
	case err := <-called:
		if sdk.CodeOf(err) != sdk.Unavailable {
			t.Errorf("call: %v, want Unavailable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end after Close")
	}
}
