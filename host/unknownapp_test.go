package host

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roam-dev/roam/sdk"
)

// An unknown app id comes from the request's path, as long as the server
// reads: its 404 repeats at most 64 bytes of it, cut between characters,
// and its length.
func TestUnknownAppMessage(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, c := range []struct{ id, want string }{
		{"nosuchapp", `"nosuchapp"`},
		{a(64), `"` + a(64) + `"`},
		{a(65), `"` + a(64) + `"…(65 bytes)`},
		{a(63) + "é", `"` + a(63) + `"…(65 bytes)`},            // é is bytes 64 and 65
		{a(62) + "é" + a(9), `"` + a(62) + `é"…(73 bytes)`},    // é ends at byte 64
		{a(62) + "€" + a(20), `"` + a(62) + `"…(85 bytes)`},    // the vector's cut
		{a(63) + "\xff\xfe", `"` + a(63) + `\xff"…(65 bytes)`}, // invalid bytes count one each
		{"\"" + a(70), `"\"` + a(63) + `"…(71 bytes)`},         // the count is of the id, not its quoting
	} {
		if got := sdk.QuoteName(c.id); got != c.want {
			t.Errorf("QuoteName(%q) = %s, want %s", c.id, got, c.want)
		}
	}

	s := newRouteServer(t, nil)
	id := strings.Repeat("€", 100000/3) // 99999 bytes
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/apps/"+id+"/methods/Get", nil))
	var body struct{ Code, Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusNotFound || !utf8.Valid(rec.Body.Bytes()) {
		t.Fatalf("%d %.200s (%v)", rec.Code, rec.Body, err)
	}
	want := `no app "` + strings.Repeat("€", 21) + `"…(99999 bytes) here; apps: `
	if !strings.HasPrefix(body.Message, want) || len(body.Message) > 200 {
		t.Errorf("message %q, want %q and the apps", body.Message, want)
	}
}
