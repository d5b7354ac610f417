package dapr

// The app channel's token check, over real HTTP and h2c gRPC on loopback,
// without a sidecar: a Backend is built with only what the app channel
// reads (the security audit; the end-to-end checks through daprd are
// TestTokens).

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	commonv1pb "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1pb "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// secEcho is a host.App with one method, Echo.
type secEcho struct{}

func (secEcho) ID() string                            { return "echo" }
func (secEcho) Methods() []string                     { return []string{"Echo"} }
func (secEcho) Subscriptions() []backend.Subscription { return nil }
func (secEcho) Call(_ context.Context, _ string, req []byte) ([]byte, error) {
	return req, nil
}
func (secEcho) Deliver(context.Context, *sdk.Event) error { return nil }

func secAppChannel(t *testing.T, token string, o host.Options) string {
	t.Helper()
	b := &Backend{opts: Options{AppAPIToken: token}, log: slog.New(slog.DiscardHandler), routes: map[routeKey]*route{}}
	srv := host.NewServer(b, o)
	if err := srv.Add(secEcho{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := srv.Start(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-errc
	})
	return ln.Addr().String()
}

func secDo(t *testing.T, method, url, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Transport{}).RoundTrip(req) // no redirects followed
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSecauditAppChannelToken(t *testing.T) {
	const tok = "s3cret"
	addr := secAppChannel(t, tok, host.Options{StateAPI: true, StateAPIToken: "state-tok"})
	u := "http://" + addr
	// The app channel, however its path is spelt, wants the token; a path
	// the mux would clean is redirected, never served.
	for _, c := range []struct{ method, path string }{
		{"POST", "/Echo"}, {"PUT", "/Echo"}, {"POST", "/%45cho"}, {"GET", "/dapr/subscribe"}, {"GET", "/dapr%2Fsubscribe"},
		{"POST", "/dapr/roam/events/pubsub/t"}, {"POST", "/dapr%2Froam%2Fevents%2Fpubsub%2Ft"}, {"HEAD", "/healthz"},
	} {
		for _, got := range []string{"", "s3cre", "s3cretx", "S3CRET", strings.Repeat("x", 64)} {
			hdr := map[string]string{}
			if got != "" {
				hdr["dapr-api-token"] = got
			}
			if st, body := secDo(t, c.method, u+c.path, `{}`, hdr); st != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d %s, want 401", c.method, c.path, got, st, body)
			}
		}
	}
	for _, p := range []string{"//Echo", "/x/../Echo", "/./Echo"} {
		if st, body := secDo(t, "POST", u+p, `{}`, nil); st < 300 || st >= 400 {
			t.Errorf("POST %s without a token: %d %s, want a redirect to the clean path", p, st, body)
		}
	}
	if st, body := secDo(t, "POST", u+"/Echo", `{"a":1}`, map[string]string{"dapr-api-token": tok}); st != 200 || body != `{"a":1}` {
		t.Errorf("POST /Echo with the token: %d %s", st, body)
	}
	// The host's own API: open without a token (probes, the scraper, an
	// ingress), refused with a wrong one.
	for _, p := range []string{"/healthz", "/metrics", "/v1/apps"} {
		if st, _ := secDo(t, "GET", u+p, "", nil); st != 200 {
			t.Errorf("GET %s without a token: %d, want 200", p, st)
		}
		if st, _ := secDo(t, "GET", u+p, "", map[string]string{"dapr-api-token": "guess"}); st != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", p, st)
		}
	}
	if st, body := secDo(t, "POST", u+"/v1/apps/echo/methods/Echo", `{}`, nil); st != 200 {
		t.Errorf("a method call on the host's API without a token: %d %s", st, body)
	}
	// The state sync API wants its own token; the app channel's does not
	// reach it at all (a call from the sidecar reaches methods only:
	// TestAppChannelMethodsOnly).
	if st, body := secDo(t, "POST", u+"/v1/apps/echo/state/s/bulk", `{"keys":["a"]}`, nil); st != http.StatusUnauthorized {
		t.Errorf("state API without its token: %d %s, want 401", st, body)
	}
	if st, body := secDo(t, "POST", u+"/v1/apps/echo/state/s/bulk", `{"keys":["a"]}`, map[string]string{"dapr-api-token": tok}); st != http.StatusNotFound {
		t.Errorf("state API with the app channel's token: %d %s, want 404", st, body)
	}

	// gRPC, on the same port (h2c).
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cb := runtimev1pb.NewAppCallbackClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inv := &commonv1pb.InvokeRequest{Method: "Echo", Data: &anypb.Any{Value: []byte(`{"g":1}`)}}
	for _, md := range []metadata.MD{nil, metadata.Pairs("dapr-api-token", "guess"), metadata.Pairs("dapr-api-token", "")} {
		c := ctx
		if md != nil {
			c = metadata.NewOutgoingContext(ctx, md)
		}
		if _, err := cb.OnInvoke(c, inv); status.Code(err) != codes.Unauthenticated {
			t.Errorf("OnInvoke with %v: %v, want Unauthenticated", md, err)
		}
		if _, err := cb.ListTopicSubscriptions(c, &emptypb.Empty{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("ListTopicSubscriptions with %v: %v, want Unauthenticated", md, err)
		}
		if _, err := cb.OnTopicEvent(c, &runtimev1pb.TopicEventRequest{PubsubName: "p", Topic: "t"}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("OnTopicEvent with %v: %v, want Unauthenticated", md, err)
		}
	}
	out, err := cb.OnInvoke(metadata.NewOutgoingContext(ctx, metadata.Pairs("dapr-api-token", tok)), inv)
	if err != nil || string(out.GetData().GetValue()) != `{"g":1}` {
		t.Errorf("OnInvoke with the token: %v %s", err, out.GetData().GetValue())
	}
}
