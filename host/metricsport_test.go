package host

// --metrics-port: /metrics on a port of its own, over real loopback HTTP.

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/internal/syncbuf"
)

// mpDo answers a request to url, with its body.
func mpDo(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mpRefused waits for a connection to addr to be refused.
func mpRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after ServeUntilDone returned", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsPortServes: with ServeOptions.Metrics (--metrics-port),
// /metrics answers on that port, and on it alone: the serving port answers
// 404 to it, whatever the verb, and the metrics port serves nothing else.
// The ready line names the metrics port's URL, and both ports close at
// shutdown.
func TestMetricsPortServes(t *testing.T) {
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	srv := NewServer(b, Options{})
	if err := srv.Add(newGateApp()); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	mln, err := ListenMetrics("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	main, metrics := "http://"+ln.Addr().String(), "http://"+mln.Addr().String()
	stdout := &syncbuf.Buffer{}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- ServeUntilDone(ctx, srv, b, ln, ServeOptions{Stdout: stdout, Start: time.Now(), Grace: 10 * time.Second,
			Metrics: mln, OnReady: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("ServeUntilDone: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("not ready")
	}
	// The ready line keeps its shape, with the metrics port's URL.
	if want := "roam: ready on " + main + " in "; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	if want := "(metrics " + metrics + "/metrics)\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}

	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	if code, body := mpDo(t, c, "GET", metrics+"/metrics", ""); code != 200 || !strings.Contains(body, "# TYPE go_goroutines gauge") {
		t.Errorf("GET /metrics on the metrics port: %d %.200s; want 200 and the host's metrics", code, body)
	}
	for _, m := range []string{"GET", "HEAD", "POST"} {
		if code, body := mpDo(t, c, m, main+"/metrics", "{}"); code != 404 {
			t.Errorf("%s /metrics on the serving port: %d %s; want 404", m, code, body)
		}
	}
	// The serving port serves the rest as before.
	if code, _ := mpDo(t, c, "GET", main+"/healthz", ""); code != 200 {
		t.Errorf("GET /healthz on the serving port: %d", code)
	}
	if code, body := mpDo(t, c, "POST", main+"/v1/apps/gate/methods/Echo", `{"a":1}`); code != 200 || body != `{"a":1}` {
		t.Errorf("a call on the serving port: %d %s", code, body)
	}
	// The metrics port serves nothing but /metrics.
	for _, p := range []string{"/healthz", "/readyz", "/v1/apps", "/v1/apps/gate/methods/Echo", "/v1/apps/gate/state/sync", "/"} {
		for _, m := range []string{"GET", "POST"} {
			if code, body := mpDo(t, c, m, metrics+p, "{}"); code != 404 {
				t.Errorf("%s %s on the metrics port: %d %s; want 404", m, p, code, body)
			}
		}
	}
	if code, _ := mpDo(t, c, "POST", metrics+"/metrics", "{}"); code != 405 {
		t.Errorf("POST /metrics on the metrics port: %d, want 405", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeUntilDone: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("ServeUntilDone did not return")
	}
	c.CloseIdleConnections()
	mpRefused(t, ln.Addr().String())
	mpRefused(t, mln.Addr().String())
}

// TestMetricsPortDefault: without ServeOptions.Metrics (--metrics-port 0,
// the default), /metrics is on the serving port, as it always was, and the
// ready line says so.
func TestMetricsPortDefault(t *testing.T) {
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	srv := NewServer(b, Options{})
	ln, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	main := "http://" + ln.Addr().String()
	stdout := &syncbuf.Buffer{}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ServeUntilDone(ctx, srv, b, ln, ServeOptions{Stdout: stdout, Start: time.Now(), Grace: 10 * time.Second, OnReady: func() { close(ready) }})
	}()
	select {
	case <-ready:
	case <-time.After(time.Minute):
		t.Fatal("not ready")
	}
	c := &http.Client{Transport: &http.Transport{}}
	if code, body := mpDo(t, c, "GET", main+"/metrics", ""); code != 200 || !strings.Contains(body, "# TYPE go_goroutines gauge") {
		t.Errorf("GET /metrics on the serving port: %d %.200s", code, body)
	}
	c.CloseIdleConnections()
	if want := "(metrics " + main + "/metrics)\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, stdout)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestMetricsPortInUse: a --metrics-port in use is named as such.
func TestMetricsPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := ListenMetrics("127.0.0.1", port); err == nil || !strings.Contains(err.Error(), "--metrics-port") || !strings.Contains(err.Error(), "in use") {
		t.Errorf("ListenMetrics on a port in use: %v", err)
	}
}

// TestMetricsPortFlag: --metrics-port parses, passes through Args only
// when set, and Check refuses a port out of range and one equal to --port.
func TestMetricsPortFlag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	for _, c := range []struct {
		args []string
		want string // "" for accepted
	}{
		{nil, ""},
		{[]string{"--metrics-port", "9464"}, ""},
		{[]string{"--port", "0", "--metrics-port", "9464"}, ""},
		{[]string{"--port", "0", "--metrics-port", "0"}, ""},
		{[]string{"--metrics-port", "0"}, ""},
		{[]string{"--metrics-port", "70000"}, "--metrics-port 70000: use 1 to 65535, or 0 to serve /metrics on --port"},
		{[]string{"--metrics-port", "-1"}, "--metrics-port -1: use 1 to 65535"},
		{[]string{"--metrics-port", "8080"}, "--metrics-port 8080 is --port too"},
		{[]string{"--port", "9464", "--metrics-port", "9464"}, "--metrics-port 9464 is --port too"},
	} {
		f, err := parseFlagsFC(t, append([]string{"--data-dir", dir}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		err = f.Check()
		if c.want == "" && err != nil {
			t.Errorf("%v: Check() = %v, want nil", c.args, err)
		}
		if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: Check() = %v, want an error containing %q", c.args, err, c.want)
		}
	}
	f, err := parseFlagsFC(t, "--metrics-port", "9464")
	if err != nil || f.MetricsPort != 9464 {
		t.Fatalf("--metrics-port 9464: %d, %v", f.MetricsPort, err)
	}
	back, err := parseFlagsFC(t, f.Args()...)
	if err != nil || !reflect.DeepEqual(back, f) {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, f)
	}
	def, _ := parseFlagsFC(t)
	if def.MetricsPort != 0 || strings.Contains(strings.Join(def.Args(), " "), "--metrics-port") {
		t.Errorf("default %d, args %v: want 0 and no --metrics-port", def.MetricsPort, def.Args())
	}
}
