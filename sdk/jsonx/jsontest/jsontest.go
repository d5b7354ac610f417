// Package jsontest checks generated JSON codecs (see cmd/roam-jsongen)
// against encoding/json: the same bytes out of AppendJSON as out of
// json.Marshal, and the same values and errors out of DecodeJSON as out of
// json.Unmarshal, over random values of the types and mutations of their
// encodings. It uses reflection and is for tests only.
//
// A package with generated codecs tests them with
//
//	func TestJSONCodecs(t *testing.T) { jsontest.Check(t, 0, Order{}, OrderReply{}) }
//
//	func FuzzJSONCodecs(f *testing.F) { jsontest.Fuzz(f, Order{}, OrderReply{}) }
package jsontest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

type appender interface {
	AppendJSON(b []byte) ([]byte, error)
}

type decoder interface {
	DecodeJSON(data []byte) error
}

// Check runs n rounds (0 means 300) of random values for each sample's type
// (a struct value whose type has generated codecs): encoding must match
// json.Marshal, and decoding the encoding, and many mutations of it, must
// match json.Unmarshal, into zero values and into random ones.
func Check(t *testing.T, n int, samples ...any) {
	t.Helper()
	SkipIfV2(t)
	if n <= 0 {
		n = 300
		if testing.Short() {
			n = 50
		}
	}
	for _, s := range samples {
		typ := reflect.TypeOf(s)
		requireCodecs(t, typ)
		t.Run(typ.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(typ.String()))))
			g := &Generator{R: r}
			for i := 0; i < n; i++ {
				v := g.Value(typ)
				CompareEncode(t, v.Interface())
				data, err := json.Marshal(v.Interface())
				if err != nil {
					continue // CompareEncode checked that both fail alike
				}
				CompareDecode(t, typ, data, reflect.Value{})
				CompareDecode(t, typ, data, g.Value(typ))
				for _, m := range Mutations(r, data, 12) {
					CompareDecode(t, typ, m, reflect.Value{})
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// Fuzz registers a fuzz target comparing DecodeJSON with json.Unmarshal for
// every sample type on the fuzzed input, seeded with encodings of random
// values and their mutations.
func Fuzz(f *testing.F, samples ...any) {
	SkipIfV2(f)
	r := rand.New(rand.NewPCG(7, 7))
	g := &Generator{R: r}
	var types []reflect.Type
	for _, s := range samples {
		typ := reflect.TypeOf(s)
		requireCodecs(f, typ)
		types = append(types, typ)
		for i := 0; i < 8; i++ {
			if data, err := json.Marshal(g.Value(typ).Interface()); err == nil {
				f.Add(data)
				for _, m := range Mutations(r, data, 2) {
					f.Add(m)
				}
			}
		}
	}
	for _, s := range []string{`{}`, `null`, `[]`, `{"a":1}`, `"\ud800"`, `{"ID":"x","id":"y"}`, ` {"\u0069d" : 1 } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range types {
			CompareDecode(t, typ, data, reflect.Value{})
		}
	})
}

// SkipIfV2 skips the test when encoding/json is the v2-based
// implementation: the generated codecs reproduce the default one, byte for
// byte and message for message, and the v2-based one differs (it writes
// invalid UTF-8 as U+FFFD itself rather than \ufffd, words its errors
// differently, and more).
func SkipIfV2(t testing.TB) {
	if JSONv2 {
		t.Skip("GOEXPERIMENT=jsonv2: encoding/json is the v2-based implementation, which the generated codecs do not reproduce")
	}
}

func requireCodecs(t testing.TB, typ reflect.Type) {
	t.Helper()
	if typ.Kind() != reflect.Struct {
		t.Fatalf("%s: jsontest wants struct values", typ)
	}
	if !typ.Implements(reflect.TypeFor[appender]()) || !reflect.PointerTo(typ).Implements(reflect.TypeFor[decoder]()) {
		t.Fatalf("%s has no generated codecs (AppendJSON and DecodeJSON): run go generate", typ)
	}
}

// CompareEncode checks that v.AppendJSON writes what json.Marshal writes, or
// fails with the same message.
func CompareEncode(t testing.TB, v any) {
	t.Helper()
	want, werr := json.Marshal(v)
	prefix := []byte("prefix:")
	got, gerr := v.(appender).AppendJSON(slices.Clip(prefix))
	if werr != nil || gerr != nil {
		if werr == nil || gerr == nil || werr.Error() != gerr.Error() {
			t.Errorf("encoding %#v:\n json.Marshal: %v\n AppendJSON:   %v", v, werr, gerr)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendJSON did not append to its argument: %q", got)
	}
	if got = got[len(prefix):]; !bytes.Equal(got, want) {
		t.Errorf("encoding %#v:\n json.Marshal: %s\n AppendJSON:   %s", v, want, got)
	}
}

// CompareDecode decodes data with json.Unmarshal and with DecodeJSON into
// values of type typ, both starting as copies of start (zero when start is
// invalid), and checks that the results and the error messages are equal.
func CompareDecode(t testing.TB, typ reflect.Type, data []byte, start reflect.Value) {
	t.Helper()
	a, b := reflect.New(typ), reflect.New(typ)
	if start.IsValid() {
		a.Elem().Set(DeepCopy(start))
		b.Elem().Set(DeepCopy(start))
	}
	werr := json.Unmarshal(data, a.Interface())
	gerr := b.Interface().(decoder).DecodeJSON(data)
	switch {
	case werr == nil && gerr == nil:
		if !reflect.DeepEqual(a.Elem().Interface(), b.Elem().Interface()) {
			t.Errorf("decoding %q into %s:\n json.Unmarshal: %#v\n DecodeJSON:     %#v", data, typ, a.Elem().Interface(), b.Elem().Interface())
		}
	case werr == nil || gerr == nil || werr.Error() != gerr.Error():
		t.Errorf("decoding %q into %s:\n json.Unmarshal: %v\n DecodeJSON:     %v", data, typ, werr, gerr)
	}
}

// DeepCopy returns a copy of v sharing no memory with it (exported fields
// only are copied, unexported ones are left zero).
func DeepCopy(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	deepCopy(out, v)
	return out
}

func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if !src.IsNil() {
			p := reflect.New(src.Type().Elem())
			deepCopy(p.Elem(), src.Elem())
			dst.Set(p)
		}
	case reflect.Slice:
		if !src.IsNil() {
			s := reflect.MakeSlice(src.Type(), src.Len(), src.Cap())
			for i := 0; i < src.Len(); i++ {
				deepCopy(s.Index(i), src.Index(i))
			}
			dst.Set(s)
		}
	case reflect.Map:
		if !src.IsNil() {
			m := reflect.MakeMapWithSize(src.Type(), src.Len())
			it := src.MapRange()
			for it.Next() {
				e := reflect.New(src.Type().Elem()).Elem()
				deepCopy(e, it.Value())
				m.SetMapIndex(it.Key(), e)
			}
			dst.Set(m)
		}
	case reflect.Array:
		for i := 0; i < src.Len(); i++ {
			deepCopy(dst.Index(i), src.Index(i))
		}
	case reflect.Struct:
		if src.Type() == reflect.TypeFor[time.Time]() {
			dst.Set(src)
			return
		}
		for i := 0; i < src.NumField(); i++ {
			if dst.Field(i).CanSet() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	default:
		if dst.CanSet() {
			dst.Set(src)
		}
	}
}

// Strings are the awkward strings values are drawn from.
var Strings = []string{
	"", "a", "id", "ID", "Id", "sku", "hello world", "<script>alert(1)</script>", "a&b", "x>y<z",
	"\u2028\u2029", "line\u2028sep", "\x00\x01\x1f\x7f", "\"quoted\" \\ back/slash", "\b\f\n\r\t",
	"héllo wörld", "日本語のテキスト", "😀 emoji 🎉", "\xff\xfe invalid", "trunc\xc3", "\xed\xa0\x80 surrogate",
	"K\u212aelvin", "ſ long s", "0123456789abcdef0123456789abcdef", strings.Repeat("long string ", 12),
	"mixed <&> \u00e9\u2028\x01\"", "\u0000", "\ufffd", "null", "true", "1e5",
}

// Generator makes random values of Go types for the tests.
type Generator struct {
	R     *rand.Rand
	depth int
}

// Value returns a random value of typ.
func (g *Generator) Value(typ reflect.Type) reflect.Value {
	v := reflect.New(typ).Elem()
	g.fill(v)
	return v
}

func (g *Generator) fill(v reflect.Value) {
	r := g.R
	g.depth++
	defer func() { g.depth-- }()
	deep := g.depth > 6
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(g.Time()))
		return
	case reflect.TypeFor[json.RawMessage]():
		if r.IntN(4) > 0 {
			v.SetBytes([]byte(g.RawJSON()))
		}
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		switch r.IntN(5) {
		case 0:
			v.SetInt(0)
		case 1:
			v.SetInt(-1 << (bits - 1))
		case 2:
			v.SetInt(1<<(bits-1) - 1)
		default:
			v.SetInt(int64(r.Uint64()) >> (64 - bits) >> r.IntN(bits))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits := v.Type().Bits()
		switch r.IntN(4) {
		case 0:
			v.SetUint(0)
		case 1:
			v.SetUint(math.MaxUint64 >> (64 - bits))
		default:
			v.SetUint(r.Uint64() >> (64 - bits) >> r.IntN(bits))
		}
	case reflect.Float32, reflect.Float64:
		v.SetFloat(g.Float(v.Type().Bits()))
	case reflect.String:
		v.SetString(g.String())
	case reflect.Pointer:
		if r.IntN(3) > 0 && !deep {
			p := reflect.New(v.Type().Elem())
			g.fill(p.Elem())
			v.Set(p)
		}
	case reflect.Slice:
		switch k := r.IntN(5); {
		case k == 0 || deep:
		case k == 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, r.IntN(3)))
		default:
			n := 1 + r.IntN(4)
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := 0; i < n; i++ {
				g.fill(s.Index(i))
			}
			v.Set(s)
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if r.IntN(2) == 0 {
				g.fill(v.Index(i))
			}
		}
	case reflect.Map:
		switch k := r.IntN(5); {
		case k == 0 || deep:
		case k == 1:
			v.Set(reflect.MakeMap(v.Type()))
		default:
			m := reflect.MakeMap(v.Type())
			for i := 0; i < 1+r.IntN(4); i++ {
				k := reflect.New(v.Type().Key()).Elem()
				g.fill(k)
				e := reflect.New(v.Type().Elem()).Elem()
				g.fill(e)
				m.SetMapIndex(k, e)
			}
			v.Set(m)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() && r.IntN(6) > 0 {
				g.fill(v.Field(i))
			}
		}
	}
}

// String returns an awkward string.
func (g *Generator) String() string {
	r := g.R
	if r.IntN(4) == 0 {
		var b strings.Builder
		for i := r.IntN(12); i > 0; i-- {
			b.WriteString(Strings[r.IntN(len(Strings))])
			if r.IntN(3) == 0 {
				b.WriteByte(byte(r.IntN(256)))
			}
		}
		return b.String()
	}
	return Strings[r.IntN(len(Strings))]
}

// Float returns an awkward finite float of the given size.
func (g *Generator) Float(bits int) float64 {
	r := g.R
	var f float64
	switch r.IntN(10) {
	case 0:
		f = 0
	case 1:
		f = math.Copysign(0, -1)
	case 2:
		f = 1e-7 * r.Float64()
	case 3:
		f = 1e21 * (1 + r.Float64())
	case 4:
		f = math.MaxFloat32
	case 5:
		f = math.SmallestNonzeroFloat64
	case 6:
		f = float64(r.Int64N(1e6))
	case 7:
		f = math.Ldexp(r.Float64(), r.IntN(200)-100)
	default:
		f = (r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(40)-20))
	}
	if bits == 32 {
		f = float64(float32(f))
		if math.IsInf(f, 0) {
			f = math.MaxFloat32
		}
	} else if bits == 64 && r.IntN(10) == 0 {
		f = math.MaxFloat64
	}
	return f
}

// Time returns a time encoding/json can encode, in various zones.
func (g *Generator) Time() time.Time {
	r := g.R
	if r.IntN(5) == 0 {
		return time.Time{}
	}
	t := time.Unix(r.Int64N(253402300799)-r.Int64N(62135596800), r.Int64N(1e9)*int64(r.IntN(2)))
	switch r.IntN(4) {
	case 0:
		return t.UTC()
	case 1:
		return t.In(time.FixedZone("", (r.IntN(47)-23)*3600+r.IntN(4)*900))
	case 2:
		return t.In(time.FixedZone("X", -5*3600))
	}
	return t
}

// RawJSON returns a valid JSON text, sometimes spaced and with HTML
// characters, for json.RawMessage values.
func (g *Generator) RawJSON() string {
	raws := []string{`1`, `-0.5e10`, `"s"`, `true`, `null`, `[]`, `{}`, ` { "a" : [ 1 , 2 ] } `,
		`"<&>"`, "\"\u2028\"", `[1,"two",{"three":3}]`, "\t\"x\"\n", `{"k":"v","n":null}`, `"\ud83d\ude00"`}
	return raws[g.R.IntN(len(raws))]
}

// Mutations returns n variants of the JSON text data: truncated, with bytes
// changed or inserted, with values swapped for others of other types, with
// keys recased, escaped or duplicated, with unknown members added.
func Mutations(r *rand.Rand, data []byte, n int) [][]byte {
	var out [][]byte
	tree, err := parse(data)
	for len(out) < n {
		switch k := r.IntN(8); {
		case k == 0 && len(data) > 0:
			out = append(out, slices.Clone(data[:r.IntN(len(data))]))
		case k == 1 && len(data) > 0:
			m := slices.Clone(data)
			m[r.IntN(len(m))] = "{}[]:,\" \ntfnul0-1.eE+\\x\x00\xff"[r.IntN(25)]
			out = append(out, m)
		case k == 2:
			i := r.IntN(len(data) + 1)
			ins := []string{" ", "\n", ",", "\"", "0", "{", "]", "\\u00", "null"}[r.IntN(9)]
			out = append(out, slices.Concat(data[:i], []byte(ins), data[i:]))
		case err == nil:
			t := tree.clone()
			t.mutate(r, 1+r.IntN(3))
			out = append(out, t.appendTo(nil, r))
		}
	}
	return out
}

// node is a JSON value that keeps its members' order and duplicates.
type node struct {
	lit  string // the text of a literal, or "" for a container
	arr  []*node
	obj  []member
	isOb bool
}

type member struct {
	key string
	val *node
}

func parse(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("trailing data")
	}
	return n, nil
}

func parseNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			n := &node{isOb: true, obj: []member{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				n.obj = append(n.obj, member{kt.(string), v})
			}
			_, err := dec.Token()
			return n, err
		case '[':
			n := &node{arr: []*node{}}
			for dec.More() {
				v, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, v)
			}
			_, err := dec.Token()
			return n, err
		}
	case string:
		b, _ := json.Marshal(tok)
		return &node{lit: string(b)}, nil
	case json.Number:
		return &node{lit: tok.String()}, nil
	case bool:
		return &node{lit: strconv.FormatBool(tok)}, nil
	case nil:
		return &node{lit: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func (n *node) clone() *node {
	c := &node{lit: n.lit, isOb: n.isOb}
	if n.arr != nil {
		c.arr = make([]*node, len(n.arr))
		for i, e := range n.arr {
			c.arr[i] = e.clone()
		}
	}
	if n.obj != nil {
		c.obj = make([]member, len(n.obj))
		for i, m := range n.obj {
			c.obj[i] = member{m.key, m.val.clone()}
		}
	}
	return c
}

// all returns the nodes of the tree, n first.
func (n *node) all(out []*node) []*node {
	out = append(out, n)
	for _, e := range n.arr {
		out = e.all(out)
	}
	for _, m := range n.obj {
		out = m.val.all(out)
	}
	return out
}

// Replacement values: every JSON type, numbers at and past the limits of
// the integer and float types, strings with escapes and surrogates.
var replacements = []string{
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `1.5`, `-2.5e3`, `1e2`, `1E+2`, `0.0`, `255`, `256`, `-129`, `127`, `128`,
	`32767`, `32768`, `-32769`, `65535`, `65536`, `2147483647`, `2147483648`, `-2147483649`, `4294967295`, `4294967296`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
	`18446744073709551615`, `18446744073709551616`, `123456789012345678901234567890`, `1e400`, `-1e400`, `1e-400`,
	`3.4028235e38`, `3.5e38`, `""`, `"x"`, `"\u0041\n\t\"\\\/"`, `"\ud800"`, `"\udc00x"`, `"\ud83d\ude00"`, `"\ud83dx\ude00"`,
	`"\ud800\ud800"`, "\"\xff\xfe\"", `"AAEC"`, `"AAE="`, `"A==="`, `"!!"`, `"2024-02-29T12:00:00Z"`, `"2024-13-01T00:00:00Z"`,
	`"1999-12-31T23:59:59.999999999+05:30"`, `[]`, `[1,2,3]`, `[null]`, `["a",1]`, `[[]]`, `{}`, `{"a":1}`, `{"c":1.5}`,
	`{"1":"x","-2":"y"}`, `{"300":true}`, `{"x":{"y":[{}]}}`, `[{"a":1},{"b":2}]`,
}

// replacement returns one of the replacements, literals with their text as
// written (escapes included).
func replacement(r *rand.Rand) *node {
	text := replacements[r.IntN(len(replacements))]
	if text[0] == '{' || text[0] == '[' {
		if n, err := parse([]byte(text)); err == nil {
			return n
		}
	}
	return &node{lit: text}
}

func (n *node) mutate(r *rand.Rand, times int) {
	for ; times > 0; times-- {
		nodes := n.all(nil)
		x := nodes[r.IntN(len(nodes))]
		switch k := r.IntN(6); {
		case k <= 1 && x != n || k == 0:
			*x = *replacement(r)
		case k == 2 && x.isOb && len(x.obj) > 0:
			// Recase, duplicate or drop a key.
			i := r.IntN(len(x.obj))
			switch r.IntN(4) {
			case 0:
				x.obj[i].key = strings.ToUpper(x.obj[i].key)
			case 1:
				x.obj[i].key = strings.ToTitle(x.obj[i].key[:min(1, len(x.obj[i].key))]) + x.obj[i].key[min(1, len(x.obj[i].key)):]
			case 2:
				x.obj = append(x.obj, member{x.obj[i].key, x.obj[r.IntN(len(x.obj))].val.clone()})
			default:
				x.obj = slices.Delete(x.obj, i, i+1)
			}
		case k == 3 && x.isOb:
			x.obj = append(x.obj, member{Strings[r.IntN(len(Strings))], replacement(r)})
		case k == 4 && x.arr != nil && len(x.arr) > 0:
			x.arr = append(x.arr, x.arr[r.IntN(len(x.arr))].clone())
		case k == 5 && x.arr != nil && len(x.arr) > 0:
			x.arr = x.arr[:r.IntN(len(x.arr))]
		}
	}
}

// appendTo writes the tree, with random white space and keys sometimes
// written with \u escapes.
func (n *node) appendTo(b []byte, r *rand.Rand) []byte {
	ws := func() {
		if r.IntN(8) == 0 {
			b = append(b, " \t\n\r"[r.IntN(4)])
		}
	}
	ws()
	switch {
	case n.isOb:
		b = append(b, '{')
		for i, m := range n.obj {
			if i > 0 {
				b = append(b, ',')
			}
			ws()
			if r.IntN(6) == 0 {
				b = append(b, '"')
				for _, c := range m.key {
					if c < 0x10000 {
						b = fmt.Appendf(b, `\u%04x`, c)
					} else {
						b = fmt.Appendf(b, "%c", c)
					}
				}
				b = append(b, '"')
			} else {
				k, _ := json.Marshal(m.key)
				b = append(b, k...)
			}
			ws()
			b = append(b, ':')
			b = m.val.appendTo(b, r)
		}
		ws()
		b = append(b, '}')
	case n.arr != nil:
		b = append(b, '[')
		for i, e := range n.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendTo(b, r)
		}
		ws()
		b = append(b, ']')
	case n.lit != "" && n.lit[0] == '"' && r.IntN(4) == 0:
		// The same string with every character escaped, surrogate pairs
		// for those outside the BMP.
		var s string
		if json.Unmarshal([]byte(n.lit), &s) != nil {
			b = append(b, n.lit...)
			break
		}
		b = append(b, '"')
		for _, c := range s {
			if r1, r2 := utf16.EncodeRune(c); r1 != utf8.RuneError {
				b = fmt.Appendf(b, `\u%04X\u%04x`, r1, r2)
			} else {
				b = fmt.Appendf(b, `\u%04x`, c)
			}
		}
		b = append(b, '"')
	default:
		b = append(b, n.lit...)
	}
	ws()
	return b
}
