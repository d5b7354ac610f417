package jsonx

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// stopped is the depth of a decoder that stopped: past maxDepth, so that the
// fast paths' depth check also catches a stop.
const stopped = 1 << 30

// What Object and Array found.
const (
	Skip = iota // nothing to store: a type mismatch was recorded, or decoding stopped
	Null        // null was consumed
	Open        // the object or array was opened: iterate with Member or Elem
)

// Decoder decodes one JSON document. Generated code drives it: the zero
// value is not usable; call Init first. A Decoder checks syntax as it goes,
// records the first type mismatch and carries on past it, and stops at the
// first syntax error (or error from an UnmarshalJSON method); Finish reports
// what encoding/json would have.
type Decoder struct {
	data  []byte
	pos   int
	depth int
	stop  error // syntax error, or the error that aborted decoding
	abort bool  // stop is not a syntax error: the rest of the input is unchecked
	saved error // first type mismatch
	buf   []byte
	arena string // a copy of data that decoded strings share (see str)
	nctx  int
	ctx   [8]fieldCtx
	more  []fieldCtx
}

// fieldCtx is one level of encoding/json's error context: the struct type
// whose field is being decoded and the field's JSON name.
type fieldCtx struct{ st, f string }

// Init prepares d to decode data.
func (d *Decoder) Init(data []byte) {
	d.data, d.pos, d.depth = data, 0, 0
	d.stop, d.abort, d.saved = nil, false, nil
	d.nctx, d.arena = 0, ""
}

// arenaMax is the largest input whose strings share one copy of it: one
// allocation for all of a small document's strings instead of one each (an
// allocation is the costliest thing a wasm guest does here), at the price
// of the strings keeping the whole copy alive.
const arenaMax = 4 << 10

// str returns data[start:end], which needs no unescaping, as a string.
func (d *Decoder) str(start, end int) string {
	if start == end {
		return ""
	}
	if len(d.data) > arenaMax {
		return string(d.data[start:end])
	}
	if d.arena == "" {
		d.arena = string(d.data)
	}
	return d.arena[start:end]
}

// Finish checks that only white space follows the decoded value and returns
// the error encoding/json's Unmarshal would return: a syntax error anywhere
// in the input first, then an error from an UnmarshalJSON method, then the
// first type mismatch.
func (d *Decoder) Finish() error {
	if d.pos == len(d.data) && d.stop == nil && d.saved == nil {
		return nil
	}
	return d.finish()
}

func (d *Decoder) finish() error {
	if d.stop == nil {
		if c, ok := d.next(); ok {
			d.syntax(c, "after top-level value")
		}
	}
	if d.abort {
		if err := Valid(d.data); err != nil {
			return err
		}
	}
	if d.stop != nil {
		return d.stop
	}
	return d.saved
}

// Err returns the error that stopped decoding, if any, or the first type
// mismatch so far.
func (d *Decoder) Err() error {
	if d.stop != nil {
		return d.stop
	}
	return d.saved
}

// Abort stops decoding with err, as an error from an UnmarshalJSON method
// stops encoding/json. A syntax error later in the input still wins.
func (d *Decoder) Abort(err error) {
	if d.stop == nil {
		d.stop, d.abort = err, true
		d.depth = stopped
	}
}

// Enter pushes a field onto the error context: the struct type's name (as
// reflect.Type.Name returns it) and the field's JSON name, or the Go name of
// an embedded struct on the way to a promoted field. It returns the depth to
// pass to Leave.
func (d *Decoder) Enter(st, field string) int {
	n := d.nctx
	if n < len(d.ctx) {
		d.ctx[n] = fieldCtx{st, field}
	} else {
		d.enterSlow(n, st, field)
	}
	d.nctx = n + 1
	return n
}

func (d *Decoder) enterSlow(n int, st, field string) {
	d.more = append(d.more[:n-len(d.ctx)], fieldCtx{st, field})
}

// Leave pops the error context back to depth n.
func (d *Decoder) Leave(n int) { d.nctx = n }

func (d *Decoder) ctxAt(i int) fieldCtx {
	if i < len(d.ctx) {
		return d.ctx[i]
	}
	return d.more[i-len(d.ctx)]
}

// typeError records a type mismatch unless one is recorded already.
func (d *Decoder) typeError(value, typ string) {
	if d.saved != nil {
		return
	}
	e := &UnmarshalTypeError{Value: value, Type: typ, Offset: int64(d.pos)}
	d.AddContext(&e.Struct, &e.Field)
	d.saved = e
}

// AddContext does to the Struct and Field of an UnmarshalTypeError (of
// encoding/json, returned by an UnmarshalJSON method) what encoding/json
// does to it: it sets them to the current field context, when there is one.
func (d *Decoder) AddContext(structName, field *string) {
	if d.nctx == 0 {
		return
	}
	*structName = d.ctxAt(d.nctx - 1).st
	var sb strings.Builder
	for i := 0; i < d.nctx; i++ {
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(d.ctxAt(i).f)
	}
	if *field != "" {
		sb.WriteByte('.')
		sb.WriteString(*field)
	}
	*field = sb.String()
}

// Save records err as a decoding error that does not stop decoding (as
// encoding/json saves a base64 error), unless an error is recorded already.
func (d *Decoder) Save(err error) {
	if d.saved == nil {
		d.saved = err
	}
}

// MapKeyError records a map key that does not parse as the map's integer key
// type.
func (d *Decoder) MapKeyError(key, typ string) { d.typeError("number "+key, typ) }

func (d *Decoder) syntax(c byte, context string) {
	if d.stop == nil {
		d.stop = syntaxError(c, context, d.pos+1)
		d.depth = stopped
	}
}

func (d *Decoder) eof() {
	if d.stop == nil {
		d.stop = eofError(len(d.data))
		d.depth = stopped
	}
}

// errAt reports a syntax error at i, or, at the end of the input, the error
// encoding/json's scanner reports there: its end-of-input step feeds it a
// space, which a literal, a number or an escape in progress rejects.
func (d *Decoder) errAt(i int, context string) {
	d.pos = i
	if i >= len(d.data) {
		d.syntax(' ', context)
		return
	}
	d.syntax(d.data[i], context)
}

// next skips white space and returns the next byte; ok is false at the end of
// the input.
func (d *Decoder) next() (c byte, ok bool) {
	for d.pos < len(d.data) {
		c = d.data[d.pos]
		if c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, true
		}
		d.pos++
	}
	return 0, false
}

// valueStart marks the bytes that begin a JSON value.
var valueStart = [256]bool{'{': true, '[': true, '"': true, '-': true, 't': true, 'f': true, 'n': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true}

// begin skips white space and returns the first byte of the next value, or 0
// after recording a syntax error (or when decoding has stopped).
func (d *Decoder) begin() byte {
	if d.stop != nil {
		return 0
	}
	c, ok := d.next()
	if !ok {
		d.eof()
		return 0
	}
	if valueStart[c] {
		return c
	}
	d.syntax(c, "looking for beginning of value")
	return 0
}

// mismatch records that the value starting with c does not fit typ, and
// skips it.
func (d *Decoder) mismatch(c byte, typ string) {
	var v string
	switch c {
	case '{':
		v = "object"
	case '[':
		v = "array"
	case '"':
		v = "string"
	case 't', 'f':
		v = "bool"
	case 'n':
		v = "null"
	default:
		v = "number"
	}
	d.typeError(v, typ)
	d.skipValue()
}

// other handles a value that is not what the caller looks for: null is
// consumed and ignored, anything else is a mismatch.
func (d *Decoder) other(c byte, typ string) {
	switch c {
	case 0:
	case 'n':
		d.literal("null")
	default:
		d.mismatch(c, typ)
	}
}

// Object starts decoding an object into a value of type typ (a struct or a
// map; typ is for messages). It returns Open when it consumed '{', Null when
// it consumed null, and Skip otherwise (a mismatch was recorded and the value
// skipped, or decoding stopped).
func (d *Decoder) Object(typ string) int {
	if i := d.pos; i < len(d.data) && d.data[i] == '{' && d.depth < maxDepth {
		d.pos = i + 1
		d.depth++
		return Open
	}
	return d.openSlow('{', typ)
}

// Array is Object for arrays and slices.
func (d *Decoder) Array(typ string) int {
	if i := d.pos; i < len(d.data) && d.data[i] == '[' && d.depth < maxDepth {
		d.pos = i + 1
		d.depth++
		return Open
	}
	return d.openSlow('[', typ)
}

func (d *Decoder) open(want byte, typ string) int {
	if i := d.pos; i < len(d.data) && d.data[i] == want && d.stop == nil && d.depth < maxDepth {
		d.pos = i + 1
		d.depth++
		return Open
	}
	return d.openSlow(want, typ)
}

// End consumes the '}' that ends an object when it comes next, without
// white space before it, and reports whether it did: the fast path for the
// end of an object whose members all came in order. When End reports false,
// nothing was consumed: use Member.
func (d *Decoder) End() bool {
	if i := d.pos; i < len(d.data) && d.data[i] == '}' && d.stop == nil {
		d.pos = i + 1
		d.depth--
		return true
	}
	return false
}

func (d *Decoder) openSlow(want byte, typ string) int {
	c := d.begin()
	switch c {
	case want:
		d.pos++
		d.depth++
		if d.depth > maxDepth {
			d.pos--
			d.syntax(c, "exceeded max depth")
			return Skip
		}
		return Open
	case 'n':
		if d.literal("null") {
			return Null
		}
		return Skip
	case 0:
		return Skip
	}
	d.mismatch(c, typ)
	return Skip
}

// Member reads the next member's key and the colon after it, in an object
// Object opened. first must point to a variable set to true before the first
// call. At the end of the object (or when decoding stopped) it returns false.
// The key is unquoted; it is valid until the next call on d.
func (d *Decoder) Member(first *bool) ([]byte, bool) {
	// Fast path: compact JSON and a plain ASCII key, checked eight bytes at a
	// time. Anything else takes the slow path from the start.
	data, i := d.data, d.pos
	if d.stop == nil && i < len(data) && data[i] == '}' {
		d.pos++
		d.depth--
		return nil, false
	}
	if d.stop == nil && i+10 <= len(data) {
		c := data[i]
		if c == ',' && !*first {
			i++
			c = data[i]
		}
		if c == '"' && (i > d.pos) != *first {
			j := i + 1
			m := decodeMask(load64(data, j))
			for m == 0 && j+16 <= len(data) {
				j += 8
				m = decodeMask(load64(data, j))
			}
			if m != 0 {
				j += firstFlagged(m)
				if data[j] == '"' && j+1 < len(data) && data[j+1] == ':' {
					*first = false
					d.pos = j + 2
					return data[i+1 : j], true
				}
			}
		}
	}
	return d.member(first)
}

// Key consumes lit, a member's key as compact JSON writes it with the comma
// before it (`,"name":`), when it comes next; for the first member (first
// is true) without the comma. It is the generated code's fast path for JSON
// written by a Go struct of the same type: compact, members in declaration
// order. When Key reports false, nothing was consumed: use Member.
func (d *Decoder) Key(lit string, first bool) bool {
	if first {
		lit = lit[1:]
	}
	i := d.pos
	if len(d.data)-i < len(lit) || d.stop != nil || !equalLit(d.data[i:i+len(lit)], lit) {
		return false
	}
	d.pos = i + len(lit)
	return true
}

// KeyString is Key followed by a string value that needs no unescaping
// (plain ASCII), which it stores in *dst. When the member is not exactly
// that, it consumes nothing and reports false.
func (d *Decoder) KeyString(lit string, first bool, dst *string) bool {
	if first {
		lit = lit[1:]
	}
	data, i := d.data, d.pos
	j := i + len(lit)
	if j+9 > len(data) || d.stop != nil || data[j] != '"' || !equalLit(data[i:j], lit) {
		return false
	}
	k := j + 1
	m := decodeMask(load64(data, k))
	for m == 0 && k+16 <= len(data) {
		k += 8
		m = decodeMask(load64(data, k))
	}
	if m == 0 {
		return false
	}
	k += firstFlagged(m)
	if data[k] != '"' {
		return false
	}
	*dst = d.str(j+1, k)
	d.pos = k + 1
	return true
}

// KeyUint is Key followed by a non-negative integer of at most 18 digits, no
// more than max, which it returns. When the member is not exactly that, it
// consumes nothing and reports false.
func (d *Decoder) KeyUint(lit string, first bool, max uint64) (uint64, bool) {
	if first {
		lit = lit[1:]
	}
	data, i := d.data, d.pos
	j := i + len(lit)
	if j+1 >= len(data) || d.stop != nil || !equalLit(data[i:j], lit) {
		return 0, false
	}
	k := j
	var n uint64
	for k < len(data) && k-j < 18 && '0' <= data[k] && data[k] <= '9' {
		n = n*10 + uint64(data[k]-'0')
		k++
	}
	if k == j || k == len(data) || data[j] == '0' && k > j+1 || n > max {
		return 0, false
	}
	if c := data[k]; c == '.' || c == 'e' || c == 'E' || '0' <= c && c <= '9' {
		return 0, false
	}
	d.pos = k
	return n, true
}

// KeyBool is Key followed by true or false.
func (d *Decoder) KeyBool(lit string, first bool) (v, ok bool) {
	if first {
		lit = lit[1:]
	}
	data, i := d.data, d.pos
	j := i + len(lit)
	if j+5 > len(data) || d.stop != nil || !equalLit(data[i:j], lit) {
		return false, false
	}
	if string(data[j:j+4]) == "true" {
		d.pos = j + 4
		return true, true
	}
	if j+5 < len(data) && string(data[j:j+5]) == "false" {
		d.pos = j + 5
		return false, true
	}
	return false, false
}

// equalLit reports whether b == s, for len(b) == len(s) >= 4, a word at a
// time.
func equalLit(b []byte, s string) bool {
	n := len(s)
	if n >= 8 {
		for i := 0; i+8 < n; i += 8 {
			if load64(b, i) != load64s(s, i) {
				return false
			}
		}
		return load64(b, n-8) == load64s(s, n-8)
	}
	if n >= 4 {
		return load32(b, 0) == load32s(s, 0) && load32(b, n-4) == load32s(s, n-4)
	}
	return string(b) == s
}

func (d *Decoder) member(first *bool) ([]byte, bool) {
	if d.stop != nil {
		return nil, false
	}
	c, ok := d.next()
	if !ok {
		d.eof()
		return nil, false
	}
	if c == '}' {
		// '}' may also follow a ',' that follows no member: the scanner
		// rejects that as not the beginning of a key.
		d.pos++
		d.depth--
		return nil, false
	}
	if *first {
		*first = false
	} else {
		if c != ',' {
			d.syntax(c, "after object key:value pair")
			return nil, false
		}
		d.pos++
		if c, ok = d.next(); !ok {
			d.eof()
			return nil, false
		}
	}
	if c != '"' {
		d.syntax(c, "looking for beginning of object key string")
		return nil, false
	}
	key, ok := d.readString()
	if !ok {
		return nil, false
	}
	if c, ok = d.next(); !ok {
		d.eof()
		return nil, false
	}
	if c != ':' {
		d.syntax(c, "after object key")
		return nil, false
	}
	d.pos++
	return key, true
}

// Elem reports whether another element follows in an array Array opened,
// consuming the comma before it. first is as for Member.
func (d *Decoder) Elem(first *bool) bool {
	if d.stop != nil {
		return false
	}
	c, ok := d.next()
	if !ok {
		d.eof()
		return false
	}
	if c == ']' {
		d.pos++
		d.depth--
		return false
	}
	if *first {
		*first = false
		return true
	}
	if c != ',' {
		d.syntax(c, "after array element")
		return false
	}
	d.pos++
	return true
}

// Skip skips the next value (an unknown field's, or an extra array element).
func (d *Decoder) Skip() {
	if d.begin() != 0 {
		d.skipValue()
	}
}

// IsNull consumes the next value if it is null and reports whether it was.
func (d *Decoder) IsNull() bool {
	if d.begin() == 'n' {
		d.literal("null")
		return true
	}
	return false
}

// String decodes a string into a value of a string type typ. ok is false
// when there is nothing to store: null, a mismatch (recorded) or a stop.
func (d *Decoder) String(typ string) (s string, ok bool) {
	// Fast path: no white space before the string, and nothing to unescape.
	data, i := d.data, d.pos
	if d.stop == nil && i+9 <= len(data) && data[i] == '"' {
		j := i + 1
		m := decodeMask(load64(data, j))
		for m == 0 && j+16 <= len(data) {
			j += 8
			m = decodeMask(load64(data, j))
		}
		if m != 0 {
			j += firstFlagged(m)
			if data[j] == '"' {
				d.pos = j + 1
				return d.str(i+1, j), true
			}
		}
	}
	c := d.begin()
	if c == '"' {
		start := d.pos + 1
		b, ok := d.readString()
		if !ok {
			return "", false
		}
		if len(b) > 0 && &b[0] == &d.data[start] {
			return d.str(start, start+len(b)), true
		}
		return string(b), true
	}
	d.other(c, typ)
	return "", false
}

// MapKey returns a map key Member returned as a string.
func (d *Decoder) MapKey(key []byte) string {
	if len(key) > 0 && d.pos > 0 && len(d.data) <= arenaMax {
		// A key aliasing the input shares the arena.
		start := int(uintptr(unsafe.Pointer(&key[0])) - uintptr(unsafe.Pointer(&d.data[0])))
		if start >= 0 && start+len(key) <= len(d.data) && &d.data[start] == &key[0] {
			return d.str(start, start+len(key))
		}
	}
	return string(key)
}

// Bool decodes true or false into a value of a bool type typ.
func (d *Decoder) Bool(typ string) (v bool, ok bool) {
	c := d.begin()
	switch c {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	}
	d.other(c, typ)
	return false, false
}

// Int decodes a number into a value of a signed integer type typ of the
// given size in bits (0 means int's).
func (d *Decoder) Int(bits int, typ string) (int64, bool) {
	// Fast path: up to 18 digits, no white space, no sign, fraction or
	// exponent, no leading zero.
	data, i := d.data, d.pos
	if d.stop == nil && i < len(data) && '1' <= data[i] && data[i] <= '9' {
		var n int64
		j := i
		for j < len(data) && j-i < 18 && '0' <= data[j] && data[j] <= '9' {
			n = n*10 + int64(data[j]-'0')
			j++
		}
		if j < len(data) && data[j] != '.' && data[j] != 'e' && data[j] != 'E' && (data[j] < '0' || data[j] > '9') {
			if bits == 0 {
				bits = strconv.IntSize
			}
			if uint64(n) < uint64(1)<<(bits-1) {
				d.pos = j
				return n, true
			}
		}
	}
	tok, ok := d.number(typ)
	if !ok {
		return 0, false
	}
	if bits == 0 {
		bits = strconv.IntSize
	}
	n, ok := parseInt(tok, bits)
	if !ok {
		d.typeError("number "+string(tok), typ)
		return 0, false
	}
	return n, true
}

// number reads the number token of a value of type typ, or reports what
// stands there instead.
func (d *Decoder) number(typ string) ([]byte, bool) {
	c := d.begin()
	if c != '-' && (c < '0' || c > '9') {
		d.other(c, typ)
		return nil, false
	}
	return d.readNumber()
}

// Uint decodes a number into a value of an unsigned integer type typ of the
// given size in bits (0 means uint's).
func (d *Decoder) Uint(bits int, typ string) (uint64, bool) {
	tok, ok := d.number(typ)
	if !ok {
		return 0, false
	}
	if bits == 0 {
		bits = strconv.IntSize
	}
	n, ok := parseUint(tok, bits)
	if !ok {
		d.typeError("number "+string(tok), typ)
		return 0, false
	}
	return n, true
}

// Float decodes a number into a value of a float type typ of the given size
// in bits (32 or 64).
func (d *Decoder) Float(bits int, typ string) (float64, bool) {
	tok, ok := d.number(typ)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(unsafe.String(&tok[0], len(tok)), bits)
	if err != nil {
		d.typeError("number "+string(tok), typ)
		return 0, false
	}
	return f, true
}

// ParseMapInt parses an integer map key as encoding/json does; ok is false
// (and a mismatch recorded) when it does not fit.
func (d *Decoder) ParseMapInt(key string, bits int, typ string) (int64, bool) {
	if bits == 0 {
		bits = strconv.IntSize
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n < -1<<(bits-1) || n > 1<<(bits-1)-1 {
		d.MapKeyError(key, typ)
		return 0, false
	}
	return n, true
}

// ParseMapUint is ParseMapInt for unsigned keys.
func (d *Decoder) ParseMapUint(key string, bits int, typ string) (uint64, bool) {
	if bits == 0 {
		bits = strconv.IntSize
	}
	n, err := strconv.ParseUint(key, 10, 64)
	if err != nil || bits < 64 && n > 1<<bits-1 {
		d.MapKeyError(key, typ)
		return 0, false
	}
	return n, true
}

// Bytes decodes into a []byte (of type typ) whose current value is cur, and
// returns the new value: a base64 string decodes to a new slice, null to nil,
// an array of numbers element by element as encoding/json does (reusing
// cur's storage).
func (d *Decoder) Bytes(cur []byte, typ string) []byte {
	c := d.begin()
	switch c {
	case '"':
		s, ok := d.readString()
		if !ok {
			return cur
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(b, s)
		if err != nil {
			d.Save(err)
			return cur
		}
		return b[:n]
	case 'n':
		if d.literal("null") {
			return nil
		}
		return cur
	case '[':
		if d.open('[', typ) != Open {
			return cur
		}
		s, i := cur, 0
		for first := true; d.Elem(&first); i++ {
			if i >= cap(s) {
				s = append(s[:i], 0)
			} else if i >= len(s) {
				s = s[:i+1]
			}
			if n, ok := d.Uint(8, "uint8"); ok {
				s[i] = byte(n)
			}
		}
		if i < len(s) {
			s = s[:i]
		}
		if i == 0 {
			s = make([]byte, 0)
		}
		return s
	}
	d.other(c, typ)
	return cur
}

// Raw decodes into a json.RawMessage whose current value is cur, as
// RawMessage's UnmarshalJSON does: the value's bytes, copied (null too).
func (d *Decoder) Raw(cur []byte) []byte {
	v, ok := d.Value()
	if !ok {
		return cur
	}
	return append(cur[:0], v...)
}

// Value returns the bytes of the next value, checked, for an UnmarshalJSON
// method. ok is false when decoding stopped. The bytes alias the input.
func (d *Decoder) Value() (v []byte, ok bool) {
	if d.begin() == 0 {
		return nil, false
	}
	start := d.pos
	d.skipValue()
	if d.stop != nil {
		return nil, false
	}
	return d.data[start:d.pos], true
}

// Fold returns 1 + the index of the first of names equal to key under
// Unicode simple case folding, or 0: encoding/json's fallback when no field
// name matches a key exactly.
func Fold(key []byte, names []string) int {
	k := unsafe.String(unsafe.SliceData(key), len(key))
	for i, n := range names {
		if strings.EqualFold(k, n) {
			return i + 1
		}
	}
	return 0
}

// parseInt parses a JSON number token as strconv.ParseInt(tok, 10, 64) and
// a range check for bits would: no fraction, no exponent.
func parseInt(tok []byte, bits int) (int64, bool) {
	neg := tok[0] == '-'
	if neg {
		tok = tok[1:]
	}
	if len(tok) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range tok {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	limit := uint64(1) << (bits - 1)
	if neg {
		if n > limit {
			return 0, false
		}
		return -int64(n), true
	}
	if n >= limit {
		return 0, false
	}
	return int64(n), true
}

// parseUint is parseInt for strconv.ParseUint: no sign either.
func parseUint(tok []byte, bits int) (uint64, bool) {
	if len(tok) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range tok {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if bits < 64 && n > 1<<bits-1 {
		return 0, false
	}
	return n, true
}

// readString reads the string at d.pos (a '"') and returns it unquoted. The
// result aliases the input when the string needs no unescaping, and d's
// scratch buffer otherwise.
func (d *Decoder) readString() ([]byte, bool) {
	data := d.data
	start := d.pos + 1
	i := start
	for i+8 <= len(data) {
		if m := decodeMask(load64(data, i)); m != 0 {
			i += firstFlagged(m)
			goto found
		}
		i += 8
	}
	for ; i < len(data); i++ {
		if c := data[i]; c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			goto found
		}
	}
	d.pos = i
	d.eof()
	return nil, false
found:
	if data[i] == '"' {
		d.pos = i + 1
		return data[start:i], true
	}
	return d.readStringSlow(start, i)
}

// readStringSlow unquotes the string from start, where data[start:i] is
// plain ASCII, as encoding/json does, checking its syntax on the way.
func (d *Decoder) readStringSlow(start, i int) ([]byte, bool) {
	data := d.data
	b := append(d.buf[:0], data[start:i]...)
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.buf = b
			return b, true
		case c == '\\':
			i++
			if i >= len(data) {
				d.errAt(i, "in string escape code")
				return nil, false
			}
			switch e := data[i]; e {
			case '"', '\\', '/':
				b = append(b, e)
				i++
			case 'b':
				b = append(b, '\b')
				i++
			case 'f':
				b = append(b, '\f')
				i++
			case 'n':
				b = append(b, '\n')
				i++
			case 'r':
				b = append(b, '\r')
				i++
			case 't':
				b = append(b, '\t')
				i++
			case 'u':
				r, ok := d.hex4(i + 1)
				if !ok {
					return nil, false
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// A second escape must follow for a pair; what
					// encoding/json does not take as a pair's second half
					// is left for the next round.
					r1 := rune(-1)
					if i+1 < len(data) && data[i] == '\\' && data[i+1] == 'u' {
						if x, ok := peekHex4(data, i+2); ok {
							r1 = x
						}
					}
					if dec := utf16.DecodeRune(r, r1); dec != utf8.RuneError {
						b = utf8.AppendRune(b, dec)
						i += 6
						continue
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
			default:
				d.errAt(i, "in string escape code")
				return nil, false
			}
		case c < 0x20:
			d.errAt(i, "in string literal")
			return nil, false
		case c < utf8.RuneSelf:
			j := i + 1
			for j+8 <= len(data) && decodeMask(load64(data, j)) == 0 {
				j += 8
			}
			for j < len(data) && data[j] >= 0x20 && data[j] < utf8.RuneSelf && data[j] != '"' && data[j] != '\\' {
				j++
			}
			b = append(b, data[i:j]...)
			i = j
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, data[i:i+size]...)
			}
			i += size
		}
	}
	d.buf = b
	d.pos = i
	d.eof()
	return nil, false
}

// hex4 reads the four hex digits of a \u escape at i, checking them as the
// scanner does.
func (d *Decoder) hex4(i int) (rune, bool) {
	var r rune
	for k := 0; k < 4; k++ {
		if i+k >= len(d.data) {
			d.errAt(i+k, `in \u hexadecimal character escape`)
			return 0, false
		}
		c := d.data[i+k]
		v := unhex(c)
		if v < 0 {
			d.errAt(i+k, `in \u hexadecimal character escape`)
			return 0, false
		}
		r = r<<4 | v
	}
	return r, true
}

// peekHex4 reads four hex digits at i without reporting errors.
func peekHex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		v := unhex(c)
		if v < 0 {
			return 0, false
		}
		r = r<<4 | v
	}
	return r, true
}

func unhex(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// readNumber reads the number at d.pos, checking it as the scanner does.
func (d *Decoder) readNumber() ([]byte, bool) {
	data := d.data
	start := d.pos
	i := start
	if data[i] == '-' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.errAt(i, "in numeric literal")
			return nil, false
		}
	}
	if data[i] == '0' {
		i++
	} else {
		i++
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.errAt(i, "after decimal point in numeric literal")
			return nil, false
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.errAt(i, "in exponent of numeric literal")
			return nil, false
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	d.pos = i
	return data[start:i], true
}

// literal reads true, false or null (lit) at d.pos, checking it as the
// scanner does.
func (d *Decoder) literal(lit string) bool {
	data := d.data
	i := d.pos
	if i+len(lit) <= len(data) && string(data[i:i+len(lit)]) == lit {
		d.pos = i + len(lit)
		return true
	}
	for k := 1; k < len(lit); k++ {
		if i+k >= len(data) || data[i+k] != lit[k] {
			d.errAt(i+k, "in literal "+lit+" (expecting '"+lit[k:k+1]+"')")
			return false
		}
	}
	return false // not reached: the fast path matched
}

// skipValue skips the value starting at d.pos (its first byte is a valid
// start), checking its syntax exactly as encoding/json's scanner does.
func (d *Decoder) skipValue() {
	data := d.data
	base := d.depth
	// kinds of the containers opened here, one bit each: 1 for an object.
	var small [4]uint64
	var big []bool
	isObj := func(depth int) bool {
		k := depth - base - 1
		if k < len(small)*64 {
			return small[k>>6]&(1<<(k&63)) != 0
		}
		return big[k-len(small)*64]
	}
	push := func(obj bool) bool {
		d.depth++
		if d.depth > maxDepth {
			d.syntax(data[d.pos], "exceeded max depth")
			return false
		}
		k := d.depth - base - 1
		if k < len(small)*64 {
			if obj {
				small[k>>6] |= 1 << (k & 63)
			} else {
				small[k>>6] &^= 1 << (k & 63)
			}
		} else {
			big = append(big[:k-len(small)*64], obj)
		}
		d.pos++
		return true
	}
	for {
		// A value starts at d.pos.
		c := data[d.pos]
		switch c {
		case '{':
			if !push(true) {
				return
			}
			c, ok := d.next()
			if !ok {
				d.eof()
				return
			}
			if c == '}' {
				d.pos++
				d.depth--
				break
			}
			if c != '"' {
				d.syntax(c, "looking for beginning of object key string")
				return
			}
			if !d.skipKey() {
				return
			}
			if d.begin() == 0 {
				return
			}
			continue
		case '[':
			if !push(false) {
				return
			}
			c, ok := d.next()
			if !ok {
				d.eof()
				return
			}
			if c == ']' {
				d.pos++
				d.depth--
				break
			}
			if d.begin() == 0 {
				return
			}
			continue
		case '"':
			if !d.skipString() {
				return
			}
		case 't':
			if !d.literal("true") {
				return
			}
		case 'f':
			if !d.literal("false") {
				return
			}
		case 'n':
			if !d.literal("null") {
				return
			}
		default:
			if _, ok := d.readNumber(); !ok {
				return
			}
		}
		// A value ended: close containers until another value starts.
		for {
			if d.depth == base {
				return
			}
			c, ok := d.next()
			if !ok {
				d.eof()
				return
			}
			if isObj(d.depth) {
				if c == '}' {
					d.pos++
					d.depth--
					continue
				}
				if c != ',' {
					d.syntax(c, "after object key:value pair")
					return
				}
				d.pos++
				if c, ok = d.next(); !ok {
					d.eof()
					return
				}
				if c != '"' {
					d.syntax(c, "looking for beginning of object key string")
					return
				}
				if !d.skipKey() {
					return
				}
			} else {
				if c == ']' {
					d.pos++
					d.depth--
					continue
				}
				if c != ',' {
					d.syntax(c, "after array element")
					return
				}
				d.pos++
			}
			if d.begin() == 0 {
				return
			}
			break
		}
	}
}

// skipKey skips an object key at d.pos and the colon after it.
func (d *Decoder) skipKey() bool {
	if !d.skipString() {
		return false
	}
	c, ok := d.next()
	if !ok {
		d.eof()
		return false
	}
	if c != ':' {
		d.syntax(c, "after object key")
		return false
	}
	d.pos++
	return true
}

// skipString skips the string at d.pos, checking its syntax.
func (d *Decoder) skipString() bool {
	data := d.data
	i := d.pos + 1
	for {
		for i+8 <= len(data) {
			if m := skipMask(load64(data, i)); m != 0 {
				i += firstFlagged(m)
				break
			}
			i += 8
		}
		for i < len(data) && data[i] != '"' && data[i] != '\\' && data[i] >= 0x20 {
			i++
		}
		if i >= len(data) {
			d.pos = i
			d.eof()
			return false
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return true
		case c == '\\':
			i++
			if i >= len(data) {
				d.errAt(i, "in string escape code")
				return false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if _, ok := d.hex4(i + 1); !ok {
					return false
				}
				i += 5
			default:
				d.errAt(i, "in string escape code")
				return false
			}
		default:
			d.errAt(i, "in string literal")
			return false
		}
	}
}
