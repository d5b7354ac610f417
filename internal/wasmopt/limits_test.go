package wasmopt

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// TestCheckLimits: modules of a few bytes that declare more than they hold
// are refused before a runtime allocates for them. Each of them costs
// wazero v1.12 gigabytes (and the process, where memory is short), or a
// gigabyte per instance (the table).
func TestCheckLimits(t *testing.T) {
	sec := func(id byte, p ...byte) []byte { return append([]byte{id, byte(len(p))}, p...) }
	mod := func(sections ...[]byte) []byte {
		b := []byte("\x00asm\x01\x00\x00\x00")
		for _, s := range sections {
			b = append(b, s...)
		}
		return b
	}
	max := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	with := func(prefix []byte, rest ...byte) []byte {
		return append(append(append([]byte{}, prefix...), max...), rest...)
	}
	typ, fn := sec(1, 1, 0x60, 0, 0), sec(3, 1, 0)
	for _, c := range []struct {
		name, want string
		wasm       []byte
	}{
		{"functions", "4294967295 functions in 1 bytes", mod(sec(3, with(nil, 0)...))},
		{"types", "4294967295 types", mod(sec(1, with(nil, 0x60, 0, 0)...))},
		{"parameters", "4294967295 parameters", mod(sec(1, with([]byte{1, 0x60}, 0x7f)...))},
		{"exports", "4294967295 exports", mod(sec(7, with(nil, 1)...))},
		{"import name", "unexpected end", mod(sec(2, with([]byte{1}, 1)...))},
		{"globals", "4294967295 globals", mod(sec(6, with(nil, 0)...))},
		{"a table", "a table of 134217728 elements", mod(sec(4, 1, 0x70, 0, 0x80, 0x80, 0x80, 0x40))},
		{"element segments", "4294967295 element segments", mod(sec(9, with(nil, 0)...))},
		{"elements", "4294967295 elements", mod(sec(9, with([]byte{1, 1, 0}, 0)...))},
		{"data segments", "4294967295 data segments", mod(sec(11, with(nil, 0)...))},
		{"data", "4294967295 bytes of data", mod(sec(5, 1, 0, 1), sec(11, with([]byte{1, 1}, 0)...))},
		{"a body's size", "a function body of 4294967295 bytes", mod(typ, fn, sec(10, with([]byte{1}, 0)...))},
		{"locals", "4294967295 locals", mod(typ, fn, sec(10, 1, 8, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f, 0x0b))},
		{"locals in two declarations", "50001 locals", mod(typ, fn, sec(10, 1, 8, 2, 0xd0, 0x86, 0x03, 0x7f, 1, 0x7f, 0x0b))},
		{"tags", "4294967295 tags", mod(sec(13, with(nil, 0)...))},
		{"a custom section's name", "unexpected end", mod(sec(0, with(nil, 'x')...))},
		// Function 1's type is out of range, and function 0 calls it:
		// wazero read the type before checking it, and panicked.
		{"a function's type", "a function of type 48, of 1", mod(typ, sec(3, 2, 0, 48), sec(10, 2, 4, 0, opCall, 1, opEnd, 2, 0, opEnd))},
		{"an imported function's type", "a function of type 1, of 1", mod(typ, sec(2, 1, 1, 'm', 1, 'f', 0, 1))},
	} {
		start := time.Now()
		err := CheckLimits(c.wasm)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: took %s", c.name, took)
		}
	}
	for name, wasm := range map[string][]byte{
		"meterModule":    meterModule(true),
		"data":           module(active(0, "abc"), active(100, "def")),
		"50,000 locals":  mod(typ, fn, sec(10, 1, 6, 1, 0xd0, 0x86, 0x03, 0x7f, 0x0b)),
		"element kinds":  mod(typ, fn, sec(4, 1, 0x70, 0, 2), sec(9, 3, 0, opI32Const, 0, opEnd, 1, 0, 1, 0, 1, 0, 4, opI32Const, 0, opEnd, 1, 0xd2, 0, opEnd), sec(10, 1, 2, 0, 0x0b)),
		"a table of 10M": mod(sec(4, 1, 0x70, 0, 0x80, 0xad, 0xe2, 0x04)),
	} {
		if err := CheckLimits(wasm); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		ctx, rt := compiler(t)
		if _, err := rt.CompileModule(ctx, wasm); err != nil {
			t.Errorf("%s: the runtime refuses it: %v", name, err)
		}
	}
}

// TestCapTables: a table with no maximum (Go's linker declares its table
// so) is capped, and table.grow past the cap fails as wasm says it should
// (-1) instead of allocating what the guest asks for: 2^31 - 1 elements
// were 16 GB of the host's memory for wazero.
func TestCapTables(t *testing.T) {
	sec := func(id byte, p ...byte) []byte { return append([]byte{id, byte(len(p))}, p...) }
	// grow (n) i32: table.grow 0 by n null references; size () i32.
	mod := func(table []byte) []byte {
		b := []byte("\x00asm\x01\x00\x00\x00")
		b = append(b, sec(1, 2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 0, 1, 0x7f)...)
		b = append(b, sec(3, 2, 0, 1)...)
		b = append(b, table...)
		b = append(b, sec(7, 2, 4, 'g', 'r', 'o', 'w', 0, 0, 4, 's', 'i', 'z', 'e', 0, 1)...)
		grow := []byte{0, 0xd0, 0x70, 0x20, 0, 0xfc, 15, 0, 0x0b}
		size := []byte{0, 0xfc, 16, 0, 0x0b}
		code := append(append([]byte{2, byte(len(grow))}, grow...), byte(len(size)))
		return append(b, sec(10, append(code, size...)...)...)
	}
	goTable := mod(sec(4, 1, 0x70, 0, 0xf3, 0x35)) // min 6899, no maximum: Go's
	capped, changed, err := CapTables(goTable)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if want := mod(sec(4, 1, 0x70, 1, 0xf3, 0x35, 0x80, 0x80, 0x40)); !bytes.Equal(capped, want) {
		t.Fatalf("capped:\n%x\nwant\n%x", capped, want)
	}
	ctx, rt := compiler(t)
	m, err := rt.InstantiateWithConfig(ctx, capped, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	call := func(f string, args ...uint64) int32 {
		r, err := m.ExportedFunction(f).Call(ctx, args...)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		return int32(r[0])
	}
	if got := call("grow", 1<<31-1); got != -1 {
		t.Errorf("growing by 2^31 - 1: %d, want -1", got)
	}
	if got := call("grow", MaxTableGrowth-6899); got != 6899 {
		t.Errorf("growing to the cap: %d, want the old size 6899", got)
	}
	if got, again := call("size"), call("grow", 1); got != MaxTableGrowth || again != -1 {
		t.Errorf("at the cap: size %d, growing by one more %d; want %d and -1", got, again, MaxTableGrowth)
	}

	// Tables within the cap are left as they are; a larger initial size is
	// its own cap.
	for _, table := range [][]byte{
		sec(4, 1, 0x70, 1, 1, 2),                // max 2
		sec(4, 1, 0x70, 1, 0, 0x80, 0x80, 0x40), // max the cap
	} {
		wasm := mod(table)
		if got, changed, err := CapTables(wasm); err != nil || changed || &got[0] != &wasm[0] {
			t.Errorf("table %x: %v, or it was rewritten", table, err)
		}
	}
	big, _, err := CapTables(mod(sec(4, 1, 0x70, 0, 0x80, 0x80, 0x80, 0x01)))
	if want := mod(sec(4, 1, 0x70, 1, 0x80, 0x80, 0x80, 0x01, 0x80, 0x80, 0x80, 0x01)); err != nil || !bytes.Equal(big, want) {
		t.Errorf("a table of 2^21 with no maximum: %v\n%x\nwant\n%x", err, big, want)
	}
	if got, changed, err := CapTables(meterModule(true)); err != nil || changed || !bytes.Equal(got, meterModule(true)) {
		t.Errorf("a module without tables: %v, or it was rewritten", err)
	}
}

// FuzzCapTables: whatever the input within CheckLimits, CapTables does not
// panic, and the runtime accepts a capped module exactly when it accepts
// the module itself.
func FuzzCapTables(f *testing.F) {
	f.Add(meterModule(true))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x04\x04\x01\x70\x00\x05"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x04\x05\x01\x70\x01\x01\x02"))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		if CheckLimits(wasm) != nil {
			return
		}
		out, _, err := CapTables(wasm)
		cm, cerr := rt.CompileModule(ctx, wasm)
		if cerr == nil {
			cm.Close(ctx)
		}
		if err != nil {
			if cerr == nil {
				t.Fatalf("the runtime accepts the module, CapTables does not: %v", err)
			}
			return
		}
		cm, oerr := rt.CompileModule(ctx, out)
		if oerr == nil {
			cm.Close(ctx)
		}
		if (cerr == nil) != (oerr == nil) {
			t.Fatalf("the runtime says %v of the module, %v of it capped", cerr, oerr)
		}
	})
}
