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

// FuzzMeter: whatever the input, Meter does not panic, and a module the
// runtime accepts stays one it accepts once metered, and can be metered
// again (it parses).
func FuzzMeter(f *testing.F) {
	f.Add(meterModule(true))
	f.Add(meterModule(false))
	f.Add(module(active(0, "abc")))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Meter(wasm, 3)
		cm, cerr := rt.CompileModule(ctx, wasm)
		if cerr != nil {
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
	one, err := meterCode(nil, code, check, 1)
	if err != nil {
		t.Fatal(err)
	}
	for parts := 2; parts <= 5; parts++ {
		got, err := meterCode(nil, code, check, parts)
		if err != nil || !bytes.Equal(got, one) {
			t.Fatalf("in %d parts: %v, and the bytes differ from one part's: %v", parts, err, !bytes.Equal(got, one))
		}
	}
	bad := bytes.Clone(code)
	bad[len(bad)-1] = 0xff // the last function's last instruction
	if _, err := meterCode(nil, bad, check, 3); err == nil || !strings.Contains(err.Error(), "function 3") {
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
