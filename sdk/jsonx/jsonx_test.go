package jsonx_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/sdk/jsonx"
	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

// syntaxInputs are malformed (and a few well-formed) JSON texts, one for
// each state of encoding/json's scanner that can fail, at the end of the
// input and in the middle of it.
var syntaxInputs = []string{
	``, ` `, `{`, `[`, `"`, `"abc`, `"\`, `"\u`, `"\u1`, `"\u12`, `"\u123`, `"\u123x"`, `"\x"`, `"\'"`, "\"\x01\"", "\"\x1f\"",
	`t`, `tr`, `tru`, `trux`, `true`, `truex`, `f`, `fals`, `falsy`, `n`, `nu`, `nul`, `nulx`, `null`, `nullx`,
	`-`, `-x`, `-0`, `-01`, `01`, `0.`, `0.x`, `0.1`, `1e`, `1ex`, `1e+`, `1e+x`, `1E-5`, `1.5e3.2`, `.5`, `+1`, `1 2`,
	`{"a"`, `{"a" 1}`, `{"a":}`, `{"a":1`, `{"a":1,}`, `{"a":1 "b":2}`, `{,}`, `{1:2}`, `{"a":1}}`, `{"a":1}x`,
	`[1,]`, `[,1]`, `[1 2]`, `[1,2`, `[1}`, `{]`, `[]]`, `[[[]]`, `{"a":[1,{"b":nul}]}`, `{"a":"b\`, "{\"a\":\"\t\"}",
	"\xff", `x`, `'a'`, `{"a":1}  `, " \t\r\n[ 1 , 2 ] ", "\u00a0[]", `[1e400]`, `"\ud800"`,
	strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000),
	strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001),
	strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat(`}`, 10001),
	`[` + strings.Repeat(`{"a":[`, 5000) + strings.Repeat(`]}`, 5000) + `]`,
	strings.Repeat(`{"a":`, 3000) + `1` + strings.Repeat(`}`, 2999),
}

func TestMain(m *testing.M) {
	if jsontest.JSONv2 {
		// The tests compare with encoding/json, which is then not the
		// implementation this package reproduces.
		println("jsonx: skipping the comparisons with encoding/json under GOEXPERIMENT=jsonv2")
		return
	}
	m.Run()
}

func unmarshalErr(data []byte) string {
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err.Error()
	}
	return "<nil>"
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, in := range syntaxInputs {
		want := unmarshalErr([]byte(in))
		got := errString(jsonx.Valid([]byte(in)))
		if got != want {
			t.Errorf("Valid(%.40q) = %s, encoding/json says %s", in, got, want)
		}
		var se *jsonx.SyntaxError
		if err := jsonx.Valid([]byte(in)); err != nil && !errors.As(err, &se) {
			t.Errorf("Valid(%.40q): %T, want *jsonx.SyntaxError", in, err)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, in := range syntaxInputs {
		if len(in) < 100 {
			f.Add([]byte(in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := errString(jsonx.Valid(data)), unmarshalErr(data); got != want {
			t.Errorf("Valid(%q) = %s, encoding/json says %s", data, got, want)
		}
	})
}

func TestAppendString(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	g := jsontest.Generator{R: r}
	inputs := append([]string(nil), jsontest.Strings...)
	for i := 0; i < 2000; i++ {
		inputs = append(inputs, g.String())
		b := make([]byte, r.IntN(40))
		for j := range b {
			b[j] = byte(r.IntN(256))
			if r.IntN(3) == 0 {
				b[j] = "<>&\"\\\x00\x7f\xe2\x80\xa8\xa9 a\xc3\xa9"[r.IntN(15)]
			}
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		checkString(t, s)
	}
}

func checkString(t *testing.T, s string) {
	t.Helper()
	want, _ := json.Marshal(s)
	if got := jsonx.AppendString([]byte("x"), s); string(got[1:]) != string(want) {
		t.Errorf("AppendString(%q) = %s, json.Marshal writes %s", s, got[1:], want)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range jsontest.Strings {
		f.Add(s)
	}
	f.Fuzz(checkString)
}

func TestAppendFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	g := jsontest.Generator{R: r}
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 1e-7, 9.999999e-7, 1e20, 1e21, 1e22, 123456789e13,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat32, math.SmallestNonzeroFloat32, 1.0000001e-6,
		math.NaN(), math.Inf(1), math.Inf(-1)}
	for i := 0; i < 5000; i++ {
		floats = append(floats, g.Float(64), math.Float64frombits(r.Uint64()), float64(math.Float32frombits(r.Uint32())))
	}
	for _, f := range floats {
		want, werr := json.Marshal(f)
		got, gerr := jsonx.AppendFloat(nil, f, 64)
		if errString(werr) != errString(gerr) || string(got) != string(want) && werr == nil {
			t.Errorf("AppendFloat(%v, 64) = %s, %v; json.Marshal: %s, %v", f, got, gerr, want, werr)
		}
		f32 := float32(f)
		want, werr = json.Marshal(f32)
		got, gerr = jsonx.AppendFloat(nil, float64(f32), 32)
		if errString(werr) != errString(gerr) || string(got) != string(want) && werr == nil {
			t.Errorf("AppendFloat(%v, 32) = %s, %v; json.Marshal: %s, %v", f32, got, gerr, want, werr)
		}
	}
}

func TestAppendRaw(t *testing.T) {
	inputs := append([]string{`{"a" : "<b>" , "c":["\u2028", "  ", "x\"y"]}`, "\"\u2028\u2029\"", " 1 ", `"\\"`, "[\n]"}, syntaxInputs...)
	r := rand.New(rand.NewPCG(5, 6))
	g := jsontest.Generator{R: r}
	for i := 0; i < 300; i++ {
		inputs = append(inputs, g.RawJSON())
		for _, m := range jsontest.Mutations(r, []byte(g.RawJSON()), 3) {
			inputs = append(inputs, string(m))
		}
	}
	for _, in := range append(inputs, "") {
		raw := json.RawMessage(in)
		want, werr := json.Marshal(raw)
		got, gerr := jsonx.AppendRaw(nil, raw)
		if errString(werr) != errString(gerr) || werr == nil && string(got) != string(want) {
			t.Errorf("AppendRaw(%.60q) = %.60s, %v; json.Marshal: %.60s, %v", in, got, gerr, want, werr)
		}
	}
	want, _ := json.Marshal(json.RawMessage(nil))
	if got, err := jsonx.AppendRaw(nil, nil); err != nil || string(got) != string(want) {
		t.Errorf("AppendRaw(nil) = %s, %v; want %s", got, err, want)
	}
}

func TestAppendTime(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	g := jsontest.Generator{R: r}
	times := []time.Time{{}, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 12, 0, 0, 5, time.FixedZone("", 24*3600)),
		time.Date(2024, 2, 29, 12, 0, 0, 5, time.FixedZone("", -23*3600-59*60)), time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 100*3600)),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("", 30)), time.Now()}
	for i := 0; i < 1000; i++ {
		times = append(times, g.Time(), time.Unix(r.Int64N(1<<40)-(1<<39), r.Int64N(1e9)).In(time.FixedZone("", r.IntN(200*3600)-100*3600)))
	}
	for _, tm := range times {
		want, werr := json.Marshal(tm)
		got, gerr := jsonx.AppendTime(nil, tm)
		if errString(werr) != errString(gerr) || werr == nil && string(got) != string(want) {
			t.Errorf("AppendTime(%v) = %s, %v; json.Marshal: %s, %v", tm, got, gerr, want, werr)
		}
	}
}

func TestAppendScalars(t *testing.T) {
	for _, v := range []int64{0, 9, 10, -1, math.MinInt64, math.MaxInt64} {
		want, _ := json.Marshal(v)
		if got := jsonx.AppendInt(nil, v); !bytes.Equal(got, want) {
			t.Errorf("AppendInt(%d) = %s", v, got)
		}
	}
	for _, v := range []uint64{0, 9, 10, math.MaxUint64} {
		want, _ := json.Marshal(v)
		if got := jsonx.AppendUint(nil, v); !bytes.Equal(got, want) {
			t.Errorf("AppendUint(%d) = %s", v, got)
		}
	}
	for _, v := range [][]byte{nil, {}, {0}, {1, 2, 3, 4, 5, 250}} {
		want, _ := json.Marshal(v)
		if got := jsonx.AppendBytes(nil, v); !bytes.Equal(got, want) {
			t.Errorf("AppendBytes(%v) = %s, want %s", v, got, want)
		}
	}
}

// TestDeepErrorContext: the field path of a type error more than the
// decoder's inline context deep, and a custom UnmarshalJSON error context.
func TestDeepErrorContext(t *testing.T) {
	var d jsonx.Decoder
	d.Init([]byte(`"x"`))
	for i := 0; i < 20; i++ {
		d.Enter("T", "f")
	}
	n := d.Enter("U", "g")
	if _, ok := d.Int(0, "int"); ok {
		t.Fatal("a string decoded as an int")
	}
	d.Leave(n)
	want := "json: cannot unmarshal string into Go struct field U." + strings.Repeat("f.", 20) + "g of type int"
	if err := d.Finish(); err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	var te *jsonx.UnmarshalTypeError
	if !errors.As(d.Err(), &te) || te.Struct != "U" {
		t.Errorf("Err() = %#v, want an UnmarshalTypeError in U", d.Err())
	}
}
