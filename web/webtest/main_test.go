package webtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/build"
)

var (
	repoRoot string
	// assets holds the built JS bundles (roam.js, roam-worker.js, shop.js)
	// and modules/{app}.wasm.
	assets  string
	enabled bool
)

// apps are the modules the tests build, by app id.
var apps = map[string]string{
	"conformance": "./conformance/testapp",
	"orders":      "./examples/shop/orders",
	"inventory":   "./examples/shop/inventory",
	"setupapp":    "./web/webtest/testdata/setupapp",
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	enabled = os.Getenv("ROAM_BROWSER") == "1"
	if !enabled {
		return m.Run() // every test skips
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "webtest:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "roam-webtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "webtest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	assets = dir
	if err := prepare(dir); err != nil {
		fmt.Fprintln(os.Stderr, "webtest:", err)
		return 1
	}
	return m.Run()
}

// prepare builds the JS bundles and the wasm modules into dir.
func prepare(dir string) error {
	if _, err := os.Stat(filepath.Join(repoRoot, "web", "node_modules", "playwright-core")); err != nil {
		return fmt.Errorf("web/node_modules is missing: run (cd web && npm ci) first")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		return fmt.Errorf("/usr/bin/chromium is missing: apt-get install -y chromium")
	}
	cmd := exec.Command("node", "build.mjs", "--out", dir)
	cmd.Dir = filepath.Join(repoRoot, "web")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the JS bundles: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return err
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(apps))
	for id, pkg := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := build.Wasm(ctx, build.Options{Dir: repoRoot, Patterns: []string{pkg}, Out: filepath.Join(dir, "modules", id+".wasm"), Release: true})
			if err != nil {
				errs <- fmt.Errorf("building %s: %v", pkg, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func needBrowser(t testing.TB) {
	t.Helper()
	if !enabled {
		t.Skip("browser tests run with ROAM_BROWSER=1 (test.sh's browser step)")
	}
}

func readAsset(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(assets, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// browser is a headless Chromium driven through web/test/runner.mjs, and
// one of its tabs (page): the first, or one newTab opened.
type browser struct {
	*proc
	t    testing.TB
	page int
}

// proc is the runner process that the tabs of one browser share.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	next  int
	wait  map[int]chan reply
	done  chan struct{}
	log   strings.Builder
}

// newTab opens another tab in the same browser context: the same origin's
// IndexedDB, Web Locks and BroadcastChannels, as a user's second tab.
func (b *browser) newTab() *browser {
	b.t.Helper()
	var i int
	if err := json.Unmarshal(b.must(map[string]any{"op": "newPage"}), &i); err != nil {
		b.t.Fatal(err)
	}
	return &browser{proc: b.proc, t: b.t, page: i}
}

type reply struct {
	ID    int             `json:"id"`
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

// startBrowser launches Chromium with a fresh profile.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	needBrowser(t)
	cmd := exec.Command("node", filepath.Join(repoRoot, "web", "test", "runner.mjs"), "--user-data-dir", t.TempDir())
	cmd.Dir = filepath.Join(repoRoot, "web")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{proc: &proc{cmd: cmd, stdin: stdin, wait: map[int]chan reply{}, done: make(chan struct{})}, t: t}
	cmd.Stderr = &lockedWriter{b: b.proc}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r reply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				continue
			}
			b.mu.Lock()
			ch := b.wait[r.ID]
			delete(b.wait, r.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	return b
}

type lockedWriter struct{ b *proc }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if w.b.log.Len() < 1<<20 {
		w.b.log.Write(p)
	}
	return len(p), nil
}

// do sends one command and waits for its answer.
func (b *browser) do(cmd map[string]any) (json.RawMessage, error) {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan reply, 1)
	b.wait[id] = ch
	b.mu.Unlock()
	cmd["id"] = id
	if b.page != 0 {
		cmd["page"] = b.page
	}
	line, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	_, err = b.stdin.Write(append(line, '\n'))
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		if !r.OK {
			return nil, fmt.Errorf("browser %s: %s", cmd["op"], r.Error)
		}
		return r.Value, nil
	case <-b.done:
		return nil, fmt.Errorf("browser exited; its stderr:\n%s", b.stderr())
	case <-time.After(90 * time.Second):
		return nil, fmt.Errorf("browser %s: no answer in 90s", cmd["op"])
	}
}

func (b *proc) stderr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

// must runs a command and fails the test on error, printing the page's
// console.
func (b *browser) must(cmd map[string]any) json.RawMessage {
	b.t.Helper()
	v, err := b.do(cmd)
	if err != nil {
		b.t.Fatalf("%v\npage console:\n%s", err, b.logs())
	}
	return v
}

func (b *browser) logs() string {
	v, err := b.do(map[string]any{"op": "logs"})
	if err != nil {
		return err.Error()
	}
	var ls []string
	json.Unmarshal(v, &ls)
	return strings.Join(ls, "\n")
}

// eval runs fn, a JS function's source, in the page with arg and decodes
// its result into out (when not nil).
func (b *browser) eval(fn string, arg any, out any) {
	b.t.Helper()
	v := b.must(map[string]any{"op": "eval", "fn": fn, "arg": arg})
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			b.t.Fatalf("eval result %s: %v", v, err)
		}
	}
}

// waitFor waits until fn(arg) is truthy in the page.
func (b *browser) waitFor(fn string, arg any) json.RawMessage {
	b.t.Helper()
	return b.must(map[string]any{"op": "wait", "fn": fn, "arg": arg})
}
