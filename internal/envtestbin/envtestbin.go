// Package envtestbin locates the binaries controller-runtime's envtest runs
// for the operator's tests: a real etcd and a real kube-apiserver, built from
// their Go modules by tools/envtest (setup-envtest cannot download here).
//
// Nothing here is a mock. When the binaries cannot be found or built, the
// test fails loudly, saying why: it never skips.
package envtestbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// binaries are the files envtest needs in its assets directory.
var binaries = []string{"etcd", "kube-apiserver"}

var assetsOnce struct {
	sync.Once
	dir string
	err error
}

// Assets returns the directory holding etcd and kube-apiserver, for
// envtest.Environment's BinaryAssetsDirectory (or KUBEBUILDER_ASSETS):
// $KUBEBUILDER_ASSETS, else the build of tools/envtest/build.sh (cached by
// version; the first call on a machine builds them, which takes minutes). It
// fails t when there are none.
func Assets(t testing.TB) string {
	t.Helper()
	assetsOnce.Do(func() {
		assetsOnce.dir, assetsOnce.err = assets()
	})
	if assetsOnce.err != nil {
		t.Fatalf("etcd and kube-apiserver are not available, and these tests need a real API server: %v", assetsOnce.err)
	}
	return assetsOnce.dir
}

func assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		if err := check(dir); err != nil {
			return "", fmt.Errorf("KUBEBUILDER_ASSETS=%s: %v", dir, err)
		}
		return dir, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "tools", "envtest", "build.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tools/envtest/build.sh failed: %v\n%s", err, stderr.String())
	}
	dir := strings.TrimSpace(string(out))
	if err := check(dir); err != nil {
		return "", fmt.Errorf("tools/envtest/build.sh printed %q: %v\n%s", dir, err, stderr.String())
	}
	return dir, nil
}

// check reports whether dir holds executable etcd and kube-apiserver.
func check(dir string) error {
	for _, name := range binaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", filepath.Join(dir, name))
		}
	}
	return nil
}

func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}
