package host

// The shutdown audit's tests of ServeUntilDone and Server.Shutdown, in
// process: readiness and the drain, the grace, keep-alive connections and
// the connection cap at shutdown, and the signals. They assert outcomes and
// their order, never durations: each wait is a poll with a generous
// deadline, and each drain is far longer than the few requests made in it.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/sdk"
)

// gateApp is an app whose Block method runs until the test releases it
// (200) or its context ends (then the error, which is 503 for a
// cancellation).
type gateApp struct {
	started chan struct{} // receives a value when Block starts
	release chan struct{} // closed by free
	once    sync.Once
	cause   atomic.Value // context.Cause of the last Block that ended early
}

// free lets every Block return.
func (a *gateApp) free() { a.once.Do(func() { close(a.release) }) }

func newGateApp() *gateApp {
	return &gateApp{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (a *gateApp) ID() string                            { return "gate" }
func (a *gateApp) Methods() []string                     { return []string{"Block", "Echo"} }
func (a *gateApp) Subscriptions() []backend.Subscription { return nil }
func (a *gateApp) Deliver(context.Context, *sdk.Event) error {
	return nil
}

func (a *gateApp) Call(ctx context.Context, method string, req []byte) ([]byte, error) {
	if method != "Block" {
		return req, nil
	}
	a.started <- struct{}{}
	select {
	case <-a.release:
		return []byte(`{"released":true}`), nil
	case <-ctx.Done():
		a.cause.Store(context.Cause(ctx))
		return nil, ctx.Err()
	}
}

// sdServer is a server of gateApp run by ServeUntilDone.
type sdServer struct {
	srv    *Server
	app    *gateApp
	addr   string
	cancel context.CancelCauseFunc
	done   chan error // ServeUntilDone's result
}

func startSD(t *testing.T, opts Options, so ServeOptions) *sdServer {
	t.Helper()
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	srv := NewServer(b, opts)
	app := newGateApp()
	if err := srv.Add(app); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	so.Stdout = io.Discard
	so.Start = time.Now()
	s := &sdServer{srv: srv, app: app, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- ServeUntilDone(ctx, srv, b, ln, so) }()
	t.Cleanup(func() {
		cancel(nil)
		app.free()
		select {
		case <-s.done:
		case <-time.After(2 * time.Minute):
			t.Error("ServeUntilDone did not return")
		}
	})
	return s
}

// term cancels the server's context as a SIGTERM received by
// NotifyContext would.
func (s *sdServer) term() { s.cancel(&ShutdownSignal{syscall.SIGTERM}) }

// result waits for ServeUntilDone's result.
func (s *sdServer) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(2 * time.Minute):
		t.Fatal("ServeUntilDone did not return")
		return nil
	}
}

// rawConn is a client connection the test controls, to tell a reply on a
// kept-alive connection from one on a new connection.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// send writes a request; do reads its reply.
func (c *rawConn) send(t *testing.T, method, path, body string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", method, path, len(body), body); err != nil {
		t.Fatalf("%s %s: write: %v", method, path, err)
	}
}

func (c *rawConn) reply() (*http.Response, string, error) {
	c.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func (c *rawConn) do(t *testing.T, method, path, body string) (*http.Response, string) {
	t.Helper()
	c.send(t, method, path, body)
	resp, b, err := c.reply()
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, b
}

// eventuallySD polls cond every few milliseconds for up to a minute.
func eventuallySD(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestShutdownAuditDrainServes: once a SIGTERM ends the context, /readyz
// answers 503 at once, and during the drain the host still serves a new
// connection and a kept-alive one, each reply asking the client to close.
// The host used to close its listener and its idle connections at once:
// Kubernetes sends SIGTERM while the endpoints are still being removed,
// and the requests that still arrived were refused.
func TestShutdownAuditDrainServes(t *testing.T) {
	t.Parallel()
	s := startSD(t, Options{}, ServeOptions{Grace: time.Minute, Drain: 20 * time.Second})
	kept := dialRaw(t, s.addr)
	if resp, _ := kept.do(t, "GET", "/readyz", ""); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("/readyz before shutdown: %d, close %v", resp.StatusCode, resp.Close)
	}

	s.term()
	eventuallySD(t, "/readyz to answer 503", func() bool {
		c := dialRaw(t, s.addr)
		resp, _ := c.do(t, "GET", "/readyz", "")
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	// A request on the connection kept alive from before the SIGTERM.
	resp, body := kept.do(t, "POST", "/v1/apps/gate/methods/Echo", `{"on":"kept"}`)
	if resp.StatusCode != 200 || body != `{"on":"kept"}` {
		t.Fatalf("kept-alive connection during the drain: %d %s", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("a reply during the drain did not ask its client to close the connection")
	}
	// A request on a new connection, after the SIGTERM.
	resp, body = dialRaw(t, s.addr).do(t, "POST", "/v1/apps/gate/methods/Echo", `{"on":"new"}`)
	if resp.StatusCode != 200 || body != `{"on":"new"}` || !resp.Close {
		t.Fatalf("new connection during the drain: %d %s, close %v", resp.StatusCode, body, resp.Close)
	}
	if resp, _ := dialRaw(t, s.addr).do(t, "GET", "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("/healthz during the drain: %d, want 200 (the host is alive)", resp.StatusCode)
	}
	if err := s.result(t); err != nil {
		t.Fatalf("ServeUntilDone after a clean shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", s.addr); err == nil {
		t.Errorf("the listener is still open after ServeUntilDone returned")
	}
}

// TestShutdownAuditInFlightFinishes: a request in flight when the host
// stops accepting still gets its reply, and the shutdown is clean.
func TestShutdownAuditInFlightFinishes(t *testing.T) {
	t.Parallel()
	s := startSD(t, Options{}, ServeOptions{Grace: 2 * time.Minute, Drain: -1})
	c := dialRaw(t, s.addr)
	c.send(t, "POST", "/v1/apps/gate/methods/Block", "{}")
	<-s.app.started
	s.term()
	eventuallySD(t, "the listener to close", func() bool {
		nc, err := net.Dial("tcp", s.addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	s.app.free()
	resp, body, err := c.reply()
	if err != nil || resp.StatusCode != 200 || body != `{"released":true}` {
		t.Fatalf("in-flight request across the shutdown: %v %v %s", resp, err, body)
	}
	if err := s.result(t); err != nil {
		t.Fatalf("ServeUntilDone: %v, want nil: every request finished within the grace", err)
	}
}

// TestShutdownAuditGraceRunsOut: a request still running when the grace
// ends is cancelled (its handler sees why), its client gets a 503, and
// ServeUntilDone returns an error so that the process exits non-zero. It
// used to return nil (exit 0) and leave the handler running against the
// backend that the host closes next.
func TestShutdownAuditGraceRunsOut(t *testing.T) {
	t.Parallel()
	s := startSD(t, Options{}, ServeOptions{Grace: time.Second, Drain: -1})
	c := dialRaw(t, s.addr)
	c.send(t, "POST", "/v1/apps/gate/methods/Block", "{}")
	<-s.app.started
	s.term()
	err := s.result(t)
	if err == nil {
		t.Fatal("ServeUntilDone returned nil although a request was still running when the grace ran out")
	}
	if !strings.Contains(err.Error(), "--shutdown-grace") {
		t.Errorf("error %q does not name --shutdown-grace", err)
	}
	eventuallySD(t, "the handler to see its cancellation", func() bool { return s.app.cause.Load() != nil })
	if cause := s.app.cause.Load().(error); !errors.Is(cause, errGraceOver) {
		t.Errorf("the handler's context cause: %v, want %v", cause, errGraceOver)
	}
	resp, body, rerr := c.reply()
	if rerr != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("the cut-off request: %v %v %s, want 503", resp, rerr, body)
	}
}

// TestShutdownAuditCapWaiterServed: with every connection slot held by a
// request in flight, a client waiting for a slot when the SIGTERM comes is
// served once the request ends and frees the slot. The host used to close the waiting client's connection
// unanswered, at once.
func TestShutdownAuditCapWaiterServed(t *testing.T) {
	t.Parallel()
	s := startSD(t, Options{MaxConnections: 1}, ServeOptions{Grace: 2 * time.Minute, Drain: 15 * time.Second})
	busy := dialRaw(t, s.addr)
	busy.send(t, "POST", "/v1/apps/gate/methods/Block", "{}")
	<-s.app.started
	waiter := dialRaw(t, s.addr)
	waiter.send(t, "POST", "/v1/apps/gate/methods/Echo", `{"waited":true}`)
	waitMetric(t, s.srv, "roam_http_connections_full_total", 1) // accepted, waiting for the slot

	s.term()
	eventuallySD(t, "readiness to turn off", func() bool { return !s.srv.ready.Load() })
	s.app.free()
	// Its reply may keep the connection open (the request began before the
	// SIGTERM); idle, it is closed to make room for the waiting client.
	if resp, body, err := busy.reply(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the request holding the slot: %v %v %s", resp, err, body)
	}
	resp, body, err := waiter.reply()
	if err != nil || resp.StatusCode != 200 || body != `{"waited":true}` {
		t.Fatalf("the client waiting for a slot at shutdown: %v %v %q, want 200", resp, err, body)
	}
	if err := s.result(t); err != nil {
		t.Fatalf("ServeUntilDone: %v", err)
	}
}

// TestShutdownAuditDrainChoice: the drain follows a SIGTERM (from
// NotifyContext), but not a Ctrl-C or a plain
// cancellation; an explicit Drain is kept, and none exceeds the grace.
func TestShutdownAuditDrainChoice(t *testing.T) {
	grace := 10 * time.Second
	sigCtx := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		drain time.Duration
		want  time.Duration
	}{
		{"SIGTERM", sigCtx(&ShutdownSignal{syscall.SIGTERM}), 0, 5 * time.Second},
		{"SIGINT", sigCtx(&ShutdownSignal{os.Interrupt}), 0, 0},
		{"cancelled", sigCtx(nil), 0, 0},
		{"explicit", sigCtx(nil), 3 * time.Second, 3 * time.Second},
		{"none", sigCtx(&ShutdownSignal{syscall.SIGTERM}), -1, 0},
		{"past the grace", sigCtx(nil), time.Hour, grace},
	} {
		sig, _ := shutdownSignal(tc.ctx)
		if got := (ServeOptions{Grace: grace, Drain: tc.drain}).drain(sig); got != tc.want {
			t.Errorf("%s: drain %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := DefaultDrain(2 * time.Second); got != time.Second {
		t.Errorf("DefaultDrain(2s) = %v, want 1s", got)
	}
}

// TestShutdownAuditStoppedBeforeReady: a host whose context ended before
// it served (a SIGTERM during its start) does not drain: no balancer ever
// sent it traffic. Its ten-minute drain would hold the test.
func TestShutdownAuditStoppedBeforeReady(t *testing.T) {
	t.Parallel()
	b := memory.New(memory.Options{})
	defer b.Close()
	srv := NewServer(b, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&ShutdownSignal{syscall.SIGTERM})
	done := make(chan error, 1)
	go func() {
		done <- ServeUntilDone(ctx, srv, b, ln, ServeOptions{Stdout: io.Discard, Grace: 20 * time.Minute, Drain: 10 * time.Minute})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeUntilDone: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("ServeUntilDone drained although it was stopped before it was ready")
	}
}
