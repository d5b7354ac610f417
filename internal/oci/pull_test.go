package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// A registry that sends other bytes than the manifest names is refused,
// and nothing is cached.
func TestPullWasmVerifiesDigest(t *testing.T) {
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{0}, 64)...)
	art, err := WasmArtifact(wasm, "m.wasm", time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := art.Manifest()
	layer := m.Layers[0].Digest.String()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tamper := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tamper && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+layer) {
			w.Header().Set("Content-Length", "72")
			w.Write(append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{1}, 64)...))
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/m:v1"
	if _, err := Push(context.Background(), ref, art); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	tamper = true
	if _, err := PullWasm(context.Background(), Scheme+ref, cache); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("tampered module: %v, want a digest mismatch", err)
	}
	tamper = false
	p, err := PullWasm(context.Background(), Scheme+ref, cache)
	if err != nil || p.Cached || p.Layer != m.Layers[0].Digest {
		t.Fatalf("pull: %+v, %v", p, err)
	}
	if _, err := PullWasm(context.Background(), Scheme+strings.TrimSuffix(ref, ":v1")+":missing", cache); err == nil {
		t.Fatal("pulled a missing tag")
	}
}

// A manifest that names a module larger than a wasm module can be is
// refused before anything is downloaded: the module is read whole.
func TestPullWasmRefusesHugeModule(t *testing.T) {
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{0}, 64)...)
	art, err := WasmArtifact(wasm, "m.wasm", time.Unix(0, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := art.Manifest()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var blobGets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			blobGets.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/m:v1"
	if _, err := Push(context.Background(), ref, art); err != nil {
		t.Fatal(err)
	}
	// The same manifest, but naming a 2 GiB module, under another tag.
	m.Layers[0].Size = 2 << 30
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/m/manifests/huge", bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(m.MediaType))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("putting the manifest: %v %v", res, err)
	}
	blobGets.Store(0)
	_, err = PullWasm(context.Background(), Scheme+strings.TrimSuffix(ref, ":v1")+":huge", t.TempDir())
	if want := "the module is 2147483648 bytes; a wasm module is at most 1073741824"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("pull: %v, want an error containing %q", err, want)
	}
	if n := blobGets.Load(); n != 0 {
		t.Errorf("%d blob downloads, want none", n)
	}
}

func TestWasmArtifactRefusesNonWasm(t *testing.T) {
	if _, err := WasmArtifact([]byte("#!/bin/sh\necho hi\n"), "x.wasm", time.Unix(0, 0), nil); err == nil {
		t.Fatal("wrapped a shell script as a wasm module")
	}
}
