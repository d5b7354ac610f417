package wasmopt

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// module returns a module with one memory of one page, exported as
// "memory", and a data section holding segs (raw, so that a test can write
// forms MergeData leaves alone), then a custom section.
func module(segs ...[]byte) []byte {
	sec := func(id byte, payload []byte) []byte {
		return append(appendU32([]byte{id}, uint32(len(payload))), payload...)
	}
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, sec(5, []byte{1, 0, 1})...) // memory: min 1 page
	exp := append(appendU32(nil, 1), appendU32(nil, 6)...)
	exp = append(exp, "memory"...)
	exp = append(exp, 2, 0) // memory 0
	b = append(b, sec(7, exp)...)
	data := appendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		data = append(data, s...)
	}
	b = append(b, sec(11, data)...)
	custom := append(appendU32(nil, 4), "note"...)
	return append(b, sec(0, append(custom, "kept"...))...)
}

func active(offset int32, data string) []byte {
	b := appendS32([]byte{0, opI32Const}, offset)
	b = append(b, opEnd)
	b = appendU32(b, uint32(len(data)))
	return append(b, data...)
}

// memoryOf instantiates wasm in wazero and returns its memory.
func memoryOf(t *testing.T, wasm []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	m, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	b, _ := m.Memory().Read(0, m.Memory().Size())
	return bytes.Clone(b)
}

func countSegments(t *testing.T, wasm []byte) int {
	t.Helper()
	n, err := DataSegments(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMergeDataSameMemory: merged, a module initialises its memory byte
// for byte as before, with fewer segments, and keeps its other sections.
func TestMergeDataSameMemory(t *testing.T) {
	wasm := module(
		active(16, "abc"),
		active(19, "d"),     // adjacent
		active(30, "efgh"),  // 10 zeros apart
		active(100, "ijk"),  // 66 apart: beyond 64
		active(1000, "l"),   // far
		active(1004, "mn"),  // 3 apart
		active(200, "late"), // out of order
	)
	out, changed, err := MergeData(wasm, DefaultMaxGap)
	if err != nil || !changed {
		t.Fatalf("MergeData: changed %v, err %v", changed, err)
	}
	if got := countSegments(t, out); got != 4 {
		t.Errorf("%d segments after merging, want 4 (16–34, 100–103 with 200–204 apart, 1000–1006)", got)
	}
	if want, got := memoryOf(t, wasm), memoryOf(t, out); !bytes.Equal(want, got) {
		t.Fatal("the merged module's memory differs")
	}
	if !bytes.HasSuffix(out, []byte("notekept")) {
		t.Error("the custom section after the data section is lost")
	}
	// Idempotent: nothing more to merge.
	if again, changed, err := MergeData(out, DefaultMaxGap); err != nil || changed || !bytes.Equal(again, out) {
		t.Errorf("second MergeData: changed %v, err %v", changed, err)
	}
}

// TestMergeDataLeavesOtherForms: a passive segment, an offset that is not
// an i32.const, or overlapping segments leave the module as it is.
func TestMergeDataLeavesOtherForms(t *testing.T) {
	passive := append(appendU32([]byte{1}, 2), "pp"...)
	global := []byte{0, 0x23, 0, opEnd, 1, 'g'} // global.get 0
	for name, wasm := range map[string][]byte{
		"passive":  module(active(0, "a"), passive, active(4, "b")),
		"global":   module(active(0, "a"), global),
		"overlap":  module(active(0, "abcdef"), active(2, "X"), active(8, "b")),
		"one":      module(active(0, "a")),
		"disjoint": module(active(0, "a"), active(1000, "b")),
	} {
		out, changed, err := MergeData(wasm, DefaultMaxGap)
		if err != nil || changed || !bytes.Equal(out, wasm) {
			t.Errorf("%s: changed %v, err %v; want the module untouched", name, changed, err)
		}
	}
}

// TestMergeDataMalformed: truncated or corrupt modules are refused with an
// error, never a panic.
func TestMergeDataMalformed(t *testing.T) {
	wasm := module(active(0, "abc"), active(5, "d"))
	if _, _, err := MergeData([]byte("not wasm"), DefaultMaxGap); err == nil {
		t.Error("a non-module was accepted")
	}
	for n := 9; n < len(wasm)-len("notekept")-6; n++ {
		if _, changed, err := MergeData(wasm[:n], DefaultMaxGap); err == nil && changed {
			t.Errorf("truncated to %d bytes: rewritten without an error", n)
		}
	}
}

func FuzzMergeData(f *testing.F) {
	f.Add(module(active(0, "abc"), active(5, "d"), active(300, "e")), 64)
	f.Add(module(active(-1, "a")), 8)
	f.Fuzz(func(t *testing.T, wasm []byte, gap int) {
		out, changed, err := MergeData(wasm, gap&0xffff)
		if err != nil || !changed {
			return
		}
		// A rewrite must parse again and be stable.
		if _, _, err := MergeData(out, gap&0xffff); err != nil {
			t.Fatalf("the rewritten module does not parse: %v", err)
		}
	})
}

// BenchmarkMergeData merges a module shaped like a Go one: 48,000 segments
// of 33 bytes 20 zeros apart, into one (about 2.5 MB).
func BenchmarkMergeData(b *testing.B) {
	segs := make([][]byte, 48000)
	for i := range segs {
		segs[i] = active(int32(1024+i*53), "abcdefghijklmnopqrstuvwxyz0123456")
	}
	wasm := module(segs...)
	for b.Loop() {
		if _, changed, err := MergeData(wasm, DefaultMaxGap); err != nil || !changed {
			b.Fatal(changed, err)
		}
	}
}

// TestRenameExport: the export is renamed in the export section only (not
// where the same bytes appear elsewhere, here in a data segment), and what
// it cannot do is an error.
func TestRenameExport(t *testing.T) {
	wasm := module(active(0, "memory"))
	out, err := RenameExport(wasm, "memory", "memorX")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(wasm) || bytes.Count(out, []byte("memorX")) != 1 || bytes.Count(out, []byte("memory")) != 1 {
		t.Errorf("renamed module %q", out)
	}
	if !bytes.Contains(wasm, []byte("memory\x02")) {
		t.Error("the input was changed")
	}
	if _, err := RenameExport(wasm, "memory", "mem"); err == nil {
		t.Error("a name of another length was accepted")
	}
	if _, err := RenameExport(wasm, "nothere", "nothe_X"); err == nil {
		t.Error("a missing export was renamed")
	}
	if _, err := RenameExport([]byte("not wasm"), "memory", "memorX"); err == nil {
		t.Error("not a module, renamed")
	}
}
