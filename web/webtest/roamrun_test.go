package webtest

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShopBundleUpToDate fails when examples/shop/web/dist, which is
// committed so that roam run needs no node, is not what the sources build.
func TestShopBundleUpToDate(t *testing.T) {
	needBrowser(t)
	cmd := exec.Command("node", "build.mjs", "--check")
	cmd.Dir = filepath.Join(repoRoot, "web")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

var pageRE = regexp.MustCompile(`^roam: page (http://\S+)`)

// TestRoamRunServesShop runs `roam run ./examples/shop` as a user would:
// it builds the apps natively and as wasm modules, prints the page's URL,
// and the page (the committed bundle) runs the shop in the browser against
// that same host.
func TestRoamRunServesShop(t *testing.T) {
	b := startBrowser(t)
	dir := t.TempDir()
	roam := filepath.Join(dir, "roam")
	build := exec.Command("go", "build", "-o", roam, "./cmd/roam")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building roam: %v\n%s", err, out)
	}
	cmd := exec.Command(roam, "run", "./examples/shop", "--port", "0", "--data-dir", filepath.Join(dir, "data"))
	cmd.Dir = repoRoot
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := pageRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		close(found)
	}()
	var page string
	select {
	case page = <-found:
	case <-time.After(3 * time.Minute):
	}
	if page == "" {
		t.Fatalf("roam run printed no page URL; stderr:\n%s", stderr.String())
	}
	base := strings.TrimSuffix(page, "/web/")
	if st := api(t, base, "inventory", "Restock", map[string]any{"sku": "apple", "quantity": 10}, nil); st != 200 {
		t.Fatalf("restock: %d", st)
	}
	b.must(map[string]any{"op": "goto", "url": page + "?customer=dee&skus=apple,pear"})
	b.waitFor(`() => document.body.dataset.ready || document.body.dataset.error`, nil)
	var e string
	b.eval(`() => document.body.dataset.error ?? ''`, nil, &e)
	if e != "" {
		t.Fatalf("page: %s", e)
	}
	b.waitFor(`() => document.querySelector('#stock tr[data-sku="apple"] .available')?.textContent === '10'`, nil)
	b.createOrder(4)
	b.waitPending(0)
	if got := serverOrders(t, base, "dee"); len(got) != 1 || got[0].Quantity != 4 {
		t.Fatalf("server orders %v", got)
	}
	if n := serverStock(t, base, "apple"); n != 6 {
		t.Fatalf("server stock %d, want 6", n)
	}
	b.screenshot("shop-roam-run.png")
}
