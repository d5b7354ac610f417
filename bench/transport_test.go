package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// The benchmarks in this file split orders.Get's cost into its parts: the
// host's HTTP transport alone (BenchmarkTransport), and the SDK's JSON codec
// on the shop's types (BenchmarkCodec). Together with BenchmarkGet they say
// where a Get's time goes beyond what bare net/http spends.

// getReply is what orders.Get returns for a typical order.
var getReply = []byte(`{"order":{"id":"9d77d09512ff340f","customer":"c123","sku":"sku-7","quantity":1,"status":"created"},"etag":"42"}`)

// fixedApp is a host.App whose only method returns fixed bytes: what remains
// of a call when the app does no work.
type fixedApp struct{ reply []byte }

func (a fixedApp) ID() string                            { return "orders" }
func (a fixedApp) Methods() []string                     { return []string{"Get"} }
func (a fixedApp) Subscriptions() []backend.Subscription { return nil }
func (a fixedApp) Deliver(context.Context, *sdk.Event) error {
	return sdk.NewError(sdk.NotFound, "no subscriptions")
}
func (a fixedApp) Call(_ context.Context, method string, _ []byte) ([]byte, error) {
	if method != "Get" {
		return nil, sdk.NewError(sdk.NotFound, "no method "+method)
	}
	return a.reply, nil
}

// bareHandler is plain net/http: read the body, write the fixed reply.
func bareHandler(reply []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/apps/orders/methods/Get", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(reply)
	})
	return mux
}

// serveHTTP serves h on a loopback listener with the host's server settings
// and returns the Get URL and a client for it.
func serveHTTP(tb testing.TB, h http.Handler) (string, *http.Client) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadTimeout: 30 * time.Second, ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go srv.Serve(ln)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}}
	tb.Cleanup(func() {
		srv.Close()
		client.CloseIdleConnections()
	})
	return "http://" + ln.Addr().String() + "/v1/apps/orders/methods/Get", client
}

// BenchmarkTransport compares one HTTP call to an app that does no work
// through the host's transport (request id, body limit, JSON validation,
// deadline, metrics, panic recovery) with the same exchange on bare
// net/http. Client and server share the process, so ns/op is the cost of
// both; the difference between the two is the host's.
func BenchmarkTransport(b *testing.B) {
	body := []byte(`{"id":"9d77d09512ff340f"}`)
	handlers := map[string]func(b *testing.B) http.Handler{
		"bare": func(*testing.B) http.Handler { return bareHandler(getReply) },
		"roam": func(b *testing.B) http.Handler {
			mb := memory.New(memory.Options{Logger: discard})
			b.Cleanup(func() { mb.Close() })
			srv := host.NewServer(mb, host.Options{Logger: discard})
			if err := srv.Add(fixedApp{getReply}); err != nil {
				b.Fatal(err)
			}
			return srv.Handler()
		},
	}
	for _, name := range []string{"bare", "roam"} {
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				url, client := serveHTTP(b, handlers[name](b))
				ctx := context.Background()
				if out, err := post(ctx, client, url, body); err != nil || string(out) != string(getReply) {
					b.Fatalf("reply %s, %v", out, err)
				}
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for i := 0; i < b.N; i++ {
						if _, err := post(ctx, client, url, body); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism(parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := post(ctx, client, url, body); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkCodec measures the SDK codec (encoding/json by reflection, as the
// shop's types do not implement AppendJSON/DecodeJSON) on one orders.Get:
// decoding the request and the stored order, encoding the reply.
func BenchmarkCodec(b *testing.B) {
	b.Run("decode-OrderRef", func(b *testing.B) {
		in := []byte(`{"id":"9d77d09512ff340f"}`)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var r contract.OrderRef
			if err := sdk.Unmarshal(in, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-Order", func(b *testing.B) {
		in := []byte(`{"id":"9d77d09512ff340f","customer":"c123","sku":"sku-7","quantity":1,"status":"created"}`)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var o contract.Order
			if err := sdk.Unmarshal(in, &o); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-OrderReply", func(b *testing.B) {
		r := contract.OrderReply{Order: contract.Order{ID: "9d77d09512ff340f", Customer: "c123", SKU: "sku-7", Quantity: 1, Status: "created"}, ETag: "42"}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := sdk.Marshal(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
