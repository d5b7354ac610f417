package dist

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/roam-dev/roam/internal/build"
)

// TestOutsideModule: `cd /tmp && roam dist /abs/path/to/app` builds the
// app in its own module. The builds ran go in the working directory, where
// the app's import path means nothing ("go list ... not in a module"), so
// dist found the apps and then failed every build. The commit stamped in
// the binary is the module's too, not that of whatever repository the
// working directory is in (none here).
//
// One app, one native platform (the host's), its module, no edge host,
// operator or images: the smallest dist that runs every kind of app build.
func TestOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an app natively and as a wasm module")
	}
	r := root(t)
	t.Chdir(t.TempDir()) // outside any module, and outside the repository
	out := filepath.Join(t.TempDir(), "dist")
	host := build.Target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	res, err := Build(context.Background(), Options{
		Patterns: []string{filepath.Join(r, "examples", "shop", "orders")}, Out: out, Platforms: []build.Target{host},
		Version: "v0.0.0-test", NoEdge: true, NoOperator: true, NoImages: true, Jobs: 2, Progress: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Apps) != 1 || res.Apps[0].Name != "orders" || res.Apps[0].Wasm == "" {
		t.Fatalf("apps = %+v", res.Apps)
	}
	bin := filepath.Join(out, host.GOOS+"_"+host.GOARCH, "orders")
	for _, f := range []string{bin, filepath.Join(out, res.Apps[0].Wasm), filepath.Join(out, "SHA256SUMS")} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if commit := gitOutput(r, "rev-parse", "HEAD"); commit != "" {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(commit)) {
			t.Errorf("%s does not carry the module's commit %s", bin, commit)
		}
	}
}
