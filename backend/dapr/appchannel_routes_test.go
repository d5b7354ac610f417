package dapr

import (
	"context"
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

	commonv1pb "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1pb "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/roam-dev/roam/host"
)

// TestAppChannelMethodsOnly: a call from the sidecar reaches the app's
// methods, not the host's other routes. A caller that Dapr lets invoke this
// app used to name a route as the method (daprd calls /{method} with the
// token) and read the app's raw state through the state sync API, run the
// profiler, or call another app served by the host.
func TestAppChannelMethodsOnly(t *testing.T) {
	const tok = "s3cret"
	addr := secAppChannel(t, tok, host.Options{StateAPI: true, Pprof: true})
	u := "http://" + addr
	sidecar := map[string]string{"dapr-api-token": tok}
	for _, p := range []string{"/v1/apps/echo/state/s/bulk", "/v1/apps/echo/methods/Echo", "/debug/pprof/cmdline", "/v1/apps"} {
		st, body := secDo(t, "POST", u+p, `{"keys":["a"]}`, sidecar)
		if st != http.StatusNotFound || !strings.Contains(body, `"NotFound"`) || !strings.Contains(body, "one path segment") {
			t.Errorf("POST %s from the sidecar: %d %s, want 404 naming the app channel's methods", p, st, body)
		}
	}
	// The app channel itself, and the host's API called by others.
	if st, body := secDo(t, "POST", u+"/Echo", `{"a":1}`, sidecar); st != 200 || body != `{"a":1}` {
		t.Errorf("POST /Echo from the sidecar: %d %s", st, body)
	}
	if st, body := secDo(t, "GET", u+"/dapr/subscribe", "", sidecar); st != 200 {
		t.Errorf("GET /dapr/subscribe from the sidecar: %d %s", st, body)
	}
	if st, body := secDo(t, "POST", u+"/v1/apps/echo/methods/Echo", `{}`, nil); st != 200 {
		t.Errorf("the host's API without a token: %d %s", st, body)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cb := runtimev1pb.NewAppCallbackClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("dapr-api-token", tok))
	for _, m := range []string{"v1/apps/echo/state/s/bulk", "/v1/apps/echo/methods/Echo", "debug/pprof/cmdline"} {
		_, err := cb.OnInvoke(ctx, &commonv1pb.InvokeRequest{Method: m, Data: &anypb.Any{Value: []byte(`{"keys":["a"]}`)}})
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "one path segment") {
			t.Errorf("OnInvoke %s: %v, want NotFound naming the app channel's methods", m, err)
		}
	}
	if out, err := cb.OnInvoke(ctx, &commonv1pb.InvokeRequest{Method: "Echo", Data: &anypb.Any{Value: []byte(`{"g":1}`)}}); err != nil || string(out.GetData().GetValue()) != `{"g":1}` {
		t.Errorf("OnInvoke Echo: %v", err)
	}
}
