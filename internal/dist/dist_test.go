package dist

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/roam-dev/roam/internal/oci"
)

// The shop is built once, into distA, and the tests share it; the
// reproducibility test builds it a second time.
var (
	once  sync.Once
	distA string
	resA  *Result
	errA  error
	tmpA  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpA != "" {
		os.RemoveAll(tmpA)
	}
	os.Exit(code)
}

func root(t *testing.T) string {
	r, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func shopOptions(t *testing.T, out string) Options {
	return Options{Dir: root(t), Patterns: []string{"./examples/shop"}, Out: out, Version: "v0.0.0-test",
		Backends: []string{"embedded", "dapr"}, Progress: testWriter{t}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func shop(t *testing.T) (string, *Result) {
	if testing.Short() {
		t.Skip("builds the shop for two platforms")
	}
	once.Do(func() {
		tmpA, errA = os.MkdirTemp("", "roam-dist-a-")
		if errA != nil {
			return
		}
		distA = filepath.Join(tmpA, "dist")
		start := time.Now()
		resA, errA = Build(context.Background(), shopOptions(t, distA))
		t.Logf("dist built in %s", time.Since(start).Round(time.Millisecond))
	})
	if errA != nil {
		t.Fatal(errA)
	}
	return distA, resA
}

func image(res *Result, name string) *Image {
	for _, img := range res.Images {
		if img.Name == name {
			return img
		}
	}
	return nil
}

func TestDistContents(t *testing.T) {
	dir, res := shop(t)
	for _, f := range []string{"linux_amd64/orders", "linux_arm64/orders", "linux_amd64/inventory", "linux_amd64/roam-edge", "linux_arm64/roam-edge",
		"wasm/orders.wasm", "wasm/inventory.wasm", "web/index.html", "web/dist/shop.js", "web/dist/roam-worker.js",
		"oci/orders/index.json", "oci/orders/oci-layout", "oci/roam-edge/index.json", "oci/orders-wasm/index.json", "SHA256SUMS",
		"linux_amd64/roam-operator", "linux_arm64/roam-operator", "oci/roam-operator/index.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	// SHA256SUMS checks with sha256sum -c.
	if _, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command("sha256sum", "--quiet", "-c", "SHA256SUMS")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, out)
		}
	}
	// Static, stamped binaries: go version -m reads the build settings.
	out, err := exec.Command("go", "version", "-m", filepath.Join(dir, "linux_arm64", "orders")).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOARCH=arm64", "-trimpath=true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("linux_arm64/orders: build info lacks %q:\n%s", want, out)
		}
	}
	// -trimpath keeps -ldflags out of the build info: look for the stamp.
	// (The apps' host/native.Version and Commit are stamped too, but kept
	// by the linker only once the native host uses them.)
	b, err := os.ReadFile(filepath.Join(dir, "linux_amd64", "roam-edge"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("v0.0.0-test")) {
		t.Errorf("linux_amd64/roam-edge: version not stamped")
	}
	// Image sizes: at most 10 MB compressed per platform, for the apps and
	// the edge host (cmd/roam-edge, the edge host alone). The operator
	// links client-go and controller-runtime and runs once per cluster.
	for _, img := range res.Images {
		for plat, n := range img.Sizes {
			t.Logf("%s %s: %.2f MB compressed", img.Name, plat, float64(n)/1e6)
			if n > 10e6 && img.Name != OperatorName {
				t.Errorf("image %s for %s is %.2f MB compressed, more than 10 MB", img.Name, plat, float64(n)/1e6)
			}
		}
	}
}

// TestReproducible builds the shop a second time, into another directory,
// and wants the same bytes in every file.
func TestReproducible(t *testing.T) {
	dirA, _ := shop(t)
	dirB := filepath.Join(t.TempDir(), "elsewhere", "dist")
	if _, err := Build(context.Background(), shopOptions(t, dirB)); err != nil {
		t.Fatal(err)
	}
	a, b := digests(t, dirA), digests(t, dirB)
	if len(a) < 40 {
		t.Fatalf("only %d files in %s", len(a), dirA)
	}
	for f, d := range a {
		if b[f] != d {
			t.Errorf("%s differs between two builds: %s and %s", f, d, b[f])
		}
	}
	for f := range b {
		if _, ok := a[f]; !ok {
			t.Errorf("%s only in the second build", f)
		}
	}
}

func digests(t *testing.T, dir string) map[string]string {
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel], err = FileDigest(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSkopeo reads the layouts with Debian's skopeo: both architectures,
// user 65532, an entrypoint, the labels.
func TestSkopeo(t *testing.T) {
	dir, _ := shop(t)
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed (test.sh installs it)")
	}
	skopeo := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command("skopeo", args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	for _, name := range []string{"orders", EdgeName, OperatorName} {
		ref := "oci:" + filepath.Join(dir, "oci", name)
		var idx v1.IndexManifest
		if err := json.Unmarshal(skopeo("inspect", "--raw", ref), &idx); err != nil {
			t.Fatal(err)
		}
		archs := map[string]bool{}
		for _, m := range idx.Manifests {
			archs[m.Platform.OS+"/"+m.Platform.Architecture] = true
		}
		if !archs["linux/amd64"] || !archs["linux/arm64"] || idx.MediaType != "application/vnd.oci.image.index.v1+json" {
			t.Errorf("%s: index %s with %v, want linux/amd64 and linux/arm64", name, idx.MediaType, archs)
		}
		for _, arch := range []string{"amd64", "arm64"} {
			var info struct {
				Architecture string
				Labels       map[string]string
			}
			if err := json.Unmarshal(skopeo("inspect", "--override-os", "linux", "--override-arch", arch, ref), &info); err != nil {
				t.Fatal(err)
			}
			if info.Architecture != arch || info.Labels["org.opencontainers.image.title"] != name || info.Labels["org.opencontainers.image.version"] != "v0.0.0-test" {
				t.Errorf("%s %s: skopeo inspect: %+v", name, arch, info)
			}
			var cfg v1.ConfigFile
			if err := json.Unmarshal(skopeo("inspect", "--config", "--override-os", "linux", "--override-arch", arch, ref), &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.Config.User != "65532:65532" || len(cfg.Config.Entrypoint) == 0 || cfg.Architecture != arch {
				t.Errorf("%s %s: config user %q, entrypoint %q", name, arch, cfg.Config.User, cfg.Config.Entrypoint)
			}
		}
	}
	// The wasm artifact: an OCI manifest with the wasm config and layer.
	var m v1.Manifest
	if err := json.Unmarshal(skopeo("inspect", "--raw", "oci:"+filepath.Join(dir, "oci", "orders-wasm")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != oci.WasmConfigMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != oci.WasmLayerMediaType {
		t.Errorf("wasm artifact: config %s, layers %+v", m.Config.MediaType, m.Layers)
	}
}

// TestRegistry pushes every image to an in-process registry and pulls it
// back: same digests, and the module pulled is the one built.
func TestRegistry(t *testing.T) {
	dir, res := shop(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/shop"
	pushed, err := Push(context.Background(), res, repo, "v1", testWriter{t}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) != len(res.Images) {
		t.Fatalf("pushed %d of %d images", len(pushed), len(res.Images))
	}
	for i, p := range pushed {
		img := res.Images[i]
		r := strings.TrimPrefix(p.Ref, "")
		desc, err := remote.Get(mustRef(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != img.Digest {
			t.Errorf("%s: registry has %s, built %s", r, desc.Digest, img.Digest)
		}
		if img.Index != nil {
			idx, err := desc.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			m, _ := idx.IndexManifest()
			if len(m.Manifests) != 2 {
				t.Errorf("%s: %d manifests", r, len(m.Manifests))
			}
		}
	}
	cache := t.TempDir()
	want, _ := FileDigest(filepath.Join(dir, "wasm", "orders.wasm"))
	for i, ref := range []string{"oci://" + repo + "/orders-wasm:v1", "oci://" + repo + "/orders-wasm@" + image(res, "orders-wasm").Digest.String()} {
		p, err := oci.PullWasm(context.Background(), ref, cache)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := FileDigest(p.Path)
		if got != want || p.Layer.Hex != want || filepath.Base(p.Path) != "orders.wasm" || p.Cached != (i > 0) {
			t.Errorf("pull %s: %+v, file digest %s, want %s", ref, p, got, want)
		}
	}
	// Pinned by digest and cached: no registry needed.
	srv.Close()
	if _, err := oci.PullWasm(context.Background(), "oci://"+repo+"/orders-wasm@"+image(res, "orders-wasm").Digest.String(), cache); err != nil {
		t.Errorf("cached pull by digest with the registry gone: %v", err)
	}
}

// TestImageRuns extracts this machine's image of the orders app, as a
// container runtime would, runs its binary and asks /healthz.
func TestImageRuns(t *testing.T) {
	dir, _ := shop(t)
	idx, _, err := oci.ReadLayout(filepath.Join(dir, "oci", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var img v1.Image
	for _, d := range m.Manifests {
		if d.Platform.Architecture == runtime.GOARCH {
			img, err = idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if img == nil || runtime.GOOS != "linux" {
		t.Skipf("no image for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Config.Entrypoint[0] != "/orders" || cfg.Config.WorkingDir != "/data" {
		t.Fatalf("config: %+v", cfg.Config)
	}
	fsDir := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
		p := filepath.Join(fsDir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o777); err != nil {
			t.Fatal(err)
		}
	}
	if modes["tmp"]&0o1777 != 0o1777 || modes["orders"] != 0o755 {
		t.Errorf("modes: %v", modes)
	}
	if fi, err := os.Stat(filepath.Join(fsDir, "etc/ssl/certs/ca-certificates.crt")); err != nil || fi.Size() < 100e3 {
		t.Errorf("CA certificates: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := append(cfg.Config.Entrypoint[1:], "--addr", "127.0.0.1", "--port", "0", "--data-dir", filepath.Join(t.TempDir(), "data"))
	cmd := exec.CommandContext(ctx, filepath.Join(fsDir, "orders"), args...)
	cmd.Env = cfg.Config.Env
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); cmd.Wait() }()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`roam: ready on (http://\S+) in `)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case url := <-urls:
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/healthz: %d", resp.StatusCode)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the image's binary did not get ready")
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestOperatorImage runs the operator's binary out of this machine's
// roam-operator image: entrypoint /roam-operator, user 65532, version
// stamped.
func TestOperatorImage(t *testing.T) {
	dir, _ := shop(t)
	idx, _, err := oci.ReadLayout(filepath.Join(dir, "oci", OperatorName))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var img v1.Image
	for _, d := range m.Manifests {
		if d.Platform.OS == runtime.GOOS && d.Platform.Architecture == runtime.GOARCH {
			if img, err = idx.Image(d.Digest); err != nil {
				t.Fatal(err)
			}
		}
	}
	if img == nil {
		t.Skipf("no operator image for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/"+OperatorName {
		t.Fatalf("config: user %q, entrypoint %q", cfg.Config.User, cfg.Config.Entrypoint)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	bin := filepath.Join(t.TempDir(), OperatorName)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("no %s in the image", OperatorName)
		} else if err != nil {
			t.Fatal(err)
		}
		if h.Name != OperatorName {
			continue
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		break
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != OperatorName+" v0.0.0-test" {
		t.Errorf("%s --version: %v: %q", OperatorName, err, out)
	}
}
