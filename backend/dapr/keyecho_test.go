package dapr

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/roam-dev/roam/sdk"
)

// A state key may be 16 KiB. The backend's own messages name a key of up
// to 128 bytes as they did, and a longer one by sdk.QuoteKey's cut; the
// sidecar's messages, which name it too, are repeated cut at 512 bytes,
// and classified whole.
func TestKeyEchoMessages(t *testing.T) {
	short := "app|" + strings.Repeat("k", 124)
	if got := keyInMessage(short); got != short {
		t.Errorf("keyInMessage of 128 bytes: %q", got)
	}
	long := "app|" + strings.Repeat("€", (16<<10)/3)
	if got, want := keyInMessage(long), sdk.QuoteKey(long); got != want || len(got) > 200 {
		t.Errorf("keyInMessage of %d bytes: %q, want %q", len(long), got, want)
	}

	b := &Backend{httpBase: "http://127.0.0.1:3500"}
	what := "state save statestore/" + keyInMessage(long)
	for _, tc := range []struct {
		err  error
		want sdk.Code
	}{
		// The sidecar's HTTP API and its gRPC one (through classify): the
		// part that tells comes after the key, past any cut.
		{b.httpAPIErr(what, 500, []byte(`{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store statestore: failed to set key `+long+`: dial tcp 127.0.0.1:6379: connect: connection refused"}`)), sdk.Unavailable},
		{b.classify(what, sdk.Internal, "failed to set key "+long+": etag mismatch"), sdk.Conflict},
		{b.httpAPIErr(what, 409, []byte(`{"message":"`+long+`"}`)), sdk.Conflict},
		{b.transportErr(context.Background(), what, &url.Error{Op: "Post", URL: "http://127.0.0.1:3500/v1.0/state/statestore/" + url.PathEscape(long), Err: errors.New("connection refused")}), sdk.Unavailable},
	} {
		msg := tc.err.Error()
		if sdk.CodeOf(tc.err) != tc.want || len(msg) > 1024 || !utf8.ValidString(msg) || !strings.Contains(msg, keyInMessage(long)) {
			t.Errorf("%v, %d bytes: %.300q, want %v in a short message", sdk.CodeOf(tc.err), len(msg), msg, tc.want)
		}
	}
	// A short message is repeated whole, as it was.
	if got := b.classify("state get s/k", sdk.Internal, "boom").Error(); got != "dapr state get s/k: boom" {
		t.Errorf("short message: %q", got)
	}
	if got := clipMsg(strings.Repeat("a", 511) + "é"); got != strings.Repeat("a", 511)+"..." {
		t.Errorf("clipMsg cut a character: %q", got)
	}
}
