package host

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roam-dev/roam/sdk"
)

// A state key may be 16 KiB, and the state sync API's messages named it
// whole, three times the key's size once quoted and escaped. They repeat
// its first 128 bytes, cut between characters, and its length; a key of
// 128 bytes or fewer reads as it always did.
func TestKeyEchoQuoteKey(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct{ key, want string }{
		{"k", `"k"`},
		{"a\nb\xff", `"a\nb\xff"`},
		{a(128), `"` + a(128) + `"`},
		{a(129), `"` + a(128) + `"…(129 bytes)`},
		{a(127) + "é", `"` + a(127) + `"…(129 bytes)`},         // é is bytes 128 and 129
		{a(126) + "é" + a(9), `"` + a(126) + `é"…(137 bytes)`}, // é ends at byte 128
		{a(127) + "\xff\xfe", `"` + a(127) + `\xff"…(129 bytes)`},
		{strings.Repeat("\x00", 16<<10), `"` + strings.Repeat(`\x00`, 128) + `"…(16384 bytes)`},
	} {
		if got := sdk.QuoteKey(c.key); got != c.want {
			t.Errorf("QuoteKey(%.40q) = %s, want %s", c.key, got, c.want)
		}
	}
	// Names are cut as they were.
	if got := sdk.QuoteName(a(65)); got != `"`+a(64)+`"…(65 bytes)` {
		t.Errorf("QuoteName of 65 bytes: %s", got)
	}
}

func TestKeyEchoSyncMessages(t *testing.T) {
	s := auditServer(t, Options{})
	long := strings.Repeat("€", (16<<10)/3) + "k" // 16 KiB, a character across byte 128
	for _, tc := range []struct{ ops, short, long string }{
		{`[{"op":"set","key":KEY,"value":"MQ=="},{"op":"delete","key":KEY}]`, `ops 0 and 1 both write key "k": send one op per key`, `ops 0 and 1 both write key "` + strings.Repeat("€", 42) + `"…(16384 bytes): send one op per key`},
		{`[{"op":"set","key":KEY,"value":"MQ==","etag":"1","if_absent":true}]`, `op 0: key "k": etag and if_absent exclude each other`, `op 0: key "` + strings.Repeat("€", 42) + `"…(16384 bytes): etag and if_absent exclude each other`},
		{`[{"op":"delete","key":KEY,"if_absent":true}]`, `op 0: key "k": if_absent applies to set only`, `op 0: key "` + strings.Repeat("€", 42) + `"…(16384 bytes): if_absent applies to set only`},
	} {
		for key, want := range map[string]string{"k": tc.short, long: tc.long} {
			k, _ := json.Marshal(key)
			rec := serve(s, "POST", "/v1/apps/orders/state/st/transact", `{"ops":`+strings.ReplaceAll(tc.ops, "KEY", string(k))+`}`)
			var body struct{ Code, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 400 || body.Code != "InvalidArgument" || body.Message != want {
				t.Errorf("%s, key of %d bytes: %d %.300s (%v), want 400 %s", tc.ops, len(key), rec.Code, rec.Body, err, want)
			}
			if n := rec.Body.Len(); n > 512 || !utf8.Valid(rec.Body.Bytes()) {
				t.Errorf("%s, key of %d bytes: a reply of %d bytes", tc.ops, len(key), n)
			}
		}
	}
}
