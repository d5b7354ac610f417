package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/oci"
	"github.com/roam-dev/roam/internal/syncbuf"
)

// TestEdgeOCI pushes a module as a wasm artifact to an in-process registry
// and runs `roam edge oci://...` on it: first with empty caches (pulled and
// compiled), then by digest with warm ones (no download), and answers a
// call each time.
func TestEdgeOCI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	dir := t.TempDir()
	root, _ := filepath.Abs("../..")
	mod := filepath.Join(dir, "conf.wasm")
	if _, err := build.Wasm(context.Background(), build.Options{Dir: root, Patterns: []string{"./conformance/testapp"}, Out: mod, Release: true}); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	art, err := oci.WasmArtifact(wasm, "conf.wasm", time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/conf"
	digest, err := oci.Push(context.Background(), repo+":v1", art)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "xdg")) // the pulled modules' cache
	compiled := filepath.Join(dir, "compiled")
	for _, c := range []struct{ name, ref string }{
		{"cold", "oci://" + repo + ":v1"},                 // pulled and compiled
		{"tag-warm", "oci://" + repo + ":v1"},             // tag resolved at the registry, module cached
		{"warm", "oci://" + repo + "@" + digest.String()}, // pinned by digest: no registry call
	} {
		start := time.Now()
		url, stop := startEdge(t, c.ref, filepath.Join(dir, "data-"+c.name), compiled)
		t.Logf("%s: roam edge %s ready in %s", c.name, c.ref, time.Since(start).Round(time.Millisecond))
		resp, err := http.Post(url+"/v1/apps/conformance/methods/Echo", "application/json", strings.NewReader(`{"via":"oci"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"via":"oci"}` {
			t.Fatalf("%s: Echo: %d %s", c.name, resp.StatusCode, body)
		}
		stop()
		if c.name == "tag-warm" {
			srv.Close() // warm and pinned by digest: no registry needed
		}
	}
	cached, _ := filepath.Glob(filepath.Join(dir, "xdg", "roam", "oci", "modules", "sha256", "*", "conf.wasm"))
	if len(cached) != 1 {
		t.Fatalf("cached modules: %v", cached)
	}
	if b, _ := os.ReadFile(cached[0]); !bytes.Equal(b, wasm) {
		t.Fatal("the cached module is not the one pushed")
	}
}

func startEdge(t *testing.T, ref, data, compiled string) (string, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"edge", ref, "--port", "0", "--data-dir", data, "--cache-dir", compiled,
			"--pool-size", "2", "--log-level", "warn", "--watch=false"}, &stdout, &stderr)
	}()
	ready := regexp.MustCompile(`roam: ready on (http://\S+) in `)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if m := ready.FindStringSubmatch(stdout.String()); m != nil {
			return m[1], func() {
				cancel()
				select {
				case <-done:
				case <-time.After(15 * time.Second):
					t.Fatal("roam edge did not shut down")
				}
			}
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("roam edge %s exited: %v\nstdout:\n%s\nstderr:\n%s", ref, err, stdout.String(), stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("roam edge not ready:\n%s\n%s", stdout.String(), stderr.String())
		}
	}
}

func TestDistCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dist", "--platforms", "linux"}, "--platforms"},
		{[]string{"dist", "--backends", "nope"}, "unknown backend"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), c.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("roam %s: %v, want an error containing %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
