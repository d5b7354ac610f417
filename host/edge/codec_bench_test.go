package edge

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/jsonbench"
	"github.com/roam-dev/roam/internal/wasmrt"
)

// BenchmarkGuestCodec measures the SDK's JSON codec work of orders.Get and
// orders.Create (package internal/jsonbench: decode the request and the
// stored values, encode the calls and the reply), natively and inside a
// wasm guest, with the generated codecs and with encoding/json's
// reflection:
//
//	go test ./host/edge -run='^$' -bench=BenchmarkGuestCodec
//
// A guest runs b.N operations in one call, so ns/op is the guest's time per
// operation (one call's overhead spread over b.N); guest-ns/op is the same
// measured inside the guest.
func BenchmarkGuestCodec(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	wasm := jsonbenchWasm(b)
	be := memory.New(memory.Options{})
	defer be.Close()
	parent := b
	load := func(b *testing.B) *Module {
		// The parent owns the runtime: a sub-benchmark's cleanups run
		// after each of its rounds.
		m, err := newRuntime(parent, nil).Load(ctx, wasm, ModuleOptions{PoolSize: 1, Timeout: time.Hour}, Binding{Backend: be})
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	guest := func(m **Module, uninterruptibleRT bool, op, codec string) func(*testing.B) {
		return func(b *testing.B) {
			if *m == nil {
				uninterruptible = uninterruptibleRT
				*m = load(b)
				uninterruptible = false
			}
			req := []byte(`{"op":"` + op + `","codec":"` + codec + `","n":` + strconv.Itoa(b.N) + `}`)
			b.ResetTimer()
			out, err := (*m).Call(ctx, "Run", req)
			if err != nil {
				b.Fatal(err)
			}
			var r struct {
				NsPerOp int64 `json:"ns_per_op"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(r.NsPerOp), "guest-ns/op")
		}
	}
	var edge, edgeU *Module
	for _, op := range []string{"get", "create"} {
		for _, codec := range []string{"generated", "reflect"} {
			b.Run(op+"/"+codec+"/native", func(b *testing.B) {
				if _, err := jsonbench.Run(op, codec, b.N); err != nil {
					b.Fatal(err)
				}
			})
			b.Run(op+"/"+codec+"/edge", guest(&edge, false, op, codec))
			if !wasmrt.AlwaysInterruptible {
				b.Run(op+"/"+codec+"/edge-uninterruptible", guest(&edgeU, true, op, codec))
			}
		}
	}
}

var jsonbenchBuild struct {
	sync.Once
	wasm []byte
	err  error
}

// jsonbenchWasm builds internal/jsonbench/app once per test binary.
func jsonbenchWasm(tb testing.TB) []byte {
	jsonbenchBuild.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			jsonbenchBuild.err = err
			return
		}
		file := filepath.Join(modDir, "jsonbench.wasm")
		if _, err := build.Wasm(context.Background(), build.Options{Dir: root, Patterns: []string{"./internal/jsonbench/app"}, Out: file, Release: true}); err != nil {
			jsonbenchBuild.err = err
			return
		}
		jsonbenchBuild.wasm, jsonbenchBuild.err = os.ReadFile(file)
	})
	if jsonbenchBuild.err != nil {
		tb.Fatal(jsonbenchBuild.err)
	}
	return jsonbenchBuild.wasm
}
