package edge

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/syncbuf"
)

var mpReadyRE = regexp.MustCompile(`^roam: ready on (http://\S+) in \S+ \(metrics (http://\S+)/metrics\)$`)

// TestMetricsPortRun: --metrics-port reaches the edge host's server: the
// ready line names it, /metrics answers there and 404s on the serving
// port, and both ports close when Run returns.
func TestMetricsPortRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := fcConfig(t, filepath.Join(modDir, "testapp.wasm"))
	cfg.CacheDir = cacheDir
	cfg.MetricsPort = port
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	stderr := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, pw, stderr)
		pw.Close()
	}()
	lines := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := mpReadyRE.FindStringSubmatch(sc.Text()); m != nil {
				lines <- m
			}
		}
		io.Copy(io.Discard, pr)
	}()
	var m []string
	select {
	case m = <-lines:
	case err := <-done:
		t.Fatalf("Run: %v\n%s", err, stderr)
	case <-time.After(3 * time.Minute):
		t.Fatalf("the edge host is not ready:\n%s", stderr)
	}
	main, metrics := m[1], m[2]
	if want := "http://127.0.0.1:" + strconv.Itoa(port); metrics != want {
		t.Errorf("ready line's metrics URL %s, want %s", metrics, want)
	}
	c := &http.Client{Transport: &http.Transport{}}
	get := func(url string) int {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.HasSuffix(url, "/metrics") && !strings.Contains(string(b), "go_goroutines") {
			t.Errorf("GET %s: not the host's metrics: %.200s", url, b)
		}
		return resp.StatusCode
	}
	if code := get(metrics + "/metrics"); code != 200 {
		t.Errorf("/metrics on --metrics-port: %d, want 200", code)
	}
	if code := get(main + "/metrics"); code != 404 {
		t.Errorf("/metrics on --port: %d, want 404", code)
	}
	if code := get(main + "/healthz"); code != 200 {
		t.Errorf("/healthz on --port: %d, want 200", code)
	}
	if code := get(metrics + "/healthz"); code != 404 {
		t.Errorf("/healthz on --metrics-port: %d, want 404", code)
	}
	c.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("Run did not return")
	}
	for _, u := range []string{main, metrics} {
		if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(u, "http://"), time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Run returned", u)
		}
	}
}
