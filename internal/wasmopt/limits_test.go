package wasmopt

import (
	"strings"
	"testing"
	"time"
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
	with := func(prefix []byte, rest ...byte) []byte { return append(append(append([]byte{}, prefix...), max...), rest...) }
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
