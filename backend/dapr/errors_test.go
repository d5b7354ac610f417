package dapr

import (
	"errors"
	"io"
	"testing"

	"github.com/roam-dev/roam/sdk"
)

// Every SDK code survives the gRPC app channel: grpcCode is one-to-one and
// codeOfGRPC inverts it.
func TestGRPCCodesRoundTrip(t *testing.T) {
	seen := map[uint32]sdk.Code{}
	for c := sdk.OK; c <= sdk.Internal; c++ {
		g := grpcCode(c)
		if prev, dup := seen[uint32(g)]; dup {
			t.Fatalf("%v and %v both map to gRPC %v", prev, c, g)
		}
		seen[uint32(g)] = c
		if back := codeOfGRPC(g); back != c {
			t.Errorf("%v → gRPC %v → %v", c, g, back)
		}
	}
}

// The three shapes of an invocation's error reply through the sidecar.
func TestInvokeReplyErr(t *testing.T) {
	cases := []struct {
		status int
		body   string
		code   sdk.Code
		msg    string
	}{
		// A Roam host (HTTP app channel), passed through by the sidecar.
		{400, `{"code":"FailedPrecondition","message":"sku \"a\" has 2 available"}`, sdk.FailedPrecondition, `sku "a" has 2 available`},
		{409, `{"code":"Conflict","message":"stale"}`, sdk.Conflict, "stale"},
		// A gRPC app's status as the sidecar renders it.
		{400, `{"code":9,"message":"out of stock","details":[]}`, sdk.FailedPrecondition, "out of stock"},
		{404, `{"code":5, "message":"no app \"x\" here"}`, sdk.NotFound, `no app "x" here`},
		// The sidecar's own failure to reach the callee.
		{500, `{"errorCode":"ERR_DIRECT_INVOKE","message":"failed to invoke, id: x, err: couldn't find service: x"}`, sdk.Unavailable, ""},
		// Anything else, by status.
		{502, `bad gateway`, sdk.Unavailable, ""},
		{401, ``, sdk.FailedPrecondition, ""},
	}
	for _, c := range cases {
		err := invokeReplyErr("x", "M", c.status, []byte(c.body))
		if sdk.CodeOf(err) != c.code || (c.msg != "" && err.Error() != c.msg) {
			t.Errorf("%d %s: got %v %q, want %v %q", c.status, c.body, sdk.CodeOf(err), err, c.code, c.msg)
		}
	}
}

func TestETagOf(t *testing.T) {
	a := etagOf(stored{value: []byte("a"), version: "1", found: true})
	b := etagOf(stored{value: []byte("b"), version: "1", found: true})
	if a == b || a == "" || etagOf(stored{}) != "" {
		t.Fatalf("etags %q %q", a, b)
	}
	if ttlMeta(1)["ttlInSeconds"] != "1" || ttlMeta(1500e6)["ttlInSeconds"] != "2" || ttlMeta(0)["ttlInSeconds"] != "-1" {
		t.Fatalf("ttl rounding: %v %v %v", ttlMeta(1), ttlMeta(1500e6), ttlMeta(0))
	}
}

// classify on the messages Dapr's Redis store gives: an unreachable store
// is Unavailable even where its wording is a concurrency failure's, a real
// ETag mismatch is a Conflict, and "eof" inside a key is not an EOF.
func TestClassify(t *testing.T) {
	b := &Backend{}
	for _, tc := range []struct {
		code sdk.Code
		msg  string
		want sdk.Code
	}{
		{sdk.Internal, "failed saving state in state store statestore: failed to set key probe||k: dial tcp 127.0.0.1:37069: connect: connection refused", sdk.Unavailable},
		{sdk.Conflict, "possible etag mismatch. error from state store: dial tcp 127.0.0.1:37069: connect: connection refused", sdk.Unavailable},
		{sdk.Internal, "failed to get key: read tcp 127.0.0.1:1->127.0.0.1:2: EOF", sdk.Unavailable},
		{sdk.Internal, "failed to get key: unexpected EOF", sdk.Unavailable},
		{sdk.Conflict, "possible etag mismatch. error from state store: ERR Error running script: failed to set key geofence-1", sdk.Conflict},
		{sdk.Internal, "failed to set key videofile: etag mismatch", sdk.Conflict},
		{sdk.InvalidArgument, "state key is empty", sdk.InvalidArgument},
	} {
		if got := sdk.CodeOf(b.classify("state save s/k", tc.code, tc.msg)); got != tc.want {
			t.Errorf("%v %q: %v, want %v", tc.code, tc.msg, got, tc.want)
		}
	}
}

// readBody takes a body of exactly maxBody bytes and refuses a longer one,
// where a cut-off read would pass for the whole.
func TestReadBody(t *testing.T) {
	zeros := func(n int64) io.Reader { return io.LimitReader(zeroReader{}, n) }
	if b, err := readBody(zeros(maxBody)); err != nil || len(b) != maxBody {
		t.Errorf("%d bytes: %d read, %v", maxBody, len(b), err)
	}
	if _, err := readBody(zeros(maxBody + 1)); !errors.Is(err, errTooBig) {
		t.Errorf("%d bytes: %v, want errTooBig", maxBody+1, err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }
