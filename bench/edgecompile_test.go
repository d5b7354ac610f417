package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/roam-dev/roam/internal/wasmrt"
)

// BenchmarkEdgeCompile compiles the shop's two wasm modules from scratch
// (no compilation cache), as a cold `roam edge` start does, with the
// runtime (internal/wasmrt: wazero, or wazy with -tags roam_wazy)
// configured as the edge host configures it (the optimizing compiler,
// interruptible guests), three ways:
//
//   - serial: one module after the other on one compiler goroutine, which
//     is what the edge host does today;
//   - workers=N: one module after the other, each compiled by N goroutines
//     (the runtime's WithCompilationWorkers, N = GOMAXPROCS);
//   - parallel-modules: both modules at once, one goroutine each.
//
// It is what bounds the cold start (see BENCHMARKS.md, Edge). Each
// iteration takes seconds:
//
//	go test ./bench -run '^$' -bench EdgeCompile -benchtime 1x -count 3
//	go test -tags roam_wazy ./bench -run '^$' -bench EdgeCompile -benchtime 1x -count 3
func BenchmarkEdgeCompile(b *testing.B) {
	dir := b.TempDir()
	var mods [][]byte
	for _, app := range []string{"orders", "inventory"} {
		out := filepath.Join(dir, app+".wasm")
		cmd := exec.Command("go", "run", "./cmd/roam", "build", "--target", "wasm", "-o", out, "./examples/shop/"+app)
		cmd.Dir = ".."
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("roam build --target wasm %s: %v\n%s", app, err, msg)
		}
		wasm, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		mods = append(mods, wasm)
	}
	compile := func(b *testing.B, workers int, parallel bool) {
		for b.Loop() {
			ctx := context.Background()
			rt := wasmrt.NewRuntimeWithConfig(ctx, wasmrt.NewConfig(false, true).WithMemoryLimitPages(65536))
			if workers > 1 {
				ctx = wasmrt.WithCompilationWorkers(ctx, workers)
			}
			var wg sync.WaitGroup
			errs := make([]error, len(mods))
			for i, wasm := range mods {
				do := func() { _, errs[i] = rt.CompileModule(ctx, wasm) }
				if parallel {
					wg.Go(do)
				} else {
					do()
				}
			}
			wg.Wait()
			rt.Close(ctx)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	n := runtime.GOMAXPROCS(0)
	b.Run("serial", func(b *testing.B) { compile(b, 1, false) })
	b.Run("workers="+strconv.Itoa(n), func(b *testing.B) { compile(b, n, false) })
	b.Run("parallel-modules", func(b *testing.B) { compile(b, 1, true) })
}
