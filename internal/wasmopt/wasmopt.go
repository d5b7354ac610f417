// Package wasmopt rewrites a built WebAssembly module in ways that leave
// its behaviour unchanged and make it cheaper to load.
//
// MergeData joins the data segments Go's linker writes. The linker omits
// every run of more than eight zero bytes from the module, starting a new
// segment after it; a Go module therefore carries tens of thousands of
// segments (48,428 for the shop's orders app). Every runtime pays per
// segment when it decodes the module and again each time it instantiates it
// (wazero validates and copies each one), so a module that loads in one
// piece per gap of more than maxGap zeros is about 30% faster to load
// from the compilation cache, at the cost of the zeros it now spells out.
package wasmopt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

const (
	sectionExport    = 7
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

// DefaultMaxGap is the longest run of zeros MergeData spells out rather
// than split a segment at. For the shop's modules, 64 leaves 16 segments of
// about 48,000 and grows the module by 10% (0.5 MB of zeros).
const DefaultMaxGap = 64

// MergeData returns wasm with adjacent active data segments merged where
// at most maxGap zero bytes separate them. It returns wasm itself, and
// false, when there is nothing to merge or a segment is of a form it does
// not rewrite (passive, or placed by anything but an i32.const); it returns
// an error for a malformed module.
func MergeData(wasm []byte, maxGap int) ([]byte, bool, error) {
	sections, err := readSections(wasm)
	if err != nil {
		return nil, false, err
	}
	dataAt := slices.IndexFunc(sections, func(s section) bool { return s.id == sectionData })
	if dataAt < 0 {
		return wasm, false, nil
	}
	d := sections[dataAt]
	segs, ok, err := readData(wasm[d.start:d.end])
	if err != nil || !ok {
		return wasm, false, err
	}
	merged := mergeSegments(segs, uint64(maxGap))
	if len(merged) == len(segs) {
		return wasm, false, nil
	}

	out := make([]byte, 0, len(wasm)+len(wasm)/8)
	out = append(out, wasm[:8]...)
	for _, s := range sections {
		payload := wasm[s.start:s.end]
		switch s.id {
		case sectionData:
			payload = appendData(nil, merged)
		case sectionDataCount:
			payload = appendU32(nil, uint32(len(merged)))
		}
		out = append(out, s.id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	return out, true, nil
}

// DataSegments returns how many data segments wasm holds.
func DataSegments(wasm []byte) (int, error) {
	sections, err := readSections(wasm)
	if err != nil {
		return 0, err
	}
	for _, s := range sections {
		if s.id == sectionData {
			r := reader{b: wasm[s.start:s.end]}
			return int(r.u32()), r.err
		}
	}
	return 0, nil
}

// RenameExport returns a copy of wasm whose export name is called to, of
// the same length, as a module built without that export would lack it
// (tests of hosts that must run such modules use it).
func RenameExport(wasm []byte, name, to string) ([]byte, error) {
	if len(to) != len(name) {
		return nil, fmt.Errorf("rename export %q to %q: the names differ in length", name, to)
	}
	sections, err := readSections(wasm)
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		if s.id != sectionExport {
			continue
		}
		r := reader{b: wasm[:s.end], i: s.start}
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			l := int(r.u32())
			if r.err != nil || r.i+l > s.end {
				break
			}
			at := r.i
			r.i += l
			r.byte() // kind
			r.u32()  // index
			if string(wasm[at:at+l]) == name {
				out := slices.Clone(wasm)
				copy(out[at:], to)
				return out, nil
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("malformed export section: %w", r.err)
		}
	}
	return nil, fmt.Errorf("the module exports no %q", name)
}

// section is a section of a module: its id and where its payload lies.
type section struct {
	id         byte
	start, end int
}

// readSections splits a module into its sections.
func readSections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a wasm module")
	}
	var sections []section
	for r := (reader{b: wasm, i: 8}); r.i < len(wasm); {
		id := r.byte()
		n := r.u32()
		if r.err != nil || uint64(r.i)+uint64(n) > uint64(len(wasm)) {
			return nil, fmt.Errorf("malformed module: section %d overruns the module", id)
		}
		sections = append(sections, section{id, r.i, r.i + int(n)})
		r.i += int(n)
	}
	return sections, nil
}

// segment is an active data segment of memory 0.
type segment struct {
	offset uint64
	data   []byte
}

// readData reads a data section's segments; ok is false when one is not an
// active segment of memory 0 at an i32.const offset.
func readData(p []byte) (segs []segment, ok bool, err error) {
	r := reader{b: p}
	n := r.u32()
	for range n {
		if r.err != nil {
			break
		}
		if flags := r.u32(); flags != 0 {
			return nil, false, r.err
		}
		if r.byte() != opI32Const {
			return nil, false, r.err
		}
		off := uint32(r.s32())
		if r.byte() != opEnd {
			return nil, false, r.err
		}
		size := r.u32()
		if r.err == nil && uint64(r.i)+uint64(size) > uint64(len(p)) {
			return nil, false, errors.New("malformed module: a data segment overruns its section")
		}
		if r.err != nil {
			break
		}
		segs = append(segs, segment{uint64(off), p[r.i : r.i+int(size)]})
		r.i += int(size)
	}
	if r.err != nil {
		return nil, false, fmt.Errorf("malformed module: data section: %w", r.err)
	}
	if r.i != len(p) {
		return nil, false, errors.New("malformed module: data section has trailing bytes")
	}
	return segs, true, nil
}

// mergeSegments sorts segments by offset and joins those that neither
// overlap nor lie more than maxGap bytes apart. Overlapping segments are
// kept apart: a later one overwrites an earlier one, which merging would
// change.
func mergeSegments(segs []segment, maxGap uint64) []segment {
	sorted := slices.Clone(segs)
	slices.SortStableFunc(sorted, func(a, b segment) int { return cmp.Compare(a.offset, b.offset) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].offset < sorted[i-1].offset+uint64(len(sorted[i-1].data)) {
			return segs // overlaps: order matters, leave them
		}
	}
	var out []segment
	for _, s := range sorted {
		if len(out) > 0 {
			last := &out[len(out)-1]
			if gap := s.offset - (last.offset + uint64(len(last.data))); gap <= maxGap {
				// A run's first segment is clipped below, so the first
				// append copies it out of the module and the rest extend
				// that copy.
				last.data = append(append(last.data, make([]byte, gap)...), s.data...)
				continue
			}
		}
		out = append(out, segment{s.offset, slices.Clip(s.data)})
	}
	return out
}

func appendData(b []byte, segs []segment) []byte {
	b = appendU32(b, uint32(len(segs)))
	for _, s := range segs {
		b = append(b, 0, opI32Const)
		b = appendS32(b, int32(uint32(s.offset)))
		b = append(b, opEnd)
		b = appendU32(b, uint32(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

func appendU32(b []byte, v uint32) []byte { return binary.AppendUvarint(b, uint64(v)) }

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// reader reads bytes and LEB128 integers (unsigned through
// encoding/binary, which reads the same encoding); the first error sticks.
type reader struct {
	b   []byte
	i   int
	err error
}

var errShort = errors.New("unexpected end")

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.i >= len(r.b) {
		r.err = errShort
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.i:])
	switch {
	case n == 0:
		r.err = errShort
		return 0
	case n < 0 || n > 5 || v > math.MaxUint32:
		r.fail()
		return 0
	}
	r.i += n
	return uint32(v)
}

func (r *reader) s32() int32 {
	var v int64
	shift := 0
	for ; shift < 35; shift += 7 {
		c := r.byte()
		v |= int64(c&0x7f) << shift
		if c&0x80 == 0 {
			shift += 7
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				r.fail()
			}
			return int32(v)
		}
	}
	r.fail()
	return 0
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errors.New("malformed LEB128 integer")
	}
}
