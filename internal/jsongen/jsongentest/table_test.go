package jsongentest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/roam-dev/roam/sdk/jsonx/jsontest"
)

// TestDecodeTable: inputs chosen for encoding/json's corners, each decoded
// by DecodeJSON and json.Unmarshal into each type, from a zero value; the
// values and the error messages must be equal.
func TestDecodeTable(t *testing.T) {
	jsontest.SkipIfV2(t)
	inputs := []string{
		// Types that do not fit, and the field path in the message.
		`{"s":1}`, `{"i":"1"}`, `{"i":1.5}`, `{"i":1e2}`, `{"i8":128}`, `{"i8":-129}`, `{"u":-1}`, `{"u8":256}`,
		`{"u64":18446744073709551616}`, `{"i64":-9223372036854775809}`, `{"f32":3.5e38}`, `{"f64":1e400}`, `{"b":"true"}`,
		`{"bytes":"!!"}`, `{"bytes":[1,2,300]}`, `{"bytes":[]}`, `{"blob":"AAE="}`, `{"t":"not a time"}`, `{"t":17}`,
		`{"nested":[{"i":"x"}]}`, `{"m":{"a":"x"}}`, `{"mi":{"x":"y"}}`, `{"mu8":{"256":true}}`, `{"ms":{"k":{"a":"1"}}}`,
		`{"anon":{"a":"x"}}`, `{"other":{"score":"x"}}`, `{"plain":{"nested":{"c":1}}}`, `{"mar":"hot"}`, `{"mar":{"c":"x"}}`,
		`{"pmar":{"c":2}}`, `{"ops":[{"key":5}]}`, `{"ops":[{"KEY":"k","op":1}]}`, `{"rec":{"rec":{"rec":{"p":"x"}}}}`,
		`[1,2]`, `"x"`, `1`, `true`, `null`, `{}`, ` {} `,
		// null: a no-op for values, nil for pointers, slices and maps;
		// RawMessage keeps the literal.
		`{"s":null,"i":null,"bytes":null,"raw_null":null,"p":null,"ints":null,"m":null,"pt":null,"t":null}`,
		// Case-insensitive names, exact matches first, the first field in
		// order among folded ones, Unicode folding, escapes in keys.
		`{"S":"a","s":"b"}`, `{"s":"b","S":"a"}`, `{"ÜNÏ":"x"}`, `{"\u0073":"e"}`, `{"LOWER":1,"lower":2}`, `{"lower":2,"LOWER":1}`,
		`{"x":"top","X":"again"}`, `{"ſ":"long s"}`, `{"i\u212a":1}`, `{"D":1,"d":2}`, `{"w":"promoted"}`, `{"z":7}`,
		// Duplicates merge into structs and reuse slices.
		`{"nested":[{"s":"a","i":1},{"s":"b"}],"nested":[{"i":2}]}`, `{"ps":{"a":1},"ps":{"b":"x"}}`, `{"arr":[1,2,3,4]}`, `{"arr":[9]}`,
		// Unknown members of every shape are skipped.
		`{"unknown":{"a":[1,{"b":null}],"c":"\u00e9"},"s":"kept","more":[[],[{}]]}`,
		// Strings: escapes, surrogates, invalid UTF-8.
		`{"s":"\ud83d\ude00 \ud800 \udc00x \ud800\ud800 \u00e9\t\"\\\/"}`, "{\"s\":\"\xff\xfe\xc3\"}", `{"s":"\u2028"}`,
		// Syntax errors win over type errors anywhere.
		`{"i":"x","s":}`, `{"i":"x"} x`, `{"i":"x"`, `{"mar":{"c":"x"},"s":tru}`, `{"s":"a"}}`, `{"s" "a"}`, `{,}`,
		strings.Repeat(`{"rec":`, 10001) + `{}` + strings.Repeat(`}`, 10001),
	}
	types := []reflect.Type{reflect.TypeFor[Basic](), reflect.TypeFor[Composite](), reflect.TypeFor[Embedded](), reflect.TypeFor[Tx](), reflect.TypeFor[Node]()}
	for _, in := range inputs {
		for _, typ := range types {
			jsontest.CompareDecode(t, typ, []byte(in), reflect.Value{})
		}
	}
}
