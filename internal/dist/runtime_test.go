package dist

import (
	"context"
	"debug/buildinfo"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/roam-dev/roam/internal/build"
)

// TestEdgeRuntime: --edge-runtime picks the runtime roam-edge links, and
// nothing else; an unknown name is refused.
func TestEdgeRuntime(t *testing.T) {
	if _, err := EdgeRuntimeTags("wasmtime"); err == nil || !strings.Contains(err.Error(), "wazero (the default) or wazy") {
		t.Errorf("err = %v", err)
	}
	if _, err := Build(context.Background(), Options{Out: t.TempDir(), EdgeRuntime: "v8"}); err == nil || !strings.Contains(err.Error(), `unknown edge runtime "v8"`) {
		t.Errorf("Build: err = %v", err)
	}
	for _, rt := range []struct{ name, links, not string }{
		{"wazero", "github.com/tetratelabs/wazero", "github.com/samyfodil/wazy"},
		{"wazy", "github.com/samyfodil/wazy", "github.com/tetratelabs/wazero"},
	} {
		tags, err := EdgeRuntimeTags(rt.name)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), EdgeName)
		if err := goBuildCommand(context.Background(), root(t), EdgeCmd, out, build.Target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}, "test", tags); err != nil {
			t.Fatal(err)
		}
		bi, err := buildinfo.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		deps := map[string]bool{}
		for _, d := range bi.Deps {
			deps[d.Path] = true
		}
		if !deps[rt.links] || deps[rt.not] {
			t.Errorf("%s: roam-edge links %s: %v, %s: %v", rt.name, rt.links, deps[rt.links], rt.not, deps[rt.not])
		}
	}
}
