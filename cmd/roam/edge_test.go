package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/syncbuf"
)

// TestEdgeCommand runs `roam edge DIR` in-process on a built module and
// calls it over HTTP.
func TestEdgeCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	dir := t.TempDir()
	mods := filepath.Join(dir, "modules")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	if _, err := build.Wasm(context.Background(), build.Options{Dir: root, Patterns: []string{"./conformance/testapp"}, Out: filepath.Join(mods, "conf.wasm"), Release: true}); err != nil {
		t.Fatal(err)
	}
	cache := os.Getenv("ROAM_EDGE_TEST_CACHE")
	if cache == "" {
		if ucd, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(ucd, "roam", "edge-test") // shared with host/edge's tests
		} else {
			cache = filepath.Join(dir, "cache")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"edge", mods, "--port", "0", "--data-dir", filepath.Join(dir, "data"), "--cache-dir", cache,
			"--pool-size", "2", "--log-level", "warn"}, &stdout, &stderr)
	}()
	ready := regexp.MustCompile(`roam: ready on (http://\S+) in `)
	var url string
	deadline := time.Now().Add(60 * time.Second)
	for url == "" {
		if m := ready.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("roam edge exited: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("roam edge not ready:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	for _, want := range []string{"roam: module conf.wasm: app conformance, 2 instances", "roam: app conformance ", "roam: backend embedded"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	resp, err := http.Post(url+"/v1/apps/conformance/methods/Echo", "application/json", strings.NewReader(`{"via":"roam edge"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"via":"roam edge"}` {
		t.Fatalf("Echo: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	// The module served to browsers is the one the host runs, gzipped.
	wasm, err := os.ReadFile(filepath.Join(mods, "conf.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/web/modules/conformance.wasm", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/wasm" || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("module: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(zr)
	if !bytes.Equal(served, wasm) || len(gz) >= len(wasm) {
		t.Fatalf("served module: %d bytes gzipped to %d; want the %d bytes of conf.wasm, compressed", len(served), len(gz), len(wasm))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("roam edge: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("roam edge did not shut down")
	}
}

func TestEdgeCommandErrors(t *testing.T) {
	dir := t.TempDir()
	notWasm := filepath.Join(dir, "x.wasm")
	os.WriteFile(notWasm, []byte("hello"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"edge"}, "requires at least 1 arg"},
		{[]string{"edge", dir + "/missing.wasm"}, "no such file"},
		{[]string{"edge", t.TempDir()}, "holds no .wasm files"},
		{[]string{"edge", notWasm, "--data-dir", filepath.Join(dir, "d"), "--cache-dir", filepath.Join(dir, "c")}, "x.wasm: not a valid wasm module"},
		{[]string{"edge", notWasm, "--log-level", "loud"}, "--log-level"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("roam %s: %v, want an error containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
