package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/build"
)

// The modules under test, built once by TestMain with the same build as
// `roam build --target wasm`; never committed.
var (
	confWasm, ordersWasm, inventoryWasm []byte
	// modDir holds the built files; cacheDir is the compilation cache the
	// tests share.
	modDir, cacheDir string
)

var fastRetry = backend.RetryPolicy{MaxAttempts: 4, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "roam-edge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	modDir = filepath.Join(dir, "modules")
	// The compilation cache outlives the test run, as it does in
	// production: compiling the three modules from scratch costs seconds
	// (a minute under the race detector). Its entries are keyed by content
	// and wazero version, so reuse is safe. TestCompilationCacheReused uses
	// a directory of its own.
	cacheDir = os.Getenv("ROAM_EDGE_TEST_CACHE")
	if cacheDir == "" {
		if ucd, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(ucd, "roam", "edge-test")
		} else {
			cacheDir = filepath.Join(dir, "cache")
		}
	}
	if err := os.MkdirAll(modDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, mod := range []struct {
		pkg string
		out *[]byte
	}{
		{"./conformance/testapp", &confWasm},
		{"./examples/shop/orders", &ordersWasm},
		{"./examples/shop/inventory", &inventoryWasm},
	} {
		file := filepath.Join(modDir, filepath.Base(mod.pkg)+".wasm")
		if _, err := build.Wasm(context.Background(), build.Options{Dir: root, Patterns: []string{mod.pkg}, Out: file, Release: true}); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", mod.pkg, err)
			return 1
		}
		if *mod.out, err = os.ReadFile(file); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// testLogger discards records unless -v asks for them.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// newRuntime returns a runtime on the shared cache, closed with the test.
func newRuntime(t testing.TB, metrics *host.Metrics) *Runtime {
	t.Helper()
	o := RuntimeOptions{CacheDir: cacheDir, Logger: testLogger(t)}
	if metrics != nil {
		o.Registerer = metrics.Registry
	}
	rt, err := NewRuntime(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

// edgeServer is an edge host with modules on a fresh embedded backend.
type edgeServer struct {
	url  string
	srv  *host.Server
	mods map[string]*Module
	b    backend.Backend
}

func newEdgeServer(t testing.TB, mo ModuleOptions, so host.Options, wasms ...[]byte) *edgeServer {
	t.Helper()
	so.Metrics = host.NewMetrics(nil)
	b, err := embedded.Open(embedded.Options{Dir: t.TempDir(), Retry: fastRetry, Logger: testLogger(t), OnDeliver: so.Metrics.OnDeliver})
	if err != nil {
		t.Fatal(err)
	}
	so.Logger = testLogger(t)
	srv := host.NewServer(b, so)
	rt := newRuntime(t, so.Metrics)
	bind := Binding{Backend: b, Invoker: srv.Invoker, Logger: testLogger(t), Tracing: srv.Tracing()}
	es := &edgeServer{srv: srv, mods: map[string]*Module{}, b: b}
	for _, w := range wasms {
		m, err := rt.Load(context.Background(), w, mo, bind)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Add(m); err != nil {
			t.Fatal(err)
		}
		es.mods[m.ID()] = m
	}
	if err := srv.StartDeliveries(); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	// Cleanups run last-in first-out: the HTTP server, then the backend
	// (waiting for deliveries), then the runtime registered above.
	t.Cleanup(func() {
		ts.Close()
		b.Close()
	})
	es.url = ts.URL
	return es
}

// post calls app.method over HTTP and returns the status and body.
func post(t testing.TB, url, app, method, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/apps/"+app+"/methods/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// load keeps workers calling the conformance app over HTTP until stop,
// each call chosen by next (the method, the body, and the reply wanted),
// and counts the calls answered 200 with the wanted reply and the others.
type load struct {
	ok, failed atomic.Int64
	firstErr   atomic.Value // the first failure, as text
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(url string, workers int, next func(w, n int) (method, body, want string)) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for w := 0; w < workers; w++ {
		l.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				method, body, want := next(w, n)
				resp, err := client.Post(url+"/v1/apps/conformance/methods/"+method, "application/json", strings.NewReader(body))
				if err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != want {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, fmt.Sprint(resp.StatusCode, " ", string(b)))
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

// stop ends the calls, waits for the workers, and fails t if any call
// failed.
func (l *load) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if l.failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", l.failed.Load(), l.failed.Load()+l.ok.Load(), l.firstErr.Load())
	}
}
