//go:build unix

package native_test

// The shutdown audit's tests of the native host as a process: the test
// binary runs itself as a host (TestShutdownAuditHelperProcess calls Main,
// as a generated main does) with an app whose method and event handler run
// until the test releases them, and sends it real signals. Files in a
// directory shared with the host say when a handler started and finished,
// and release it. The tests assert outcomes and their order (exit codes,
// which handlers finished, which events came again after a restart); each
// wait is a poll with a generous deadline.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/internal/syncbuf"
	"github.com/roam-dev/roam/sdk"
)

const (
	sdHostEnv = "ROAM_SHUTDOWNAUDIT_HOST" // set: the test binary is the host
	sdDirEnv  = "ROAM_SHUTDOWNAUDIT_DIR"  // the directory of marker files
	sdTopic   = "sd.slow"
)

// sdJob is the request of Block and the data of an sd.slow event.
type sdJob struct {
	Key string `json:"key"`
	// Honor: the handler returns when its context ends. Otherwise it
	// ignores it, as a handler stuck in a call without a deadline would.
	Honor bool `json:"honor"`
}

// sdBlock appends a line to started-KEY, waits for release-KEY to exist
// (or ctx to end, if j.Honor), then appends a line to done-KEY.
func sdBlock(ctx context.Context, j sdJob) error {
	dir := os.Getenv(sdDirEnv)
	appendLine(filepath.Join(dir, "started-"+j.Key))
	for {
		if _, err := os.Stat(filepath.Join(dir, "release-"+j.Key)); err == nil {
			appendLine(filepath.Join(dir, "done-"+j.Key))
			return nil
		}
		if j.Honor && ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendLine(path string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	f.WriteString("x\n")
	f.Close()
}

// TestShutdownAuditHelperProcess is the host process of the tests below;
// it does nothing in a test run of its own.
func TestShutdownAuditHelperProcess(t *testing.T) {
	if os.Getenv(sdHostEnv) != "1" {
		return
	}
	sdk.NewApp("sdaudit", func(env sdk.Env, r *sdk.Router) error {
		sdk.Handle(r, "Block", func(ctx context.Context, j sdJob) (struct{}, error) {
			return struct{}{}, sdBlock(ctx, j)
		})
		sdk.Handle(r, "Publish", func(ctx context.Context, j sdJob) (struct{}, error) {
			b, _ := json.Marshal(j)
			return struct{}{}, env.Publisher().Publish(ctx, sdk.Message{PubSub: "pubsub", Topic: sdTopic, Data: b, ContentType: "application/json"})
		})
		sdk.Subscribe(r, "pubsub", sdTopic, func(ctx context.Context, e *sdk.Event) error {
			var j sdJob
			if err := e.Decode(&j); err != nil {
				return err
			}
			return sdBlock(ctx, j)
		})
		return nil
	})
	os.Args = append([]string{"roam-host"}, flag.Args()...)
	native.Main() // exits 1 on an error
	os.Exit(0)
}

// sdHost is a host process.
type sdHost struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	dir    string // marker files
	stderr *syncbuf.Buffer
	done   chan struct{}
}

var sdReadyRE = regexp.MustCompile(`roam: ready on (http://\S+) in`)

// startSDHost starts a host of the sdaudit app on dataDir with args, and
// waits for its ready line.
func startSDHost(t *testing.T, dataDir, dir string, args ...string) *sdHost {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestShutdownAuditHelperProcess$", "--",
		"--port", "0", "--data-dir", dataDir, "--apps", "sdaudit"}, args...)...)
	cmd.Env = append(os.Environ(), sdHostEnv+"=1", sdDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &sdHost{t: t, cmd: cmd, dir: dir, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := sdReadyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
	})
	select {
	case h.url = <-ready:
	case <-h.done:
		t.Fatalf("host exited before it was ready:\n%s", h.stderr)
	case <-time.After(2 * time.Minute):
		t.Fatalf("host not ready:\n%s", h.stderr)
	}
	return h
}

func (h *sdHost) signal(sig syscall.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		h.t.Fatalf("signal %v: %v", sig, err)
	}
}

// exitCode waits for the host to exit, for up to two minutes, and returns
// its exit code (-1: killed by a signal).
func (h *sdHost) exitCode() int {
	h.t.Helper()
	select {
	case <-h.done:
		return h.cmd.ProcessState.ExitCode()
	case <-time.After(2 * time.Minute):
		h.t.Fatalf("host did not exit within two minutes; its log:\n%s", h.stderr)
		return 0
	}
}

// post calls a method and returns the status, or an error.
func (h *sdHost) post(method string, body any) (int, string, error) {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/v1/apps/sdaudit/methods/"+method, strings.NewReader(string(b)))
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), nil
}

// count returns the lines of a marker file.
func count(dir, name string) int {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return strings.Count(string(b), "\n")
}

func release(t *testing.T, dir, key string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "release-"+key), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type reply struct {
	status int
	body   string
	err    error
}

func (h *sdHost) postAsync(method string, body any) <-chan reply {
	c := make(chan reply, 1)
	go func() {
		s, b, err := h.post(method, body)
		c <- reply{s, b, err}
	}()
	return c
}

// shuttingDown waits until the host has logged that it shuts down.
func (h *sdHost) shuttingDown() {
	h.t.Helper()
	waitFor(h.t, "the host to log its shutdown", func() bool { return strings.Contains(h.stderr.String(), "shutting down") })
}

// TestShutdownAuditSecondSignal: a second SIGTERM (or SIGINT) ends a host
// that waits for a request in flight, at once and non-zero, well before its
// ten-minute grace. The host used to ignore it and wait for the request.
func TestShutdownAuditSecondSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		dir := t.TempDir()
		h := startSDHost(t, t.TempDir(), dir, "--shutdown-grace", "10m")
		h.postAsync("Block", sdJob{Key: "a"}) // ignores its cancellation
		waitFor(t, "Block to start", func() bool { return count(dir, "started-a") == 1 })
		h.signal(sig)
		h.shuttingDown()
		h.signal(sig)
		if code := h.exitCode(); code != 128+int(sig) {
			t.Errorf("%v twice: exit code %d, want %d; log:\n%s", sig, code, 128+int(sig), h.stderr)
		}
		if !strings.Contains(h.stderr.String(), "received again while shutting down") {
			t.Errorf("%v twice: the host did not say why it exits; log:\n%s", sig, h.stderr)
		}
		if count(dir, "done-a") != 0 {
			t.Errorf("%v twice: the request finished, so the host did not exit at once", sig)
		}
	}
}

// TestShutdownAuditCleanExit: after a SIGTERM, /readyz answers 503, a new
// request is still served, the request in flight gets its reply, and the
// host exits 0. The host used to refuse the new requests at once.
//
// The host drains for DefaultDrain(2m) = 5 s after the SIGTERM: the two
// requests made in it take milliseconds.
func TestShutdownAuditCleanExit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startSDHost(t, t.TempDir(), dir, "--shutdown-grace", "2m")
	slow := h.postAsync("Block", sdJob{Key: "slow", Honor: true})
	waitFor(t, "Block to start", func() bool { return count(dir, "started-slow") == 1 })
	h.signal(syscall.SIGTERM)
	h.shuttingDown()
	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		t.Fatalf("/readyz after SIGTERM: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz after SIGTERM: %d, want 503", resp.StatusCode)
	}
	release(t, dir, "fast")
	if s, b, err := h.post("Block", sdJob{Key: "fast", Honor: true}); err != nil || s != 200 {
		t.Errorf("a request arriving after SIGTERM: %d %s %v, want 200", s, b, err)
	}
	release(t, dir, "slow")
	if r := <-slow; r.err != nil || r.status != 200 {
		t.Errorf("the request in flight at SIGTERM: %d %s %v, want 200", r.status, r.body, r.err)
	}
	if code := h.exitCode(); code != 0 {
		t.Errorf("exit code %d after a clean shutdown, want 0; log:\n%s", code, h.stderr)
	}
}

// TestShutdownAuditGraceExitCode: a request still running when the grace
// runs out is cancelled, and the host exits 1 (it used to exit 0).
func TestShutdownAuditGraceExitCode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startSDHost(t, t.TempDir(), dir, "--shutdown-grace", "2s")
	slow := h.postAsync("Block", sdJob{Key: "slow", Honor: true})
	waitFor(t, "Block to start", func() bool { return count(dir, "started-slow") == 1 })
	h.signal(syscall.SIGTERM)
	if code := h.exitCode(); code != 1 {
		t.Errorf("exit code %d after the grace ran out, want 1; log:\n%s", code, h.stderr)
	}
	if !strings.Contains(h.stderr.String(), "--shutdown-grace 2s ran out") {
		t.Errorf("the host did not say that the grace ran out; log:\n%s", h.stderr)
	}
	// Cancelled, it answers 503, unless the process was gone first.
	if r := <-slow; r.err == nil && r.status != http.StatusServiceUnavailable {
		t.Errorf("the cut-off request: %d %s, want 503 or no reply", r.status, r.body)
	}
	if count(dir, "done-slow") != 0 {
		t.Errorf("the request finished")
	}
}

// TestShutdownAuditDeliveries: an event whose handler is running at SIGTERM
// is acknowledged only if the handler finishes; otherwise the next host
// delivers it again, and a handler that ignores its cancellation does not
// hold the process: it exits non-zero (it used to wait for the handler,
// for ever), and the event is delivered again.
func TestShutdownAuditDeliveries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		job      sdJob
		finishes bool // released while the host shuts down
		exit     int
	}{
		{"finishes", sdJob{Key: "fin", Honor: true}, true, 0},
		{"cancelled", sdJob{Key: "can", Honor: true}, false, 0},
		{"stuck", sdJob{Key: "stuck"}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, data := t.TempDir(), t.TempDir()
			h := startSDHost(t, data, dir, "--shutdown-grace", "2s")
			if s, b, err := h.post("Publish", tc.job); err != nil || s != 204 && s != 200 {
				t.Fatalf("Publish: %d %s %v", s, b, err)
			}
			waitFor(t, "the delivery to start", func() bool { return count(dir, "started-"+tc.job.Key) == 1 })
			h.signal(syscall.SIGTERM)
			h.shuttingDown()
			if tc.finishes {
				release(t, dir, tc.job.Key)
			}
			if code := h.exitCode(); code != tc.exit {
				t.Errorf("exit code %d, want %d; log:\n%s", code, tc.exit, h.stderr)
			}
			if tc.exit != 0 && !strings.Contains(h.stderr.String(), "will be delivered again") {
				t.Errorf("the host did not say why it exits non-zero; log:\n%s", h.stderr)
			}
			if tc.finishes && count(dir, "done-"+tc.job.Key) != 1 {
				t.Fatalf("the handler released during the shutdown did not finish; log:\n%s", h.stderr)
			}

			// The next host: the event comes again unless its handler
			// finished. A barrier event published after it on the same
			// subscription is delivered after it (in order), so once the
			// barrier is done, the event would have come.
			release(t, dir, tc.job.Key)
			release(t, dir, "barrier")
			h2 := startSDHost(t, data, dir, "--shutdown-grace", "2s")
			if s, b, err := h2.post("Publish", sdJob{Key: "barrier"}); err != nil || s != 204 && s != 200 {
				t.Fatalf("Publish: %d %s %v", s, b, err)
			}
			waitFor(t, "the barrier event", func() bool { return count(dir, "done-barrier") == 1 })
			want := 2
			if tc.finishes {
				want = 1
			}
			if n := count(dir, "started-"+tc.job.Key); n != want {
				t.Errorf("the event was delivered %d times, want %d", n, want)
			}
			if count(dir, "done-"+tc.job.Key) != 1 {
				t.Errorf("the event's handler finished %d times, want once", count(dir, "done-"+tc.job.Key))
			}
			h2.signal(syscall.SIGINT)
			if code := h2.exitCode(); code != 0 {
				t.Errorf("second host: exit code %d; log:\n%s", code, h2.stderr)
			}
		})
	}
}
