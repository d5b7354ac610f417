package native_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/syncbuf"
)

var mpReadyRE = regexp.MustCompile(`roam: ready on (http://\S+) in \S+ \(metrics (http://\S+)/metrics\)\n`)

// TestMetricsPortRun: --metrics-port reaches the native host's server:
// the ready line names it, /metrics answers there and 404s on the serving
// port, and both ports close when Run returns.
func TestMetricsPortRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- native.Run(ctx, []string{"--port", "0", "--metrics-port", port, "--data-dir", t.TempDir(), "--apps", "inventory"}, stdout, stderr)
	}()
	deadline := time.Now().Add(time.Minute)
	var m []string
	for m = mpReadyRE.FindStringSubmatch(stdout.String()); m == nil; m = mpReadyRE.FindStringSubmatch(stdout.String()) {
		select {
		case err := <-done:
			t.Fatalf("Run: %v\n%s\n%s", err, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not ready:\n%s\n%s", stdout, stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	main, metrics := m[1], m[2]
	if want := "http://127.0.0.1:" + port; metrics != want {
		t.Errorf("ready line's metrics URL %s, want %s", metrics, want)
	}
	c := &http.Client{Transport: &http.Transport{}}
	get := func(url string) int {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(metrics + "/metrics"); code != 200 {
		t.Errorf("/metrics on --metrics-port: %d, want 200", code)
	}
	if code := get(main + "/metrics"); code != 404 {
		t.Errorf("/metrics on --port: %d, want 404", code)
	}
	if code := get(main + "/readyz"); code != 200 {
		t.Errorf("/readyz on --port: %d, want 200", code)
	}
	if code := get(metrics + "/readyz"); code != 404 {
		t.Errorf("/readyz on --metrics-port: %d, want 404", code)
	}
	c.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return")
	}
	for _, u := range []string{main, metrics} {
		if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "http://"), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Run returned", u)
		}
	}
}
