package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/examples/shop/orders"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// Backends and transports every benchmark runs on.
var (
	backends   = []string{"embedded", "memory"}
	transports = []string{"inproc", "http"}
)

// numSKUs is how many SKUs a fixture stocks. Parallel Create gives each
// goroutine its own SKU, so that the figure measures throughput rather than
// ETag contention on one stock level (see BenchmarkCreateHotSKU for that).
const numSKUs = 32

// numOrders is how many orders a fixture creates for Get to read.
const numOrders = 32

// fixture is a shop (orders + inventory) on one backend, reachable through
// one transport.
type fixture struct {
	srv  *host.Server
	call func(ctx context.Context, method string, body []byte) ([]byte, error)
	ids  []string // orders created at setup
	skus []string
	next atomic.Int64 // unique suffixes for customers
}

var discard = slog.New(slog.DiscardHandler)

func openBackend(tb testing.TB, name string) backend.Backend {
	tb.Helper()
	switch name {
	case "embedded":
		b, err := embedded.Open(embedded.Options{Dir: tb.TempDir(), Logger: discard})
		if err != nil {
			tb.Fatal(err)
		}
		return b
	case "memory":
		return memory.New(memory.Options{Logger: discard})
	}
	tb.Fatalf("unknown backend %q", name)
	return nil
}

// newFixture starts the shop on backendName, stocks every SKU with at least
// stock units and creates numOrders orders.
func newFixture(tb testing.TB, backendName, transport string, stock int) *fixture {
	tb.Helper()
	b := openBackend(tb, backendName)
	srv, err := native.NewServer(b, []*sdk.App{orders.App, inventory.App}, host.Options{Logger: discard})
	if err != nil {
		b.Close()
		tb.Fatal(err)
	}
	f := &fixture{srv: srv}
	switch transport {
	case "inproc":
		f.call = func(ctx context.Context, method string, body []byte) ([]byte, error) {
			return srv.Call(ctx, "orders", method, body)
		}
		tb.Cleanup(func() { b.Close() })
	case "http":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Close()
			tb.Fatal(err)
		}
		served := make(chan struct{})
		go func() { defer close(served); srv.Serve(ln) }()
		client := &http.Client{Transport: &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true,
		}}
		base := "http://" + ln.Addr().String() + "/v1/apps/orders/methods/"
		f.call = func(ctx context.Context, method string, body []byte) ([]byte, error) {
			return post(ctx, client, base+method, body)
		}
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			<-served
			client.CloseIdleConnections()
			b.Close()
		})
	default:
		b.Close()
		tb.Fatalf("unknown transport %q", transport)
	}

	// Setup runs concurrently: on the embedded backend concurrent writes
	// share commits (bbolt's Batch), so this takes a few fsyncs, not one per
	// write.
	ctx := context.Background()
	for i := range numSKUs {
		f.skus = append(f.skus, "sku-"+strconv.Itoa(i))
	}
	f.ids = make([]string, numOrders)
	errs := make(chan error, numSKUs+numOrders)
	var wg sync.WaitGroup
	for _, sku := range f.skus {
		wg.Go(func() {
			for left := stock; left > 0; left -= 1_000_000 {
				body := fmt.Appendf(nil, `{"sku":%q,"quantity":%d}`, sku, min(left, 1_000_000))
				if _, err := srv.Call(ctx, "inventory", "Restock", body); err != nil {
					errs <- fmt.Errorf("restock %s: %w", sku, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range f.ids {
		wg.Go(func() {
			out, err := f.call(ctx, "Create", f.createBody(f.skus[i%numSKUs]))
			if err != nil {
				errs <- fmt.Errorf("create: %w", err)
				return
			}
			var r struct {
				Order struct {
					ID string `json:"id"`
				} `json:"order"`
			}
			if err := sdk.Unmarshal(out, &r); err != nil || r.Order.ID == "" {
				errs <- fmt.Errorf("create reply %s: %v", out, err)
				return
			}
			f.ids[i] = r.Order.ID
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return f
}

// createBody returns a Create request for one unit of sku by a customer of
// its own: a customer's order index is rewritten on every Create, so reusing
// customers would make the cost grow with the run.
func (f *fixture) createBody(sku string) []byte {
	n := f.next.Add(1)
	b := make([]byte, 0, 96)
	b = append(b, `{"customer":"c`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `","sku":"`...)
	b = append(b, sku...)
	b = append(b, `","quantity":1}`...)
	return b
}

func getBody(id string) []byte { return []byte(`{"id":"` + id + `"}`) }

func post(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, host.DecodeError(resp.StatusCode, out)
	}
	return out, nil
}

// TestFixtures checks, untimed, that every backend and transport the
// benchmarks use serves Create and Get as the benchmarks expect.
func TestFixtures(t *testing.T) {
	for _, be := range backends {
		for _, tr := range transports {
			t.Run(be+"/"+tr, func(t *testing.T) {
				f := newFixture(t, be, tr, 10)
				ctx := context.Background()
				out, err := f.call(ctx, "Get", getBody(f.ids[0]))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(out, []byte(f.ids[0])) || !bytes.Contains(out, []byte(`"etag"`)) {
					t.Fatalf("Get reply %s", out)
				}
				if _, err := f.call(ctx, "Get", getBody("no-such-order")); !sdk.IsCode(err, sdk.NotFound) {
					t.Fatalf("Get of an unknown order: %v, want NotFound", err)
				}
				if _, err := f.call(ctx, "Create", f.createBody(f.skus[1])); err != nil {
					t.Fatal(err)
				}
				var se *sdk.Error
				if _, err := f.call(ctx, "Create", []byte(`{"customer":"x","sku":"sku-0","quantity":1000}`)); !errors.As(err, &se) || se.Code != sdk.FailedPrecondition {
					t.Fatalf("Create beyond stock: %v, want FailedPrecondition", err)
				}
			})
		}
	}
}
