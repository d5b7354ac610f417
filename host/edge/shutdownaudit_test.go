package edge

// The shutdown audit's tests of the edge host: Run, as `roam edge` runs it,
// stopped as a signal would stop it, with a guest call in flight. They
// assert outcomes and their order; each wait is a poll with a generous
// deadline.

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/syncbuf"
)

var sdReadyRE = regexp.MustCompile(`roam: ready on (http://\S+) in`)

// sdEdge is Run in the background.
type sdEdge struct {
	url    string
	stderr *syncbuf.Buffer
	stop   context.CancelCauseFunc
	done   chan error
}

func startSDEdge(t *testing.T, grace time.Duration) *sdEdge {
	t.Helper()
	var c Config
	c.Paths = []string{filepath.Join(modDir, "testapp.wasm")}
	c.Addr, c.Port, c.DataDir = "127.0.0.1", 0, t.TempDir()
	c.LogLevel, c.LogFormat = "info", "text"
	c.MaxBodyBytes = 4 << 20
	c.RequestTimeout = 10 * time.Minute // the deadline never stops a call here
	c.ShutdownGrace = grace
	c.CacheDir = cacheDir
	c.PoolSize, c.MaxPoolSize = 2, 2
	ctx, cancel := context.WithCancelCause(context.Background())
	pr, pw := io.Pipe()
	e := &sdEdge{stderr: &syncbuf.Buffer{}, stop: cancel, done: make(chan error, 1)}
	go func() {
		e.done <- Run(ctx, c, pw, e.stderr)
		pw.Close()
	}()
	ready := sdReady(pr)
	t.Cleanup(func() {
		cancel(nil)
		select {
		case <-e.done:
		case <-time.After(3 * time.Minute):
			t.Error("Run did not return")
		}
	})
	select {
	case e.url = <-ready:
	case err := <-e.done:
		t.Fatalf("Run: %v\n%s", err, e.stderr)
	case <-time.After(3 * time.Minute):
		t.Fatalf("the edge host is not ready:\n%s", e.stderr)
	}
	return e
}

// result waits for Run's result.
func (e *sdEdge) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.done:
		e.done <- err
		return err
	case <-time.After(3 * time.Minute):
		t.Fatalf("Run did not return within 3 minutes after the shutdown began:\n%s", e.stderr)
		return nil
	}
}

type sdReply struct {
	status int
	body   string
	err    error
}

func (e *sdEdge) call(method, body string) <-chan sdReply {
	c := make(chan sdReply, 1)
	go func() {
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Minute}).Post(e.url+"/v1/apps/conformance/methods/"+method, "application/json", strings.NewReader(body))
		if err != nil {
			c <- sdReply{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c <- sdReply{status: resp.StatusCode, body: string(b)}
	}()
	return c
}

// busy returns roam_edge_instances_busy{app="conformance"}.
func (e *sdEdge) busy() int {
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `roam_edge_instances_busy{app="conformance"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

func sdWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdownAuditEdgeSpin: a guest looping without end when SIGTERM comes
// holds its request past the grace. The host then fails its exit (Run
// returns an error: `roam edge` exits 1; it used to return nil, exit 0),
// and the runtime's Close stops the guest, whose client gets a 503, long
// before the call's own ten-minute deadline.
func TestShutdownAuditEdgeSpin(t *testing.T) {
	t.Parallel()
	e := startSDEdge(t, time.Second)
	spin := e.call("Spin", "{}")
	sdWait(t, "the guest to loop", func() bool { return strings.Contains(e.stderr.String(), testapp.SpinLine) })
	e.stop(&host.ShutdownSignal{Signal: syscall.SIGTERM})
	err := e.result(t)
	if err == nil || !strings.Contains(err.Error(), "--shutdown-grace") {
		t.Errorf("Run with a guest still looping when the grace ran out: %v, want the grace's error", err)
	}
	select {
	case r := <-spin:
		if r.err != nil || r.status != http.StatusServiceUnavailable {
			t.Errorf("the looping call: %d %s %v, want 503", r.status, r.body, r.err)
		}
	case <-time.After(2 * time.Minute):
		t.Errorf("the looping call got no reply after Run returned")
	}
}

// TestShutdownAuditEdgeCallFinishes: a guest call in flight at shutdown
// (a Ctrl-C: no drain) finishes with its reply, and Run returns nil.
func TestShutdownAuditEdgeCallFinishes(t *testing.T) {
	t.Parallel()
	e := startSDEdge(t, 2*time.Minute)
	sleep := e.call("Sleep", `{"ms":3000}`)
	sdWait(t, "the call to run", func() bool { return e.busy() >= 1 })
	e.stop(&host.ShutdownSignal{Signal: os.Interrupt})
	if r := <-sleep; r.err != nil || r.status != 200 {
		t.Errorf("the call in flight at shutdown: %d %s %v, want 200", r.status, r.body, r.err)
	}
	if err := e.result(t); err != nil {
		t.Errorf("Run after a clean shutdown: %v", err)
	}
}

// spinnerSrc is an app whose subscriber loops without end on an event's
// first delivery, and records the event on the next one.
const spinnerSrc = `package spinner

import (
	"context"
	"os"

	"github.com/roam-dev/roam/sdk"
)

type count struct{ N int }

var App = sdk.NewApp("spinner", func(env sdk.Env, r *sdk.Router) error {
	st := env.State("statestore")
	r.HandleRaw("Publish", func(ctx context.Context, b []byte) ([]byte, error) {
		return nil, env.Publisher().Publish(ctx, sdk.Message{PubSub: "pubsub", Topic: "spin", Data: b, ContentType: "application/json"})
	})
	sdk.Handle(r, "Done", func(ctx context.Context, _ struct{}) (count, error) {
		c, _, err := sdk.GetJSON[count](ctx, st, "done")
		if sdk.IsCode(err, sdk.NotFound) {
			err = nil
		}
		return c, err
	})
	sdk.Subscribe(r, "pubsub", "spin", func(ctx context.Context, e *sdk.Event) error {
		n, err := sdk.Update(ctx, st, "attempts/"+e.ID, 10, func(c count, _ bool) (count, error) { c.N++; return c, nil })
		if err != nil {
			return err
		}
		if n.N == 1 {
			os.Stderr.WriteString("spin: delivery looping\n")
			for {
			}
		}
		_, err = sdk.Update(ctx, st, "done", 10, func(c count, _ bool) (count, error) { c.N++; return c, nil })
		return err
	})
	return nil
})
`

// buildSpinner builds spinnerSrc into a module, in a module of its own
// that requires this one, offline; it skips the test if it cannot.
func buildSpinner(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"go.mod":     "module example.com/spinner\n\ngo 1.26\n\nrequire github.com/roam-dev/roam v0.0.0\n\nreplace github.com/roam-dev/roam => " + root + "\n",
		"go.sum":     string(sum),
		"spinner.go": spinnerSrc,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = dir
	tidy.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := tidy.CombinedOutput(); err != nil {
		t.Skipf("cannot set up the spinner's module offline: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "spinner.wasm")
	if _, err := build.Wasm(context.Background(), build.Options{Dir: dir, Patterns: []string{"."}, Out: out, Release: true}); err != nil {
		t.Fatalf("building the spinner: %v", err)
	}
	return out
}

// TestShutdownAuditEdgeDeliverySpin: a guest looping in an event's
// handler when SIGTERM comes. The event is not acknowledged: the next host
// delivers it again, and this time it is handled. The host exits without
// waiting for the delivery's ten-minute deadline (it used to wait for it,
// past any orchestrator's grace, until the backends' Close stopped
// waiting for a handler that ignores its cancellation).
//
// Pending (host/edge, see the audit's report): the guest loops on after the
// backend cancelled its delivery, and the host exits 0 although it left it
// running.
func TestShutdownAuditEdgeDeliverySpin(t *testing.T) {
	t.Parallel()
	wasm := buildSpinner(t)
	data := t.TempDir()
	run := func(ctx context.Context, stdout io.Writer, stderr io.Writer) error {
		var c Config
		c.Paths = []string{wasm}
		c.Addr, c.Port, c.DataDir = "127.0.0.1", 0, data
		c.LogLevel, c.LogFormat = "info", "text"
		c.MaxBodyBytes = 4 << 20
		c.RequestTimeout = 10 * time.Minute
		c.ShutdownGrace = time.Second
		c.CacheDir = cacheDir
		c.PoolSize, c.MaxPoolSize = 2, 2
		return Run(ctx, c, stdout, stderr)
	}
	start := func() (url string, stderr *syncbuf.Buffer, stop context.CancelCauseFunc, done chan error) {
		ctx, cancel := context.WithCancelCause(context.Background())
		pr, pw := io.Pipe()
		stderr, done = &syncbuf.Buffer{}, make(chan error, 1)
		go func() {
			done <- run(ctx, pw, stderr)
			pw.Close()
		}()
		ready := sdReady(pr)
		select {
		case url = <-ready:
		case err := <-done:
			t.Fatalf("Run: %v\n%s", err, stderr)
		case <-time.After(3 * time.Minute):
			t.Fatalf("not ready:\n%s", stderr)
		}
		return url, stderr, cancel, done
	}
	post := func(url, method, body string) (int, string) {
		resp, err := http.Post(url+"/v1/apps/spinner/methods/"+method, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	url, stderr, stop, done := start()
	if s, b := post(url, "Publish", `{"n":1}`); s != http.StatusNoContent {
		t.Fatalf("Publish: %d %s", s, b)
	}
	sdWait(t, "the delivery to loop", func() bool { return strings.Contains(stderr.String(), "spin: delivery looping") })
	stop(&host.ShutdownSignal{Signal: syscall.SIGTERM})
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("Run did not return within 3 minutes of SIGTERM (the delivery's deadline is 10 minutes):\n%s", stderr)
	}

	// The next host on the same data: the event comes again, and is handled.
	url, stderr2, stop, done := start()
	sdWait(t, "the event to be delivered again and handled", func() bool {
		_, b := post(url, "Done", "{}")
		return b == `{"N":1}`
	})
	stop(&host.ShutdownSignal{Signal: os.Interrupt})
	if err := <-done; err != nil {
		t.Errorf("the second host's Run: %v\n%s", err, stderr2)
	}

	// The backend's Close cancels the delivery: the guest stops then, as
	// after its deadline, and Close finds nothing left running. Before,
	// the guest looped on (the edge host stopped a guest only at its
	// deadline or the runtime's Close), the backend left it running, and
	// the host exited 0 all the same, closing the backend with b.Close
	// rather than host.CloseBackend.
	t.Run("guest stopped when its delivery is cancelled", func(t *testing.T) {
		// "ignored their cancelled context" is core.DrainOrCancel's word
		// for a handler it left running.
		if runErr != nil || strings.Contains(stderr.String(), "ignored their cancelled context") {
			t.Errorf("a delivery's guest was left looping at shutdown (Run: %v):\n%s", runErr, stderr)
		}
	})
}

// sdReady reads a host's start-up lines from r, as they come, and sends the
// URL of its ready line.
func sdReady(r io.Reader) <-chan string {
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if m := sdReadyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		io.Copy(io.Discard, r)
	}()
	return ready
}
