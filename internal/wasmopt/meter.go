package wasmopt

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// MeterStop is the export Meter adds: a mutable i32 global that stops the
// module's code once it is set to a non-zero value.
const MeterStop = "roam.meter.stop"

// MeterStart is the export Meter makes of a module's start function, which
// it takes out of the module's start section: a start function runs while
// the module is instantiated, before the host can reach MeterStop, so the
// host calls it instead, as the first export call of each instance.
const MeterStart = "roam.meter.start"

// DefaultFuel is how many loop iterations and function entries a metered
// module runs between two exits to the host (see Meter). An iteration of a
// Go guest's loop is a few nanoseconds, so this is an exit every few tens of
// microseconds: the longest the host's garbage collector can wait for a
// guest, and about how late a stop takes effect.
const DefaultFuel = 10000

const (
	sectionCustom   = 0
	sectionType     = 1
	sectionImport   = 2
	sectionFunction = 3
	sectionMemory   = 5
	sectionGlobal   = 6
	sectionStart    = 8
	sectionCode     = 10

	opUnreachable = 0x00
	opLoop        = 0x03
	opIf          = 0x04
	opDrop        = 0x1a
	opGlobalGet   = 0x23
	opGlobalSet   = 0x24
	opMemoryGrow  = 0x40
	opI32Eqz      = 0x45
	opI32Sub      = 0x6b
	blockEmpty    = 0x40
	typeI32       = 0x7f
)

// Meter returns a copy of wasm whose code can be stopped from outside and
// gives the host's Go scheduler a way in, without the runtime's help.
//
// A runtime that compiles wasm to machine code cannot preempt it: a guest
// in a loop that never calls out holds its goroutine, and a garbage
// collection's stop-the-world waits for it, and with it the whole process.
// wazero's answer (WithCloseOnContextDone) is to call back into Go at every
// loop header, which costs a Go guest, whose every function opens with a
// loop, more than half its time. Meter puts the check in the module
// instead, where it is a decrement and a branch:
//
//   - every loop header, and the entry of every function that may return
//     without passing one, counts down a new global from fuel;
//   - when it reaches zero it is refilled, and the code runs memory.grow 0,
//     which changes nothing but is compiled as a call into the runtime's Go
//     code, where the goroutine can be preempted;
//   - it then reads the exported global MeterStop, and traps (unreachable)
//     if the host has set it.
//
// Any run of code without a loop or a call is finite, so between two checks
// a guest runs a bounded amount of code. The host sets MeterStop from
// another goroutine to stop a call; the trap that follows leaves the
// instance's state undefined, as any trap does, so the instance must be
// discarded.
//
// A start function becomes the export MeterStart. Debug sections
// (".debug_*") are dropped: they address the code by offset, which the
// inserted checks move.
//
// Meter returns an error for a module it cannot read, one without a linear
// memory, one that already exports MeterStop or MeterStart, and one that
// names a global it does not have or a start function of a type other than
// [] -> []: such a module is invalid, and must stay so once metered, or it
// could set the globals Meter adds.
func Meter(wasm []byte, fuel uint32) ([]byte, error) {
	if fuel == 0 || fuel > 1<<31-1 {
		return nil, fmt.Errorf("meter: fuel %d out of range", fuel)
	}
	sections, err := readSections(wasm)
	if err != nil {
		return nil, err
	}
	var importedGlobals, definedGlobals uint32
	hasMemory := false
	var types [][2]uint32  // parameters and results of each type
	var funcTypes []uint32 // of each function, imported ones first
	var exportSec []byte
	start, hasStart := uint32(0), false
	for _, s := range sections {
		r := reader{b: wasm[:s.end], i: s.start}
		switch s.id {
		case sectionType:
			if types, err = readTypes(&r); err != nil {
				return nil, err
			}
		case sectionImport:
			imports, err := readImports(&r, &funcTypes)
			if err != nil {
				return nil, err
			}
			for _, im := range imports {
				switch im.Kind {
				case ImportGlobal:
					importedGlobals++
				case ImportMemory:
					hasMemory = true
				}
			}
		case sectionFunction:
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				funcTypes = append(funcTypes, r.u32())
			}
		case sectionMemory:
			hasMemory = hasMemory || r.u32() > 0
		case sectionGlobal:
			definedGlobals = r.u32()
		case sectionExport:
			exportSec = wasm[s.start:s.end:s.end]
		case sectionStart:
			// Meter drops the section: what would make it invalid must
			// still be refused.
			if start, hasStart = r.u32(), true; r.err == nil && r.i != s.end {
				r.err = errors.New("trailing bytes")
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("malformed module: section %d: %w", s.id, r.err)
		}
	}
	if !hasMemory {
		return nil, errors.New("meter: the module has no linear memory")
	}
	fuelG := importedGlobals + definedGlobals
	stopG := fuelG + 1
	if exportSec != nil {
		if err := checkExports(exportSec, fuelG); err != nil {
			return nil, err
		}
	}
	if hasStart {
		if uint64(start) >= uint64(len(funcTypes)) || uint64(funcTypes[start]) >= uint64(len(types)) {
			return nil, fmt.Errorf("malformed module: start function %d does not exist", start)
		}
		if t := types[funcTypes[start]]; t != [2]uint32{} {
			return nil, fmt.Errorf("malformed module: start function %d has %d parameters and %d results, want none", start, t[0], t[1])
		}
	}
	check := appendCheck(nil, fuel, fuelG, stopG)

	out := make([]byte, 0, len(wasm)+len(wasm)/4)
	out = append(out, wasm[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	newGlobals := func(prefix []byte, n uint32) []byte {
		b := appendU32(nil, n+2)
		b = append(b, prefix...)
		for _, v := range []uint32{fuel, 0} {
			b = append(b, typeI32, 1, opI32Const)
			b = appendS32(b, int32(v))
			b = append(b, opEnd)
		}
		return b
	}
	newExport := func(prefix []byte, n uint32) []byte {
		add := func(b []byte, name string, kind byte, idx uint32) []byte {
			b = appendU32(b, uint32(len(name)))
			b = append(b, name...)
			b = append(b, kind) // an export's kind byte is an import's
			return appendU32(b, idx)
		}
		b := appendU32(nil, n+1)
		if hasStart {
			b = appendU32(nil, n+2)
		}
		b = append(b, prefix...)
		b = add(b, MeterStop, ImportGlobal, stopG)
		if hasStart {
			b = add(b, MeterStart, ImportFunction, start)
		}
		return b
	}
	wroteGlobals, wroteExport := false, false
	// Sections a module lacks are added where their order puts them.
	pending := func(id byte) {
		if !wroteGlobals && order(id) > order(sectionGlobal) {
			emit(sectionGlobal, newGlobals(nil, 0))
			wroteGlobals = true
		}
		if !wroteExport && order(id) > order(sectionExport) {
			emit(sectionExport, newExport(nil, 0))
			wroteExport = true
		}
	}
	for _, s := range sections {
		payload := wasm[s.start:s.end]
		if s.id != sectionCustom {
			pending(s.id)
		}
		switch s.id {
		case sectionCustom:
			r := reader{b: payload}
			n := r.u32()
			if r.err == nil && int(n) <= len(payload)-r.i && hasPrefix(payload[r.i:r.i+int(n)], ".debug_") {
				continue
			}
		case sectionGlobal:
			r := reader{b: payload}
			n := r.u32()
			payload = newGlobals(payload[r.i:], n)
			wroteGlobals = true
		case sectionExport:
			r := reader{b: payload}
			n := r.u32()
			payload = newExport(payload[r.i:], n)
			wroteExport = true
		case sectionStart:
			continue
		case sectionCode:
			// Written into out directly: it is most of the module.
			out = append(out, sectionCode, 0x80, 0x80, 0x80, 0x80, 0)
			at := len(out)
			parts := min(runtime.GOMAXPROCS(0), len(payload)/(512<<10)+1)
			if out, err = meterCode(out, payload, check, fuelG, parts); err != nil {
				return nil, err
			}
			putPaddedU32(out[at-5:], uint32(len(out)-at))
			continue
		}
		emit(s.id, payload)
	}
	pending(0xff)
	return out, nil
}

// appendCheck appends the check Meter inserts:
//
//	global.get fuel; i32.const 1; i32.sub; global.set fuel
//	global.get fuel; i32.eqz
//	if
//	  i32.const <fuel>; global.set fuel
//	  i32.const 0; memory.grow 0; drop
//	  global.get stop; if unreachable end
//	end
//
// The decrement comes first so that the test reads the value just stored
// (wazero then loads the global once per check, not twice).
func appendCheck(b []byte, fuel, fuelG, stopG uint32) []byte {
	get := func(b []byte, g uint32) []byte { return appendU32(append(b, opGlobalGet), g) }
	set := func(b []byte, g uint32) []byte { return appendU32(append(b, opGlobalSet), g) }
	b = get(b, fuelG)
	b = append(b, opI32Const, 1, opI32Sub)
	b = set(b, fuelG)
	b = get(b, fuelG)
	b = append(b, opI32Eqz, opIf, blockEmpty, opI32Const)
	b = appendS32(b, int32(fuel))
	b = set(b, fuelG)
	b = append(b, opI32Const, 0, opMemoryGrow, 0, opDrop)
	b = get(b, stopG)
	return append(b, opIf, blockEmpty, opUnreachable, opEnd, opEnd)
}

// order is a section's rank in the order the binary format requires.
func order(id byte) int {
	switch id {
	case 13: // tag, between memory and global
		return 55
	case 12: // data count, before code
		return 95
	case 0xff:
		return 1000
	}
	return int(id) * 10
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// Import is one import of a module: where it comes from, and its kind
// (ImportFunction, ...).
type Import struct {
	Module, Name string
	Kind         byte
}

// The kinds of import.
const (
	ImportFunction byte = iota
	ImportTable
	ImportMemory
	ImportGlobal
	ImportTag
)

// Imports returns the imports of wasm in order. Of a module it cannot read
// to the end, it returns those it read before, with the error.
func Imports(wasm []byte) ([]Import, error) {
	sections, err := readSections(wasm)
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		if s.id == sectionImport {
			return readImports(&reader{b: wasm[:s.end], i: s.start}, nil)
		}
	}
	return nil, nil
}

// readImports reads an import section, and appends the type of each
// imported function to funcTypes if it is not nil.
func readImports(r *reader, funcTypes *[]uint32) ([]Import, error) {
	var out []Import
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		mod, name := r.name(), r.name()
		kind := r.byte()
		switch kind {
		case ImportFunction:
			if t := r.u32(); funcTypes != nil {
				*funcTypes = append(*funcTypes, t)
			}
		case ImportTable:
			r.byte()
			r.limits()
		case ImportMemory:
			r.limits()
		case ImportGlobal:
			r.byte()
			r.byte()
		case ImportTag:
			r.byte()
			r.u32()
		default:
			return out, fmt.Errorf("malformed module: import of unknown kind %d", kind)
		}
		if r.err == nil {
			out = append(out, Import{string(mod), string(name), kind})
		}
	}
	if r.err != nil {
		return out, fmt.Errorf("malformed module: import section: %w", r.err)
	}
	return out, nil
}

// checkExports checks an export section for what Meter refuses: an export
// of one of the names it adds, or of a global it adds (index globals or
// above, which the module itself does not have).
func checkExports(sec []byte, globals uint32) error {
	r := reader{b: sec}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		name := r.name()
		kind := r.byte()
		idx := r.u32()
		switch {
		case r.err != nil:
		case string(name) == MeterStop || string(name) == MeterStart:
			return fmt.Errorf("meter: the module already exports %q", name)
		case kind == ImportGlobal && idx >= globals:
			return fmt.Errorf("malformed module: export %q of global %d, of %d", name, idx, globals)
		}
	}
	if r.err == nil && r.i != len(sec) {
		// Meter rewrites the section: what follows its last export must
		// not become part of one.
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return fmt.Errorf("malformed module: export section: %w", r.err)
	}
	return nil
}

// readTypes reads a type section: how many parameters and results each
// type has, within the limits of CheckLimits.
func readTypes(r *reader) ([][2]uint32, error) {
	var out [][2]uint32
	for n := r.vector("types", MaxTypes); n > 0 && r.err == nil; n-- {
		if form := r.byte(); form != 0x60 && r.err == nil {
			r.err = fmt.Errorf("type of form %#x", form)
			break
		}
		params := r.vector("parameters", MaxParams)
		r.skip(params) // value types are one byte each
		results := r.vector("results", MaxResults)
		r.skip(results)
		out = append(out, [2]uint32{uint32(params), uint32(results)})
	}
	if r.err != nil {
		return nil, fmt.Errorf("malformed module: type section: %w", r.err)
	}
	return out, nil
}

// meterCode rewrites a code section into out, inserting check after every
// loop header and at the entry of every function whose code may return
// without passing a loop header (countedByLoop). It is on the path of every
// start of a host (about 12 ms for a 5 MB Go module on one CPU), so it
// copies each body once, in runs between the points it inserts at, with a
// body's size written as a padded five-byte LEB128 (the binary format
// allows it) and filled in after, and it splits a large section among the
// CPUs: the bodies are independent.
func meterCode(out, p, check []byte, globals uint32, parts int) ([]byte, error) {
	r := reader{b: p}
	n := r.u32()
	bodies := make([][2]int, 0, min(int(n), len(p))) // where each body lies in p
	for f := range n {
		size := r.u32()
		if r.err != nil || uint64(r.i)+uint64(size) > uint64(len(p)) {
			return nil, fmt.Errorf("malformed module: code of function %d overruns its section", f)
		}
		bodies = append(bodies, [2]int{r.i, r.i + int(size)})
		r.i += int(size)
	}
	if r.err != nil {
		return nil, fmt.Errorf("malformed module: code section: %w", r.err)
	}
	if r.i != len(p) {
		return nil, errors.New("malformed module: code section has trailing bytes")
	}
	out = appendU32(out, n)
	if parts = min(parts, len(bodies)); parts <= 1 {
		return meterBodies(out, p, bodies, 0, check, globals)
	}
	// Part k takes the bodies that start in its share of the bytes.
	outs := make([][]byte, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	first := 0
	for k := range parts {
		last := first
		for last < len(bodies) && (k == parts-1 || bodies[last][0] < len(p)*(k+1)/parts) {
			last++
		}
		from, to := first, last
		wg.Go(func() {
			outs[k], errs[k] = meterBodies(nil, p, bodies[from:to], from, check, globals)
		})
		first = last
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, o := range outs {
		out = append(out, o...)
	}
	return out, nil
}

// meterBodies appends the metered bodies, of which the first is function
// number first of the section, each after its size.
func meterBodies(out, p []byte, bodies [][2]int, first int, check []byte, globals uint32) ([]byte, error) {
	for i, b := range bodies {
		at := len(out)
		out = append(out, 0x80, 0x80, 0x80, 0x80, 0)
		var err error
		if out, err = meterBody(out, p[b[0]:b[1]], check, globals); err != nil {
			return nil, fmt.Errorf("malformed module: code of function %d: %w", first+i, err)
		}
		putPaddedU32(out[at:], uint32(len(out)-at-5))
	}
	return out, nil
}

// putPaddedU32 writes v as a five-byte LEB128.
func putPaddedU32(b []byte, v uint32) {
	for i := range 4 {
		b[i] = byte(v&0x7f) | 0x80
		v >>= 7
	}
	b[4] = byte(v)
}

// meterBody appends a metered body. A global.get or global.set of a global
// the module does not have (index globals or above) is an error: the module
// is invalid, and once metered it would reach the globals Meter adds.
func meterBody(out, body, check []byte, globals uint32) ([]byte, error) {
	r := reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	code := body[r.i:]
	out = append(out, body[:r.i]...)
	if !countedByLoop(code) {
		out = append(out, check...)
	}
	from := 0
	for i := 0; i < len(code); {
		// Most instructions take nothing, or one or two integers under 128
		// (local.get 3, i64.load offset=8): decoded here, they skip instr's
		// call.
		switch immediates[code[i]] {
		case immNone:
			i++
			continue
		case immU32, immS64:
			if i+1 < len(code) && code[i+1] < 0x80 {
				i += 2
				continue
			}
		case immU32x2:
			if i+2 < len(code) && code[i+1] < 0x80 && code[i+2] < 0x80 {
				i += 3
				continue
			}
		case immGlobal:
			if i+1 < len(code) && code[i+1] < 0x80 && uint32(code[i+1]) < globals {
				i += 2
				continue
			}
		}
		op, next, err := instr(code, i)
		if err != nil {
			return nil, fmt.Errorf("at byte %d: %w", r.i+i, err)
		}
		if op == opGlobalGet || op == opGlobalSet {
			if g := (&reader{b: code[:next], i: i + 1}).u32(); g >= globals {
				return nil, fmt.Errorf("at byte %d: global %d, of %d", r.i+i, g, globals)
			}
		}
		i = next
		if op == opLoop {
			out = append(out, code[from:i]...)
			out = append(out, check...)
			from = i
		}
	}
	return append(out, code[from:]...), nil
}

// countedByLoop reports whether every run of a function's code that
// returns passes a loop header: that loop's check then counts the call, and
// the entry needs none. Go's functions that make calls are one such loop
// inside a block, after a stack check. A call made before the loop is
// counted by the callee's own checks, so even a call tree that recurses
// before reaching the loop is counted, one check per call.
//
// A loop qualifies when it is reached in order and nothing before it can
// jump past it: no return, no branch to the end of a block that encloses
// it, and no enclosing if. A function with no loop and no call needs no
// check either: it runs at most its own length, and its callers count it.
func countedByLoop(code []byte) bool {
	type open struct{ loop, cond, skipped bool }
	stack := []open{{}} // the function's own block, then those open in it
	sawCall := false
	target := func(label uint32) {
		if uint64(label) < uint64(len(stack)) {
			if o := &stack[len(stack)-1-int(label)]; !o.loop {
				o.skipped = true
			}
		}
	}
	for i := 0; i < len(code); {
		op, next, err := instr(code, i)
		if err != nil {
			return false
		}
		switch op {
		case opLoop:
			if !slices.ContainsFunc(stack, func(o open) bool { return o.cond || o.skipped }) {
				return true
			}
			stack = append(stack, open{loop: true})
		case opBlock:
			stack = append(stack, open{})
		case opIf:
			stack = append(stack, open{cond: true})
		case opEnd:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 { // the function's end
				return !sawCall
			}
		case opBr, opBrIf:
			r := reader{b: code[:next], i: i + 1}
			target(r.u32())
		case opBrTable:
			r := reader{b: code[:next], i: i + 1}
			for n := uint64(r.u32()) + 1; n > 0 && r.err == nil; n-- {
				target(r.u32())
			}
		case opReturn, opReturnCall, opReturnCallIndirect:
			// A tail call is a call too, and one the stack does not bound:
			// f: return_call f runs for ever without growing it.
			return !calls(code[next:], sawCall || op != opReturn)
		case opCall, opCallIndirect:
			sawCall = true
		}
		i = next
	}
	return !sawCall
}

// calls reports whether code makes a call, or saw is already true.
func calls(code []byte, saw bool) bool {
	for i := 0; !saw && i < len(code); {
		op, next, err := instr(code, i)
		if err != nil {
			return true
		}
		saw = op == opCall || op == opCallIndirect || op == opReturnCall || op == opReturnCallIndirect
		i = next
	}
	return saw
}

const (
	opBlock              = 0x02
	opBr                 = 0x0c
	opBrIf               = 0x0d
	opBrTable            = 0x0e
	opReturn             = 0x0f
	opCall               = 0x10
	opCallIndirect       = 0x11
	opReturnCall         = 0x12
	opReturnCallIndirect = 0x13
)

// The immediates an instruction takes, by its first byte.
const (
	immBad = iota
	immNone
	immBlock  // a block type
	immU32    // one LEB128
	immU32x2  // two
	immGlobal // global.get and global.set: a global's index
	immTable  // br_table: a vector of labels and a default
	immSelect // select t*: a vector of value types
	immS64    // a signed LEB128 of up to 64 bits
	immF32
	immF64
	immByte
	immFC
	immFD
	immFE
)

var immediates = func() (t [256]uint8) {
	set := func(kind uint8, ops ...int) {
		for _, op := range ops {
			t[op] = kind
		}
	}
	span := func(kind uint8, from, to int) {
		for op := from; op <= to; op++ {
			t[op] = kind
		}
	}
	set(immNone, 0x00, 0x01, 0x05, 0x0b, 0x0f, 0x1a, 0x1b, 0xd1)
	span(immNone, 0x45, 0xc4) // numeric, sign extension
	set(immBlock, 0x02, 0x03, 0x04)
	set(immU32, 0x0c, 0x0d, 0x10, 0x12, 0x3f, 0x40, 0xd2)
	span(immU32, 0x20, 0x26) // locals, globals, table.get and table.set
	set(immGlobal, opGlobalGet, opGlobalSet)
	set(immU32x2, 0x11, 0x13)
	span(immU32x2, 0x28, 0x3e) // loads and stores: a memarg
	set(immTable, 0x0e)
	set(immSelect, 0x1c)
	set(immS64, 0x41, 0x42)
	set(immF32, 0x43)
	set(immF64, 0x44)
	set(immByte, 0xd0)
	set(immFC, 0xfc)
	set(immFD, 0xfd)
	set(immFE, 0xfe)
	return t
}()

// instr decodes the instruction at code[i]: its opcode (prefixed ones as
// 0xfc00 | sub-opcode and so on) and where the next one starts. It knows
// the instructions of WebAssembly 2.0, tail calls and threads, and checks
// no more than it needs to find their ends: the runtime validates.
func instr(code []byte, i int) (op uint32, next int, err error) {
	op = uint32(code[i])
	i++
	switch immediates[op] {
	case immNone:
		return op, i, nil
	case immU32, immGlobal:
		i, err = skipLEB(code, i, 5)
	case immU32x2:
		if i, err = skipLEB(code, i, 5); err == nil {
			i, err = skipLEB(code, i, 5)
		}
	case immBlock:
		if i < len(code) && (code[i] == blockEmpty || (code[i] >= 0x6f && code[i] <= 0x7f)) {
			i++ // empty or a value type; else a type index as an s33
		} else {
			i, err = skipLEB(code, i, 5)
		}
	case immS64:
		i, err = skipLEB(code, i, 10)
	case immF32:
		i += 4
	case immF64:
		i += 8
	case immByte:
		i++
	case immTable, immSelect:
		r := reader{b: code, i: i}
		n := uint64(r.u32())
		if op == opBrTable {
			n++
		}
		for ; n > 0 && r.err == nil; n-- {
			if op == opBrTable {
				r.u32()
			} else {
				r.byte()
			}
		}
		i, err = r.i, r.err
	case immFC, immFD, immFE:
		r := reader{b: code, i: i}
		sub := r.u32()
		if r.err != nil {
			return 0, 0, r.err
		}
		op = op<<8 | sub
		i, err = prefixed(code, r.i, op)
	default:
		return 0, 0, fmt.Errorf("unknown instruction %#x", op)
	}
	if err == nil && i > len(code) {
		err = errShort
	}
	return op, i, err
}

// prefixed skips the immediates of a prefixed instruction.
func prefixed(code []byte, i int, op uint32) (int, error) {
	sub, lebs, bytes := op&0xff, 0, 0
	switch op >> 8 {
	case 0xfc:
		switch {
		case sub <= 7: // saturating truncations
		case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
			lebs = 1
		case sub == 8, sub == 10, sub == 12, sub == 14:
			lebs = 2
		default:
			return 0, fmt.Errorf("unknown instruction 0xfc %d", sub)
		}
	case 0xfd:
		switch {
		case op&0xffff > 0xfdff:
			return 0, fmt.Errorf("unknown instruction 0xfd %d", op&0xffff-0xfd00)
		case sub <= 11, sub == 92, sub == 93: // loads and stores: a memarg
			lebs = 2
		case sub == 12, sub == 13: // v128.const, i8x16.shuffle
			bytes = 16
		case sub >= 21 && sub <= 34: // lane accesses
			bytes = 1
		case sub >= 84 && sub <= 91: // lane loads and stores
			lebs, bytes = 2, 1
		}
	case 0xfe:
		switch {
		case op&0xffff > 0xfe4e:
			return 0, fmt.Errorf("unknown instruction 0xfe %d", op&0xffff-0xfe00)
		case sub == 3: // atomic.fence
			bytes = 1
		default:
			lebs = 2
		}
	}
	var err error
	for ; lebs > 0 && err == nil; lebs-- {
		i, err = skipLEB(code, i, 5)
	}
	return i + bytes, err
}

// skipLEB returns where the LEB128 integer of at most max bytes at code[i]
// ends.
func skipLEB(code []byte, i, max int) (int, error) {
	for end := min(i+max, len(code)); i < end; i++ {
		if code[i]&0x80 == 0 {
			return i + 1, nil
		}
	}
	if i == len(code) {
		return 0, errShort
	}
	return 0, errors.New("malformed LEB128 integer")
}

func (r *reader) name() []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if int(n) > len(r.b)-r.i {
		r.err = errShort
		return nil
	}
	b := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return b
}

// limits reads a table's or a memory's limits, and returns the minimum.
func (r *reader) limits() uint32 {
	flags := r.byte()
	min := r.u32()
	if flags&1 != 0 {
		r.u32()
	}
	return min
}
