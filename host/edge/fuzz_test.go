package edge

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/roam-dev/roam/abi"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// fakeMemory is a guest's linear memory for the import handlers.
type fakeMemory []byte

func (m fakeMemory) Read(off, n uint32) ([]byte, bool) {
	if uint64(off)+uint64(n) > uint64(len(m)) {
		return nil, false
	}
	return m[off : off+n : off+n], true
}

func (m fakeMemory) Write(off uint32, v []byte) bool {
	if uint64(off)+uint64(len(v)) > uint64(len(m)) {
		return false
	}
	copy(m[off:], v)
	return true
}

type echoInvoker struct{}

func (echoInvoker) Invoke(ctx context.Context, app, method string, data []byte) ([]byte, error) {
	if app == "" {
		return nil, sdk.NewError(sdk.NotFound, "no app")
	}
	return data, nil
}

// fuzzSeeds are well-formed requests of every operation import, so that the
// fuzzer starts from the shapes the SDK sends.
func fuzzSeeds() [][]byte {
	s := func(b []byte, v ...string) []byte {
		for _, x := range v {
			b = abi.AppendString(b, x)
		}
		return b
	}
	opts := func(b []byte, etag string, ttl, flags uint64) []byte {
		return abi.AppendWriteOptions(b, etag, ttl, flags)
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	seeds := make([][]byte, len(operations), len(operations)+2)
	for i, o := range operations {
		var b []byte
		switch o.name {
		case abi.ImportStateGet:
			b = s(nil, "statestore", "k")
		case abi.ImportStateBulkGet:
			b = s(abi.AppendUvarint(s(nil, "statestore"), 2), "k", "absent")
		case abi.ImportStateSet:
			b = opts(abi.AppendBytes(s(nil, "statestore", "k"), []byte(`{"v":1}`)), "", 1000, abi.FlagIfAbsent)
		case abi.ImportStateDelete:
			b = opts(s(nil, "statestore", "k"), "1", 0, 0)
		case abi.ImportStateTransact:
			b = abi.AppendUvarint(s(nil, "statestore"), 2)
			b = opts(abi.AppendBytes(s(abi.AppendUvarint(b, abi.OpSet), "a"), []byte("1")), "", 0, 0)
			b = opts(abi.AppendBytes(s(abi.AppendUvarint(b, abi.OpDelete), "b"), nil), "", 0, 0)
		case abi.ImportPublish:
			b = abi.AppendBytes(s(nil, "pubsub", "topic"), []byte(`{}`))
			b = abi.AppendUvarint(s(b, "application/json", ""), 1)
			b = s(b, "k", "v")
		case abi.ImportInvoke:
			b = abi.AppendBytes(s(nil, "other", "Echo"), []byte(`{"x":1}`))
		case abi.ImportConfigGet:
			b = s(nil, "key")
		case abi.ImportSecretGet:
			b = s(nil, "store", "key")
		case abi.ImportLog:
			b = abi.AppendUvarint(s(abi.AppendUvarint(nil, 8), "hello"), 1) // level 4 (warn), zigzag-encoded
			b = s(b, "request_id", "r1")
		}
		seeds[i] = b
		// ABI v1.1: invoke and publish with the trace context appended.
		if o.name == abi.ImportInvoke || o.name == abi.ImportPublish {
			seeds = append(seeds, abi.AppendTrace(append([]byte(nil), b...), tp, "k=v"))
		}
	}
	return seeds
}

func opIndex(name string) int {
	for i, o := range operations {
		if o.name == name {
			return i
		}
	}
	panic(name)
}

// FuzzHostImports feeds arbitrary bytes to the host side of every operation
// import, decoded from guest memory at an arbitrary pointer and length, then
// has take_result write the reply at an arbitrary pointer. The host must
// answer with a code, never panic, and never write outside the memory.
//
//	go test ./host/edge -run='^$' -fuzz=FuzzHostImports -fuzztime=20s
func FuzzHostImports(f *testing.F) {
	for i, seed := range fuzzSeeds() {
		op := i
		if i >= len(operations) { // a v1.1 seed: find its import
			r := abi.Reader{B: seed}
			_ = r.String() // the app, or the pubsub
			if r.String() == "Echo" {
				op = opIndex(abi.ImportInvoke)
			} else {
				op = opIndex(abi.ImportPublish)
			}
		}
		f.Add(uint8(op), seed, uint32(0), uint32(len(seed)), uint32(4096))
	}
	f.Add(uint8(0), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, uint32(1<<31), uint32(1<<31), uint32(1<<32-1))

	b := memory.New(memory.Options{})
	defer b.Close()
	c := Binding{Backend: b, Invoker: func(string) sdk.Invoker { return echoInvoker{} }, Logger: slog.New(slog.DiscardHandler)}.bind("fuzz")

	f.Fuzz(func(t *testing.T, op uint8, req []byte, off, n, resPtr uint32) {
		i := int(op) % len(operations)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st := &callState{ctx: ctx, caps: c}

		// The handler itself, on the request as the host would copy it:
		// no recover here, so a panic fails the fuzz run.
		if reply, err := operations[i].fn(st, append([]byte(nil), req...)); err == nil && len(reply) > maxImportRequest*2 {
			t.Fatalf("%s: reply of %d bytes", operations[i].name, len(reply))
		}

		// The whole import: the request at [off, off+n) of a memory that
		// holds req at offset 16.
		mem := make(fakeMemory, 16+len(req)+64)
		copy(mem[16:], req)
		sctx := context.WithValue(ctx, stateKey{}, st)
		st.imports = 0
		res := dispatch(sctx, mem, i, off, n)
		code, length := abi.UnpackResult(res)
		if !code.Valid() {
			t.Fatalf("%s: invalid code %d", operations[i].name, code)
		}
		if int(length) != len(st.result) {
			t.Fatalf("%s: result length %d, pending reply %d bytes", operations[i].name, length, len(st.result))
		}
		if code != abi.OK && length == 0 {
			t.Fatalf("%s: code %s without a message", operations[i].name, code)
		}
		pending := len(st.result)
		err := takeResult(sctx, mem, resPtr)
		fits := uint64(resPtr)+uint64(pending) <= uint64(len(mem))
		if pending > 0 && fits != (err == nil) {
			t.Fatalf("take_result at %d of %d bytes into %d: %v", resPtr, pending, len(mem), err)
		}
		if st.result != nil {
			t.Fatal("take_result left the reply pending")
		}
		// The same request at the start of memory, through dispatch, as
		// the SDK would send it.
		mem2 := make(fakeMemory, len(req)+8)
		copy(mem2, req)
		dispatch(sctx, mem2, i, 0, uint32(len(req)))
	})
}

// TestImportsOutsideACall: an import called when no call is in progress (a
// module's package initialisation, say) is refused, not a crash.
func TestImportsOutsideACall(t *testing.T) {
	mem := make(fakeMemory, 64)
	for i := range operations {
		if c, _ := abi.UnpackResult(dispatch(context.Background(), mem, i, 0, 8)); c != abi.FailedPrecondition {
			t.Errorf("%s outside a call: %s", operations[i].name, c)
		}
	}
	if err := takeResult(context.Background(), mem, 1<<30); err != nil {
		t.Errorf("take_result outside a call: %v", err)
	}
}

// TestImportsDecode: each import decodes what the SDK encodes, and replies
// as the SDK decodes.
func TestImportsDecode(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	c := Binding{Backend: b, Invoker: func(string) sdk.Invoker { return echoInvoker{} }}.bind("t")
	st := &callState{ctx: context.Background(), caps: c}
	seeds := fuzzSeeds()
	run := func(name string) ([]byte, error) {
		for i, o := range operations {
			if o.name == name {
				return o.fn(st, seeds[i])
			}
		}
		t.Fatalf("no import %s", name)
		return nil, nil
	}
	if _, err := run(abi.ImportStateSet); err != nil {
		t.Fatal(err)
	}
	out, err := run(abi.ImportStateGet)
	r := abi.Reader{B: out}
	if v, etag := r.Bytes(), r.String(); err != nil || r.Done() != nil || string(v) != `{"v":1}` || etag == "" {
		t.Fatalf("state_get: %q %v", out, err)
	}
	out, err = run(abi.ImportStateBulkGet)
	r = abi.Reader{B: out}
	v1, e1, v2, e2 := r.Bytes(), r.String(), r.Bytes(), r.String()
	if err != nil || r.Done() != nil || string(v1) != `{"v":1}` || e1 == "" || len(v2) != 0 || e2 != "" {
		t.Fatalf("state_bulk_get: %q %v", out, err)
	}
	if _, err := run(abi.ImportStateSet); sdk.CodeOf(err) != sdk.Conflict {
		t.Fatalf("state_set if absent on a present key: %v, want Conflict", err)
	}
	if out, err := run(abi.ImportInvoke); err != nil || string(out) != `{"x":1}` {
		t.Fatalf("invoke: %q %v", out, err)
	}
	if _, err := run(abi.ImportConfigGet); sdk.CodeOf(err) != sdk.NotFound {
		t.Fatalf("config_get: %v, want NotFound", err)
	}
	if _, err := run(abi.ImportLog); err != nil {
		t.Fatalf("log: %v", err)
	}
	if _, err := run(abi.ImportStateTransact); err != nil {
		t.Fatalf("state_transact: %v", err)
	}
	if _, err := run(abi.ImportPublish); err != nil {
		t.Fatalf("publish: %v", err)
	}
	// Unknown flags and op kinds are refused, not ignored.
	bad := abi.AppendWriteOptions(abi.AppendBytes(abi.AppendString(abi.AppendString(nil, "s"), "k"), nil), "", 0, 2)
	if _, err := opStateSet(st, bad); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("unknown flag: %v", err)
	}
	// Discovery capabilities refuse state, publish and invoke.
	d := &callState{ctx: context.Background(), caps: Binding{Backend: b}.discoveryCaps()}
	if _, err := opStateGet(d, seeds[0]); sdk.CodeOf(err) != sdk.FailedPrecondition {
		t.Errorf("state during discovery: %v", err)
	}
}
