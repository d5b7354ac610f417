// Package e2e_test drives the roam command as a user would: it builds the
// roam binary once, then starts hosts with `roam run ... --port 0` on their
// own data directories and talks to them over HTTP only.
//
// roam passes its environment on to `go build`, so
//
//	GOFLAGS=-race go test ./e2e/
//
// also builds every host under test with the race detector, and any race
// it reports fails the test that ran the host.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/syncbuf"
)

var (
	// roamBin is the roam binary built by TestMain.
	roamBin string
	// repoRoot is the module root, the working directory of every roam run.
	repoRoot string
	// client talks to the hosts under test. Its own timeout backs up the
	// per-test deadlines, so that no call can hang a test.
	client = &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 0, DisableCompression: true},
	}
)

// readyTimeout bounds a host's start: `roam run` may have to compile and link
// the host first, on a busy two-core machine.
const readyTimeout = 90 * time.Second

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "roam-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	roamBin = filepath.Join(dir, "roam")
	cmd := exec.Command("go", "build", "-o", roamBin, "./cmd/roam")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building roam: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// readyWatcher captures stdout and reports the URL of the first
// "roam: ready on URL" line.
type readyWatcher struct {
	out   *syncBuffer
	mu    sync.Mutex
	line  []byte
	ready chan string
	once  sync.Once
}

var readyRE = regexp.MustCompile(`^roam: ready on (http://\S+) in `)

func (w *readyWatcher) Write(p []byte) (int, error) {
	w.out.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if m := readyRE.FindSubmatch(w.line[:i]); m != nil {
			u := string(m[1])
			w.once.Do(func() { w.ready <- u })
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}

// proc is a running roam command.
type proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer // stdout and stderr, interleaved
	done chan struct{}
	// exited is when Wait returned; valid once done is closed.
	exited time.Time
	err    error
}

// startRoam starts roam with args in the module root.
func startRoam(t testing.TB, args ...string) (*proc, *readyWatcher) {
	t.Helper()
	return startRoamEnv(t, nil, args...)
}

// startRoamEnv is startRoam with env added to this process's environment.
func startRoamEnv(t testing.TB, env []string, args ...string) (*proc, *readyWatcher) {
	t.Helper()
	out := &syncBuffer{}
	w := &readyWatcher{out: out, ready: make(chan string, 1)}
	cmd := exec.Command(roamBin, args...)
	cmd.Dir = repoRoot
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = w
	cmd.Stderr = out
	// A group of its own, so that cleanup also reaches a `go build` that
	// roam may be running when a test gives up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start roam %s: %v", strings.Join(args, " "), err)
	}
	p := &proc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.exited = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		// With GOFLAGS=-race in the environment, roam builds the hosts
		// with the race detector; a report fails the test that ran them.
		if out := out.String(); strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("roam %s reported a data race:\n%s", strings.Join(args, " "), out)
		}
	})
	return p, w
}

// exitedWithin waits for the process to exit and returns its exit code, or
// fails the test with its output.
func (p *proc) exitedWithin(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("roam %s did not exit within %v; output:\n%s", strings.Join(p.cmd.Args[1:], " "), d, p.out)
	}
	return p.cmd.ProcessState.ExitCode()
}

// signal sends sig to the process roam started as. Since `roam run` exec()s
// the host, that is the host itself.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		p.t.Fatalf("kill %d: %v", p.cmd.Process.Pid, err)
	}
}

// host is a host started by `roam run`.
type host struct {
	*proc
	URL string
}

// startHost runs `roam run pkgs --port 0 --data-dir dataDir extra...` and
// waits until it prints its ready line.
func startHost(t testing.TB, dataDir string, pkgs []string, extra ...string) *host {
	t.Helper()
	return startHostEnv(t, nil, dataDir, pkgs, extra...)
}

// startHostEnv is startHost with env added to this process's environment.
func startHostEnv(t testing.TB, env []string, dataDir string, pkgs []string, extra ...string) *host {
	t.Helper()
	args := append([]string{"run"}, pkgs...)
	args = append(args, "--port", "0", "--data-dir", dataDir)
	args = append(args, extra...)
	p, w := startRoamEnv(t, env, args...)
	select {
	case u := <-w.ready:
		h := &host{proc: p, URL: u}
		t.Logf("roam %s: ready on %s (pid %d)", strings.Join(args, " "), u, p.cmd.Process.Pid)
		return h
	case <-p.done:
		t.Fatalf("roam %s exited (%v) before it was ready; output:\n%s", strings.Join(args, " "), p.err, p.out)
	case <-time.After(readyTimeout):
		t.Fatalf("roam %s not ready within %v; output:\n%s", strings.Join(args, " "), readyTimeout, p.out)
	}
	return nil
}

// shopAndConformance are the packages most tests run.
var shopAndConformance = []string{"./examples/shop", "./conformance/testapp"}

// post sends body to URL path with verb and returns the status and body.
// body may be nil, a []byte or string (sent verbatim) or any other value
// (sent as JSON).
func post(ctx context.Context, base, verb, path string, body any) (int, []byte, http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, verb, base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// call invokes app.method on h and returns the status and reply body.
func (h *host) call(t testing.TB, app, method string, body any) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, b, _, err := post(ctx, h.URL, http.MethodPost, "/v1/apps/"+app+"/methods/"+method, body)
	if err != nil {
		t.Fatalf("%s.%s: %v; host output:\n%s", app, method, err, h.out)
	}
	return status, b
}

// mustCall invokes app.method, checks the status and decodes the reply into
// a T.
func mustCall[T any](t testing.TB, h *host, app, method string, body any, want int) T {
	t.Helper()
	var v T
	status, b := h.call(t, app, method, body)
	if status != want {
		t.Fatalf("%s.%s %s: status %d, want %d; body %s", app, method, jsonText(body), status, want, b)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s.%s: reply %q does not decode into %T: %v", app, method, b, v, err)
	}
	return v
}

// errorBody is the JSON body of every error reply.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// storedValue is conformance.Get's reply (and a BulkGet item).
type storedValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	ETag  string          `json:"etag"`
	Found bool            `json:"found"`
}

// wantError checks that a call fails with status and code, and returns the
// error's message.
func wantError(t testing.TB, h *host, app, method string, body any, status int, code string) string {
	t.Helper()
	e := mustCall[errorBody](t, h, app, method, body, status)
	if e.Code != code || e.Message == "" {
		t.Fatalf("%s.%s %s: error %+v, want code %s and a message", app, method, jsonText(body), e, code)
	}
	return e.Message
}

func jsonText(v any) string {
	switch b := v.(type) {
	case []byte:
		if len(b) > 80 {
			return fmt.Sprintf("<%d bytes>", len(b))
		}
		return string(b)
	case string:
		if len(b) > 80 {
			return fmt.Sprintf("<%d bytes>", len(b))
		}
		return b
	}
	j, _ := json.Marshal(v)
	return string(j)
}

// eventually polls cond every 20ms until it returns "" or d passes, then
// fails with cond's last complaint.
func eventually(t testing.TB, d time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v: %s", what, d, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches path from h.
func (h *host) get(t testing.TB, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, b, _, err := post(ctx, h.URL, http.MethodGet, path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v; host output:\n%s", path, err, h.out)
	}
	return status, string(b)
}

// metric returns the value of the sample of name whose labels include every
// label in labels ("k=v"), from Prometheus text exposition, or -1.
func metric(exposition, name string, labels ...string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		set := line[len(name)+1 : end]
		ok := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			if !strings.Contains(","+set+",", ","+k+"="+strconv.Quote(v)+",") {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return -1
		}
		return f
	}
	return -1
}

// runID returns a value unique to this test run, for keys and markers.
func runID(t testing.TB) string {
	return fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
}
