package wasmopt

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// meterModule is a module of four exported functions, with a memory and a
// global of its own (so that Meter's globals are not the first):
//
//	spin ()        loops for ever, counting in the first word of memory
//	sum (n) i32    adds n, n-1, ... 1 in a loop
//	fib (n) i32    recursively, without a loop
//	get () i32     returns the module's global, 42
func meterModule(withGlobal bool) []byte {
	sec := func(id byte, payload ...byte) []byte {
		return append(appendU32([]byte{id}, uint32(len(payload))), payload...)
	}
	vec := func(items ...[]byte) []byte {
		b := appendU32(nil, uint32(len(items)))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	body := func(locals []byte, code ...byte) []byte {
		b := append(locals, code...)
		return append(appendU32(nil, uint32(len(b))), b...)
	}
	export := func(name string, kind byte, idx byte) []byte {
		return append(append(appendU32(nil, uint32(len(name))), name...), kind, idx)
	}
	const i32 = 0x7f
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, sec(1, vec(
		[]byte{0x60, 0, 0},           // () -> ()
		[]byte{0x60, 1, i32, 1, i32}, // (i32) -> i32
		[]byte{0x60, 0, 1, i32},      // () -> i32
	)...)...)
	b = append(b, sec(3, vec([]byte{0}, []byte{1}, []byte{1}, []byte{2})...)...)
	b = append(b, sec(5, 1, 0, 1)...) // one memory of one page
	if withGlobal {
		b = append(b, sec(6, vec([]byte{i32, 0, 0x41, 42, 0x0b})...)...)
	}
	b = append(b, sec(7, vec(export("spin", 0, 0), export("sum", 0, 1), export("fib", 0, 2), export("get", 0, 3), export("memory", 2, 0))...)...)
	get := []byte{0x41, 42, 0x0b} // i32.const 42
	if withGlobal {
		get = []byte{0x23, 0, 0x0b} // global.get 0
	}
	b = append(b, sec(10, vec(
		body([]byte{0}, 0x03, 0x40, // loop
			0x41, 0, 0x41, 0, 0x28, 2, 0, 0x41, 1, 0x6a, 0x36, 2, 0, // mem[0]++
			0x0c, 0x00, 0x0b, 0x0b), // br 0 end
		body([]byte{1, 1, i32},
			0x02, 0x40, 0x03, 0x40, // block loop
			0x20, 0, 0x45, 0x0d, 1, // local.get 0, i32.eqz, br_if 1
			0x20, 1, 0x20, 0, 0x6a, 0x21, 1, // acc += n
			0x20, 0, 0x41, 1, 0x6b, 0x21, 0, // n--
			0x0c, 0, 0x0b, 0x0b, // br 0 end end
			0x20, 1, 0x0b), // local.get 1
		body([]byte{0},
			0x20, 0, 0x41, 2, 0x49, // n < 2
			0x04, i32, 0x20, 0, // if (result i32) n
			0x05, // else fib(n-1) + fib(n-2)
			0x20, 0, 0x41, 1, 0x6b, 0x10, 2,
			0x20, 0, 0x41, 2, 0x6b, 0x10, 2,
			0x6a, 0x0b, 0x0b),
		body([]byte{0}, get...),
	)...)...)
	return b
}

func compiler(t testing.TB) (context.Context, wazero.Runtime) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	t.Cleanup(func() { rt.Close(ctx) })
	return ctx, rt
}

func TestMeterKeepsBehaviour(t *testing.T) {
	for _, withGlobal := range []bool{false, true} {
		orig := meterModule(withGlobal)
		metered, err := Meter(orig, 7) // a small fuel: refills happen
		if err != nil {
			t.Fatal(err)
		}
		ctx, rt := compiler(t)
		results := func(wasm []byte) []uint64 {
			m, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatalf("instantiate: %v", err)
			}
			var out []uint64
			for _, c := range []struct {
				f   string
				arg []uint64
			}{{"sum", []uint64{1000}}, {"fib", []uint64{20}}, {"get", nil}} {
				r, err := m.ExportedFunction(c.f).Call(ctx, c.arg...)
				if err != nil {
					t.Fatalf("%s: %v", c.f, err)
				}
				out = append(out, r...)
			}
			return out
		}
		want, got := results(orig), results(metered)
		if want[0] != 500500 || want[1] != 6765 || want[2] != 42 {
			t.Fatalf("the unmetered module computed %v", want)
		}
		if !slicesEqual(got, want) {
			t.Errorf("global section %v: metered %v, unmetered %v", withGlobal, got, want)
		}
		if bytes.Contains(orig, []byte(MeterStop)) || !bytes.Contains(metered, []byte(MeterStop)) {
			t.Errorf("the stop flag's export: in the original %v, in the metered %v", bytes.Contains(orig, []byte(MeterStop)), bytes.Contains(metered, []byte(MeterStop)))
		}
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMeterStops stops what never ends on its own: a loop, and a call tree
// that recurses without a loop (fib(60) is 10^12 calls). Meanwhile the
// garbage collector must be able to stop the world: without the metering's
// exits to Go, runtime.GC would wait for the guest, here for ever.
func TestMeterStops(t *testing.T) {
	metered, err := Meter(meterModule(true), DefaultFuel)
	if err != nil {
		t.Fatal(err)
	}
	ctx, rt := compiler(t)
	cm, err := rt.CompileModule(ctx, metered)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f   string
		arg []uint64
	}{{"spin", nil}, {"fib", []uint64{60}}} {
		t.Run(c.f, func(t *testing.T) {
			m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
			if err != nil {
				t.Fatal(err)
			}
			stop, ok := m.ExportedGlobal(MeterStop).(api.MutableGlobal)
			if !ok {
				t.Fatalf("no mutable %s export", MeterStop)
			}
			var returned atomic.Bool
			done := make(chan error, 1)
			go func() {
				_, err := m.ExportedFunction(c.f).Call(ctx, c.arg...)
				returned.Store(true)
				done <- err
			}()
			if c.f == "spin" {
				// Once the guest counts, it runs compiled code: the
				// collector's stop-the-world must still get through.
				for n, _ := m.Memory().ReadUint32Le(0); n == 0; n, _ = m.Memory().ReadUint32Le(0) {
					runtime.Gosched()
				}
				runtime.GC()
			}
			if returned.Load() {
				t.Fatalf("%s returned before it was stopped", c.f)
			}
			stop.Set(1)
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "unreachable") {
					t.Fatalf("stopped %s: %v, want an unreachable trap", c.f, err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s did not stop within a minute of its stop flag being set", c.f)
			}
		})
	}
}

// oneFunc builds a module of one memory, globals i32 globals, and one
// function of type typ (a type section entry) and body code, exported as
// "f", plus the sections in extra (id, payload), which go before the code
// section.
func oneFunc(globals int, typ []byte, code []byte, extra ...[]byte) []byte {
	sec := func(id byte, payload []byte) []byte {
		return append(appendU32([]byte{id}, uint32(len(payload))), payload...)
	}
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, sec(1, append([]byte{1}, typ...))...)
	b = append(b, sec(3, []byte{1, 0})...)
	b = append(b, sec(5, []byte{1, 0, 1})...)
	if globals > 0 {
		g := appendU32(nil, uint32(globals))
		for range globals {
			g = append(g, 0x7f, 1, opI32Const, 0, opEnd)
		}
		b = append(b, sec(6, g)...)
	}
	b = append(b, sec(7, []byte{2, 1, 'f', 0, 0, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0})...)
	for _, e := range extra {
		b = append(b, sec(e[0], e[1:])...)
	}
	body := append([]byte{0}, code...)
	return append(b, sec(10, append(appendU32([]byte{1}, uint32(len(body))), body...))...)
}

// TestMeterRefusesWhatIsInvalid: a module that names a global it does not
// have is invalid, but once metered that index is one of Meter's globals;
// a guest that could set them would refill its fuel or clear its stop
// flag, and never be stopped. Meter refuses such a module, and the other
// invalid ones its rewriting would make valid.
func TestMeterRefusesWhatIsInvalid(t *testing.T) {
	void := []byte{0x60, 0, 0}
	refill := []byte{0x03, 0x40, opI32Const, 0x80, 0x80, 0x01, opGlobalSet, 1, 0x0c, 0, opEnd, opEnd} // loop: fuel = 16384; br 0
	for _, c := range []struct {
		name, want string
		wasm       []byte
	}{
		{"refills the fuel", "global 1, of 1", oneFunc(1, void, refill)},
		{"clears the stop flag", "global 1, of 0", oneFunc(0, void, []byte{opI32Const, 0, opGlobalSet, 1, opEnd})},
		{"reads a global in a long form", "global 0, of 0", oneFunc(0, []byte{0x60, 0, 1, 0x7f}, []byte{opGlobalGet, 0x80, 0x00, opEnd})},
		{"exports the fuel", "export \"g\" of global 0", oneFunc(0, void, []byte{opEnd}, []byte{7, 1, 1, 'g', 3, 0})},
		{"a start function with a parameter", "start function 0 has 1 parameters", oneFunc(0, []byte{0x60, 1, 0x7f, 0}, []byte{opEnd}, []byte{8, 0})},
		{"a start function that does not exist", "start function 3 does not exist", oneFunc(0, void, []byte{opEnd}, []byte{8, 3})},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, rt := compiler(t)
			if _, err := rt.CompileModule(ctx, c.wasm); err == nil {
				t.Fatal("the runtime accepts the module: the test is wrong")
			}
			if _, err := Meter(c.wasm, DefaultFuel); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Meter: %v, want an error containing %q", err, c.want)
			}
		})
	}
	// The same module naming its own global is fine.
	ok := oneFunc(2, []byte{0x60, 0, 0}, refill)
	if _, err := Meter(ok, DefaultFuel); err != nil {
		t.Fatalf("a module that sets its own global 1: %v", err)
	}
}

// TestMeterStopsTailCalls: a tail call that calls itself runs for ever
// without a loop and without growing the stack. The runtime's tail calls
// are off in the hosts (wazero refuses such a module), but Meter must not
// rely on that.
func TestMeterStopsTailCalls(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesTailCall))
	t.Cleanup(func() { rt.Close(ctx) })
	metered, err := Meter(oneFunc(0, []byte{0x60, 0, 0}, []byte{opReturnCall, 0, opEnd}), DefaultFuel)
	if err != nil {
		t.Fatal(err)
	}
	m, err := rt.InstantiateWithConfig(ctx, metered, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.ExportedFunction("f").Call(ctx)
		done <- err
	}()
	runtime.GC() // the exits to Go let the collector stop the world
	m.ExportedGlobal(MeterStop).(api.MutableGlobal).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("the stopped tail call: %v, want an unreachable trap", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the tail call did not stop within a minute of its stop flag being set")
	}
}

// TestMeterStart: a start function runs while the module is instantiated,
// where the host cannot yet reach the stop flag. Metered, it is the export
// MeterStart: instantiating runs nothing, calling it does what the start
// function did, and a start function that loops is stopped like any call.
func TestMeterStart(t *testing.T) {
	void := []byte{0x60, 0, 0}
	store := []byte{opI32Const, 0, opI32Const, 7, 0x36, 2, 0, opEnd} // mem[0] = 7
	spin := []byte{0x03, 0x40, 0x0c, 0, opEnd, opEnd}
	ctx, rt := compiler(t)
	word := func(m api.Module) uint32 { v, _ := m.Memory().ReadUint32Le(0); return v }

	orig := oneFunc(0, void, store, []byte{8, 0})
	m, err := rt.InstantiateWithConfig(ctx, orig, wazero.NewModuleConfig().WithName(""))
	if err != nil || word(m) != 7 {
		t.Fatalf("the unmetered module: %v, mem[0] = %d: the test is wrong", err, word(m))
	}
	metered, err := Meter(orig, DefaultFuel)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = rt.InstantiateWithConfig(ctx, metered, wazero.NewModuleConfig().WithName("")); err != nil {
		t.Fatal(err)
	}
	if word(m) != 0 {
		t.Fatal("instantiating the metered module ran the start function")
	}
	if _, err := m.ExportedFunction(MeterStart).Call(ctx); err != nil || word(m) != 7 {
		t.Fatalf("%s: %v, mem[0] = %d, want 7", MeterStart, err, word(m))
	}
	if _, err := Meter(metered, DefaultFuel); err == nil || !strings.Contains(err.Error(), "already exports") {
		t.Fatalf("metering again: %v", err)
	}

	looping, err := Meter(oneFunc(0, void, spin, []byte{8, 0}), DefaultFuel)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = rt.InstantiateWithConfig(ctx, looping, wazero.NewModuleConfig().WithName("")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.ExportedFunction(MeterStart).Call(ctx)
		done <- err
	}()
	m.ExportedGlobal(MeterStop).(api.MutableGlobal).Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("the stopped start function: %v, want an unreachable trap", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the looping start function did not stop within a minute of its stop flag being set")
	}
}

// FuzzMeter: whatever the input, Meter does not panic (nor allocate by a
// count it has not checked). Within CheckLimits, a module the runtime
// accepts stays one it accepts once metered, and can be metered again (it
// parses), and a module the runtime refuses stays refused: metering must
// not make a module valid (see TestMeterRefusesWhatIsInvalid).
func FuzzMeter(f *testing.F) {
	f.Add(meterModule(true))
	f.Add(meterModule(false))
	f.Add(module(active(0, "abc")))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01\x0a\x06\xff\xff\xff\xff\x0f\x00")) // 2^32-1 bodies
	f.Add(oneFunc(1, []byte{0x60, 0, 0}, []byte{opI32Const, 0, opGlobalSet, 0, opEnd}, []byte{8, 0}))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Meter(wasm, 3)
		if CheckLimits(wasm) != nil {
			return // the runtime's decoder could allocate gigabytes for it
		}
		cm, cerr := rt.CompileModule(ctx, wasm)
		// wazero v1.12 refuses a valid module that ends in a custom section
		// with no content after its name (reading zero bytes at the end
		// of the input gives it EOF), and accepts it once Meter has added
		// a section after it: its error, not metering's.
		emptyCustomLast := cerr != nil && strings.Contains(cerr.Error(), "failed to read custom section")
		if cerr != nil {
			if err == nil && !emptyCustomLast {
				if cm, err := rt.CompileModule(ctx, out); err == nil {
					cm.Close(ctx)
					t.Fatalf("the runtime refuses the module (%v), but accepts it metered", cerr)
				}
			}
			return
		}
		cm.Close(ctx)
		if err != nil {
			if strings.Contains(err.Error(), "no linear memory") || strings.Contains(err.Error(), "already exports") {
				return
			}
			t.Fatalf("the runtime accepts the module, Meter does not: %v", err)
		}
		cm, err = rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("the runtime refuses the metered module: %v", err)
		}
		cm.Close(ctx)
		if _, err := Meter(out, 3); err == nil || !strings.Contains(err.Error(), "already exports") {
			t.Fatalf("metering the metered module again: %v, want it refused as already metered", err)
		}
	})
}

// TestMeterSplits: a code section metered in parts (as a large one is, on
// several CPUs) comes out byte for byte as metered in one.
func TestMeterSplits(t *testing.T) {
	sections, err := readSections(meterModule(true))
	if err != nil {
		t.Fatal(err)
	}
	var code []byte
	for _, s := range sections {
		if s.id == sectionCode {
			code = meterModule(true)[s.start:s.end]
		}
	}
	check := appendCheck(nil, 5, 1, 2)
	one, err := meterCode(nil, code, check, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	for parts := 2; parts <= 5; parts++ {
		got, err := meterCode(nil, code, check, 1, parts)
		if err != nil || !bytes.Equal(got, one) {
			t.Fatalf("in %d parts: %v, and the bytes differ from one part's: %v", parts, err, !bytes.Equal(got, one))
		}
	}
	bad := bytes.Clone(code)
	bad[len(bad)-1] = 0xff // the last function's last instruction
	if _, err := meterCode(nil, bad, check, 1, 3); err == nil || !strings.Contains(err.Error(), "function 3") {
		t.Fatalf("a malformed last function in 3 parts: %v, want an error naming function 3", err)
	}
}

// TestImports reads every kind of import, and stops at a malformed one
// with those read before it.
func TestImports(t *testing.T) {
	name := func(s string) []byte { return append(appendU32(nil, uint32(len(s))), s...) }
	imp := func(mod, n string, desc ...byte) []byte { return append(append(name(mod), name(n)...), desc...) }
	sec := append(appendU32(nil, 4),
		imp("roam_v1", "log", 0, 0)...) // function of type 0
	sec = append(sec, imp("env", "table", 1, 0x70, 0, 1)...) // funcref table, min 1
	sec = append(sec, imp("env", "memory", 2, 1, 1, 2)...)   // memory 1..2
	sec = append(sec, imp("env", "g", 3, 0x7f, 0)...)        // immutable i32
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), append(appendU32([]byte{2}, uint32(len(sec))), sec...)...)
	got, err := Imports(wasm)
	want := []Import{{"roam_v1", "log", ImportFunction}, {"env", "table", ImportTable}, {"env", "memory", ImportMemory}, {"env", "g", ImportGlobal}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("Imports = %v, %v; want %v", got, err, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("import %d = %v, want %v", i, got[i], want[i])
		}
	}
	bad := bytes.Clone(wasm)
	bad[len(bad)-3] = 9 // the global's kind
	if got, err := Imports(bad); err == nil || len(got) != 3 {
		t.Errorf("a malformed fourth import: %v, %v; want the three before it and an error", got, err)
	}
}
