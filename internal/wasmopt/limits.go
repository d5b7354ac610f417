package wasmopt

import (
	"errors"
	"fmt"
)

// The limits CheckLimits applies: those of the WebAssembly JS API
// (https://webassembly.github.io/spec/js-api/#limits), which every browser
// engine applies, so a module within them loads in the browser host too.
const (
	MaxModuleBytes     = 1 << 30
	MaxTypes           = 1_000_000
	MaxFunctions       = 1_000_000 // imported and defined
	MaxImports         = 100_000
	MaxExports         = 100_000
	MaxGlobals         = 1_000_000
	MaxDataSegments    = 100_000
	MaxTables          = 100_000
	MaxMemories        = 100
	MaxElementSegments = 10_000_000
	MaxTableSize       = 10_000_000 // a table's initial size, and the elements of one segment
	MaxFunctionBytes   = 7_654_321
	MaxParams          = 1_000
	MaxResults         = 1_000
	MaxLocals          = 50_000
	MaxTags            = 1_000_000
)

// CheckLimits checks, without decoding the code, that every count and size
// a module declares fits in the bytes that follow it and within the limits
// above. A runtime's decoder allocates by what a module declares before it
// reads what follows: wazero v1.12, given a 12-byte module whose function
// section declares 4,294,967,295 functions, allocates 16 GB, and on a
// machine with less memory the process dies of it (Go's out-of-memory is
// fatal, not a panic); a table declared with 134,217,728 entries costs
// 1 GB per instance. A module CheckLimits accepts makes such allocations
// at most proportional to its size.
//
// It also checks each function's type index, which wazero v1.12 uses
// before it has checked it (it panicked on a corrupted one). It checks only
// what it must for those; the runtime validates the rest.
func CheckLimits(wasm []byte) error {
	if len(wasm) > MaxModuleBytes {
		return fmt.Errorf("the module is %d bytes, more than %d", len(wasm), MaxModuleBytes)
	}
	sections, err := readSections(wasm)
	if err != nil {
		return err
	}
	var functions, globals, tables, memories, types uint64
	// typeIndex checks a function's type index: wazero v1.12 reads the
	// type of a function a body calls before it has checked that
	// function's, and panics on one out of range.
	typeIndex := func(r *reader, t uint32) {
		if r.err == nil && uint64(t) >= types {
			r.err = fmt.Errorf("a function of type %d, of %d", t, types)
		}
	}
	for _, s := range sections {
		r := &reader{b: wasm[:s.end], i: s.start}
		switch s.id {
		case sectionCustom:
			r.name()
		case sectionType:
			t, err := readTypes(r)
			if err != nil {
				return err
			}
			types = uint64(len(t))
		case sectionImport:
			var imports []Import
			var funcTypes []uint32
			imports, err = readImports(r, &funcTypes)
			for _, t := range funcTypes {
				typeIndex(r, t)
			}
			if err == nil && len(imports) > MaxImports {
				err = fmt.Errorf("%d imports (at most %d)", len(imports), MaxImports)
			}
			for _, im := range imports {
				switch im.Kind {
				case ImportFunction:
					functions++
				case ImportGlobal:
					globals++
				case ImportTable:
					tables++
				case ImportMemory:
					memories++
				}
			}
			if err != nil {
				return fmt.Errorf("malformed module: %w", err)
			}
		case sectionFunction:
			n := r.vector("functions", MaxFunctions)
			functions += n
			for ; n > 0 && r.err == nil; n-- {
				typeIndex(r, r.u32())
			}
		case sectionTable:
			n := r.vector("tables", MaxTables)
			tables += n
			for ; n > 0 && r.err == nil; n-- {
				r.byte() // the element type
				if min := r.limits(); min > MaxTableSize && r.err == nil {
					r.err = fmt.Errorf("a table of %d elements (at most %d)", min, MaxTableSize)
				}
			}
		case sectionMemory:
			memories += r.vector("memories", MaxMemories)
		case sectionGlobal:
			n := r.vector("globals", MaxGlobals)
			globals += n
			for ; n > 0 && r.err == nil; n-- {
				r.byte() // the value type
				r.byte() // mutability
				r.constExpr()
			}
		case sectionExport:
			for n := r.vector("exports", MaxExports); n > 0 && r.err == nil; n-- {
				r.name()
				r.byte()
				r.u32()
			}
		case sectionElement:
			for n := r.vector("element segments", MaxElementSegments); n > 0 && r.err == nil; n-- {
				r.element()
			}
		case sectionCode:
			for n := r.vector("function bodies", MaxFunctions); n > 0 && r.err == nil; n-- {
				r.body()
			}
		case sectionData:
			for n := r.vector("data segments", MaxDataSegments); n > 0 && r.err == nil; n-- {
				switch flags := r.u32(); flags {
				case 0:
					r.constExpr()
				case 1:
				case 2:
					r.u32()
					r.constExpr()
				default:
					if r.err == nil {
						r.err = fmt.Errorf("a data segment of kind %d", flags)
					}
				}
				r.skip(r.vector("bytes of data", MaxModuleBytes))
			}
		case sectionTag:
			r.vector("tags", MaxTags)
		default:
			continue // the runtime reads the rest (start, data count)
		}
		if r.err != nil {
			return fmt.Errorf("malformed module: section %d: %w", s.id, r.err)
		}
	}
	for _, c := range []struct {
		what   string
		n, max uint64
	}{{"functions", functions, MaxFunctions}, {"globals", globals, MaxGlobals}, {"tables", tables, MaxTables}, {"memories", memories, MaxMemories}} {
		if c.n > c.max {
			return fmt.Errorf("the module has %d %s (at most %d)", c.n, c.what, c.max)
		}
	}
	return nil
}

const (
	sectionTable   = 4
	sectionElement = 9
	sectionTag     = 13
)

// skip skips n bytes.
func (r *reader) skip(n uint64) {
	if r.err == nil && n > uint64(len(r.b)-r.i) {
		r.err = errShort
	}
	if r.err == nil {
		r.i += int(n)
	}
}

// vector reads a vector's length, which must fit in what follows (every
// entry of a vector takes at least a byte) and in max.
func (r *reader) vector(what string, max uint64) uint64 {
	n := uint64(r.u32())
	if r.err == nil && (n > uint64(len(r.b)-r.i) || n > max) {
		r.err = fmt.Errorf("%d %s in %d bytes (at most %d)", n, what, len(r.b)-r.i, max)
	}
	return n
}

// constExpr skips a constant expression: instructions up to end.
func (r *reader) constExpr() {
	for r.err == nil {
		if r.i >= len(r.b) {
			r.err = errShort
			return
		}
		op, next, err := instr(r.b, r.i)
		if err != nil {
			r.err = err
			return
		}
		r.i = next
		if op == opEnd {
			return
		}
	}
}

// element skips an element segment, of any of its eight forms.
func (r *reader) element() {
	flags := r.u32()
	if r.err == nil && flags > 7 {
		r.err = fmt.Errorf("an element segment of kind %d", flags)
		return
	}
	if flags&2 != 0 && flags&1 == 0 {
		r.u32() // the table
	}
	if flags&1 == 0 {
		r.constExpr() // the offset
	}
	if flags&3 != 0 {
		r.byte() // the element kind, or the reference type
	}
	n := r.vector("elements", MaxTableSize)
	for ; n > 0 && r.err == nil; n-- {
		if flags&4 != 0 {
			r.constExpr()
		} else {
			r.u32()
		}
	}
}

// body skips a function body, after checking its size and its locals.
func (r *reader) body() {
	size := uint64(r.u32())
	if r.err == nil && (size > uint64(len(r.b)-r.i) || size > MaxFunctionBytes) {
		r.err = fmt.Errorf("a function body of %d bytes in %d (at most %d)", size, len(r.b)-r.i, MaxFunctionBytes)
		return
	}
	end := r.i + int(size)
	b := &reader{b: r.b[:end], i: r.i}
	var locals uint64
	for n := b.vector("local declarations", MaxLocals); n > 0 && b.err == nil; n-- {
		locals += uint64(b.u32())
		b.byte()
		if b.err == nil && locals > MaxLocals {
			b.err = fmt.Errorf("%d locals (at most %d)", locals, MaxLocals)
		}
	}
	if b.err != nil {
		r.err = b.err
		return
	}
	r.i = end
}

// MaxTableGrowth is how far CapTables lets a table grow: to this many
// elements, or its initial size if that is larger.
const MaxTableGrowth = 1 << 20

// CapTables returns wasm with every table it defines capped at the larger
// of its initial size and MaxTableGrowth elements, or at its own maximum
// if that is lower. A table with no maximum may otherwise be grown by the
// guest (table.grow) as far as the runtime allows: wazero v1.12 grew one to
// 2^31 - 1 elements, 16 GB, for one instruction of the guest's, where a
// browser stops at 10,000,000. Go's linker declares its table with no
// maximum. An element takes 8 bytes of the host's memory, outside the
// instance's linear memory and its limit, so the cap bounds that at 8 MiB
// beyond what the module declares up front.
//
// It returns wasm itself, and false, when no table needs a cap, and an
// error for a module whose table section it cannot read.
func CapTables(wasm []byte) ([]byte, bool, error) {
	sections, err := readSections(wasm)
	if err != nil {
		return nil, false, err
	}
	for _, s := range sections {
		if s.id != sectionTable {
			continue
		}
		r := &reader{b: wasm[:s.end], i: s.start}
		n := r.vector("tables", MaxTables)
		out := appendU32(make([]byte, 0, s.end-s.start+int(n)*5), uint32(n))
		changed := false
		for ; n > 0 && r.err == nil; n-- {
			typ, flags := r.byte(), r.byte()
			min := r.u32()
			max, hasMax := uint32(0), flags&1 != 0
			if hasMax {
				max = r.u32()
			}
			if r.err == nil && flags&^1 != 0 {
				return nil, false, fmt.Errorf("malformed module: a table with limits of kind %#x", flags)
			}
			limit := uint32(MaxTableGrowth)
			if min > limit {
				limit = min
			}
			if !hasMax || max > limit {
				max, changed = limit, true
			}
			out = appendU32(append(out, typ, 1), min)
			out = appendU32(out, max)
		}
		if r.err == nil && r.i != s.end {
			r.err = errors.New("trailing bytes")
		}
		if r.err != nil {
			return nil, false, fmt.Errorf("malformed module: table section: %w", r.err)
		}
		if !changed {
			return wasm, false, nil
		}
		b := make([]byte, 0, len(wasm)+len(out)-(s.end-s.start)+5)
		b = append(b, wasm[:s.start-sizeLen(wasm, s)]...)
		b = appendU32(b, uint32(len(out)))
		b = append(b, out...)
		return append(b, wasm[s.end:]...), true, nil
	}
	return wasm, false, nil
}

// sizeLen is how many bytes the size of section s takes before its
// contents.
func sizeLen(wasm []byte, s section) int {
	n := 1
	for i := s.start - 2; i >= 0 && wasm[i]&0x80 != 0; i-- {
		n++
	}
	return n
}
