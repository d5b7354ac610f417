package dapr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/internal/syncbuf"
	"github.com/roam-dev/roam/sdk"
)

// What a host beside a sidecar does when the sidecar or its Redis dies or
// hangs, with real processes: a dead backend gets a clear error and loses
// nothing, and the host recovers by itself when it comes back.
//
// These tests need a real daprd: they are skipped when $ROAM_DAPRD is unset
// (test.sh sets it). The time bounds are generous: they tell "fails fast"
// from "waits for the request's deadline", not one machine from another.

func needDaprd(t *testing.T) {
	t.Helper()
	if os.Getenv("ROAM_DAPRD") == "" {
		t.Skip("ROAM_DAPRD is unset: these tests need a real daprd (test.sh builds one)")
	}
}

// deadApp reads, writes and publishes through the backend, and records its
// events; an event whose data is "hold" holds its first delivery until its
// context ends or release is closed.
type deadRecord struct {
	sync.Mutex
	got     map[string]int
	held    chan struct{} // a "hold" delivery has started
	release chan struct{}
}

var deadRec = &deadRecord{got: map[string]int{}, held: make(chan struct{}, 4), release: make(chan struct{})}

func (r *deadRecord) count(label string) int {
	r.Lock()
	defer r.Unlock()
	return r.got[label]
}

var deadApp = sdk.NewApp("deadapp", func(env sdk.Env, r *sdk.Router) error {
	st := env.State("statestore")
	r.HandleRaw("Get", func(ctx context.Context, b []byte) ([]byte, error) {
		it, err := st.Get(ctx, "k")
		if err != nil {
			return nil, err
		}
		return it.Value, nil
	})
	r.HandleRaw("Put", func(ctx context.Context, b []byte) ([]byte, error) {
		return []byte(`{}`), st.Set(ctx, "k", b, sdk.WriteOptions{})
	})
	r.HandleRaw("Pub", func(ctx context.Context, b []byte) ([]byte, error) {
		return []byte(`{}`), env.Publisher().Publish(ctx, sdk.Message{PubSub: "pubsub", Topic: "dead.events", Data: b})
	})
	sdk.Subscribe(r, "pubsub", "dead.events", func(ctx context.Context, e *sdk.Event) error {
		var label string
		json.Unmarshal(e.Data, &label)
		deadRec.Lock()
		deadRec.got[label]++
		n := deadRec.got[label]
		deadRec.Unlock()
		if label == "hold" && n == 1 {
			deadRec.held <- struct{}{}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-deadRec.release:
			}
		}
		return nil
	})
	return nil
})

// daprdPID finds the process of sc by its gRPC port (daprtest does not
// give it out), for SIGSTOP and SIGCONT.
func daprdPID(t *testing.T, sc *daprtest.Sidecar) int {
	t.Helper()
	want := []byte("--dapr-grpc-port\x00" + strconv.Itoa(sc.GRPCPort) + "\x00")
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, want) || !bytes.Contains(b, []byte("daprd")) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil && pid > 0 && pid != os.Getpid() {
			return pid
		}
	}
	t.Fatalf("no daprd process with gRPC port %d", sc.GRPCPort)
	return 0
}

// stopDaprd stops the process pid with SIGSTOP and waits until all of it
// has stopped: kill returns once the signal is queued, and a thread of
// daprd busy on the other CPU could still answer a call made right after.
func stopDaprd(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/[0-9]*/stat")
		running := len(tasks) == 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			// The state follows the command's closing parenthesis.
			if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) && b[i+2] != 'T' && b[i+2] != 't' {
				running = true
				break
			}
		}
		if !running {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("daprd (pid %d) did not stop within 5s of SIGSTOP", pid)
}

type reply struct {
	status  int
	code    string
	message string
	took    time.Duration
	raw     string
}

func hit(t *testing.T, method, url, body string) reply {
	t.Helper()
	start := time.Now()
	st, b := do(t, method, url, body, nil)
	var eb struct{ Code, Message string }
	json.Unmarshal(b, &eb)
	return reply{status: st, code: eb.Code, message: eb.Message, took: time.Since(start), raw: string(b)}
}

// waitFor polls f until it reports true, failing t after within.
func waitFor(t *testing.T, what string, within time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusIs(t *testing.T, method, url, body string, want int) func() (bool, string) {
	return func() (bool, string) {
		r := hit(t, method, url, body)
		return r.status == want, strconv.Itoa(r.status) + " " + r.raw
	}
}

// The sidecar killed, then hung (SIGSTOP), under a native host.
func TestDeadSidecar(t *testing.T) {
	needDaprd(t)
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	h := startHost(t, hostOptions{appID: "deadapp", res: res}, deadApp)
	call := func(m, body string) reply { return hit(t, "POST", h.URL+"/v1/apps/deadapp/methods/"+m, body) }
	if r := call("Put", `"kept"`); r.status != http.StatusOK {
		t.Fatalf("Put: %d %s", r.status, r.raw)
	}
	if r := hit(t, "GET", h.URL+"/readyz", ""); r.status != http.StatusOK {
		t.Fatalf("/readyz with the sidecar up: %d %s", r.status, r.raw)
	}

	t.Run("killed", func(t *testing.T) {
		h.Sidecar.Kill()
		// Calls fail at once, with 503 naming the sidecar.
		for _, m := range []string{"Get", "Put", "Pub"} {
			r := call(m, `"x"`)
			t.Logf("sidecar killed: %s %d after %v: %s", m, r.status, r.took.Round(time.Millisecond), r.message)
			if r.status != http.StatusServiceUnavailable || r.code != "Unavailable" || !strings.Contains(r.message, "sidecar at 127.0.0.1:"+strconv.Itoa(h.Sidecar.GRPCPort)) || r.took > 10*time.Second {
				t.Errorf("%s with the sidecar killed: %d after %v: %s; want a prompt 503 naming the sidecar", m, r.status, r.took, r.raw)
			}
		}
		// Not ready (out of the Service), but alive (no restart). The
		// check is cached for a second.
		waitFor(t, "/readyz 503 with the sidecar killed", 10*time.Second, statusIs(t, "GET", h.URL+"/readyz", "", http.StatusServiceUnavailable))
		r := hit(t, "GET", h.URL+"/readyz", "")
		if r.status != http.StatusServiceUnavailable || r.code != "Unavailable" || !strings.Contains(r.message, "sidecar") {
			t.Errorf("/readyz with the sidecar killed: %d %s; want 503 naming the sidecar", r.status, r.raw)
		}
		t.Logf("sidecar killed: /readyz %d %s", r.status, r.message)
		if r := hit(t, "HEAD", h.URL+"/readyz", ""); r.status != http.StatusServiceUnavailable {
			t.Errorf("HEAD /readyz with the sidecar killed: %d, want 503", r.status)
		}
		if r := hit(t, "GET", h.URL+"/healthz", ""); r.status != http.StatusOK {
			t.Errorf("/healthz with the sidecar killed: %d %s; liveness must not fail", r.status, r.raw)
		}

		// Back on the same ports: the same host serves again.
		if err := h.Sidecar.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "ready again after the sidecar restarted", 20*time.Second, statusIs(t, "GET", h.URL+"/readyz", "", http.StatusOK))
		waitFor(t, "Get after the sidecar restarted", 20*time.Second, statusIs(t, "POST", h.URL+"/v1/apps/deadapp/methods/Get", "{}", http.StatusOK))
		if r := call("Get", "{}"); r.raw != `"kept"` {
			t.Errorf("Get after the restart: %d %s, want the value written before", r.status, r.raw)
		}
	})

	t.Run("hung", func(t *testing.T) {
		pid := daprdPID(t, h.Sidecar)
		stopDaprd(t, pid)
		stopped := true
		resume := func() {
			if stopped {
				syscall.Kill(pid, syscall.SIGCONT)
				stopped = false
			}
		}
		defer resume()

		// A call through the host ends at the host's request deadline
		// (20s in startHost) with 504, naming the sidecar.
		got := make(chan reply, 1)
		go func() { got <- call("Get", "{}") }()

		// The backend's own message, with a short deadline of its own.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.Backend.State("deadapp", "statestore").Get(ctx, "k")
		cancel()
		if !sdk.IsCode(err, sdk.DeadlineExceeded) || !strings.Contains(err.Error(), "sidecar at 127.0.0.1:"+strconv.Itoa(h.Sidecar.GRPCPort)) {
			t.Errorf("Get with the sidecar hung: %v (code %v), want DeadlineExceeded naming the sidecar", err, sdk.CodeOf(err))
		}
		// A hung sidecar makes the host unready too, and /readyz answers
		// within a probe's usual one-second timeout.
		waitFor(t, "/readyz 503 with the sidecar hung", 10*time.Second, statusIs(t, "GET", h.URL+"/readyz", "", http.StatusServiceUnavailable))
		time.Sleep(time.Second) // past the cache: the next one probes
		r := hit(t, "GET", h.URL+"/readyz", "")
		t.Logf("sidecar hung: /readyz %d after %v: %s; backend Get: %v", r.status, r.took.Round(time.Millisecond), r.message, err)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(r.message, "sidecar") || r.took > 5*time.Second {
			t.Errorf("/readyz with the sidecar hung: %d after %v: %s; want a prompt 503 naming the sidecar", r.status, r.took, r.raw)
		}
		if r := hit(t, "GET", h.URL+"/healthz", ""); r.status != http.StatusOK {
			t.Errorf("/healthz with the sidecar hung: %d %s; liveness must not fail", r.status, r.raw)
		}
		select {
		case r := <-got:
			t.Logf("sidecar hung: call through the host %d after %v: %s", r.status, r.took.Round(time.Millisecond), r.message)
			if r.status != http.StatusGatewayTimeout || r.code != "DeadlineExceeded" || !strings.Contains(r.message, "sidecar") {
				t.Errorf("call through the host with the sidecar hung: %d after %v: %s; want 504 naming the sidecar", r.status, r.took, r.raw)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a call through the host with the sidecar hung did not end within 60s (its deadline is 20s)")
		}

		resume()
		waitFor(t, "ready again after the sidecar resumed", 20*time.Second, statusIs(t, "GET", h.URL+"/readyz", "", http.StatusOK))
		waitFor(t, "Get after the sidecar resumed", 20*time.Second, statusIs(t, "POST", h.URL+"/v1/apps/deadapp/methods/Get", "{}", http.StatusOK))
	})

	t.Run("shutdown with the sidecar hung", func(t *testing.T) {
		pid := daprdPID(t, h.Sidecar)
		stopDaprd(t, pid)
		defer syscall.Kill(pid, syscall.SIGCONT)
		got := make(chan reply, 1)
		go func() { got <- call("Get", "{}") }()
		time.Sleep(300 * time.Millisecond) // the call reaches the sidecar
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		h.Server.Shutdown(ctx) // past its deadline, it cancels the calls in flight
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Shutdown with a call stuck on a hung sidecar took %v, want about its 2s deadline", d)
		}
		select {
		case r := <-got:
			if r.status < 500 {
				t.Errorf("call cut by the shutdown: %d %s", r.status, r.raw)
			}
		case <-time.After(10 * time.Second):
			t.Error("the call stuck on a hung sidecar was not ended by the shutdown")
		}
		start = time.Now()
		h.Backend.Close()
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("closing the backend of a hung sidecar took %v", d)
		}
	})
}

// The sidecar killed while it delivers an event, and started again: the
// event is delivered again (Redis keeps it pending until it is
// acknowledged), the host's app channel serves the new sidecar, which reads
// the subscriptions again, and later events arrive. Over both app channels.
func TestDeadSidecarDelivery(t *testing.T) {
	needDaprd(t)
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			deadRec.Lock()
			clear(deadRec.got)
			deadRec.Unlock()
			h := startHost(t, hostOptions{appID: "deadapp", appProtocol: proto, res: res}, deadApp)
			pub := func(label string) reply {
				return hit(t, "POST", h.URL+"/v1/apps/deadapp/methods/Pub", strconv.Quote(label))
			}
			if r := pub("hold"); r.status != http.StatusOK {
				t.Fatalf("publish: %d %s", r.status, r.raw)
			}
			select {
			case <-deadRec.held:
			case <-time.After(30 * time.Second):
				t.Fatal("the event was not delivered")
			}
			h.Sidecar.Kill() // with the delivery in flight
			if err := h.Sidecar.Start(); err != nil {
				t.Fatal(err)
			}
			h.Sidecar.WaitHealthy(t) // it has read the subscriptions again
			waitFor(t, "publish after the restart", 20*time.Second, func() (bool, string) {
				r := pub("after-" + proto)
				return r.status == http.StatusOK, r.raw
			})
			// Redelivery of the pending entry comes after the component's
			// processingTimeout (15s in daprtest.WriteResources).
			waitFor(t, "the event in flight delivered again, and a new one delivered", 60*time.Second, func() (bool, string) {
				hold, after := deadRec.count("hold"), deadRec.count("after-"+proto)
				return hold >= 2 && after >= 1, "hold " + strconv.Itoa(hold) + ", after " + strconv.Itoa(after)
			})
			waitFor(t, "nothing left pending", 30*time.Second, func() (bool, string) {
				n, err := unacked(r, "dead.events", "deadapp")
				return err == nil && n == 0, strconv.Itoa(n)
			})
		})
	}
}

// Redis killed under a live sidecar: state calls and publishes fail with
// 503 saying the component is unreachable (an error returned to the
// caller, never dropped), the host stays ready (Redis is every replica's:
// see ready.go), and all works again, events included, when Redis is back.
func TestDeadRedis(t *testing.T) {
	needDaprd(t)
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	h := startHost(t, hostOptions{appID: "deadapp", res: res}, deadApp)
	call := func(m, body string) reply { return hit(t, "POST", h.URL+"/v1/apps/deadapp/methods/"+m, body) }
	r.Kill()
	for _, m := range []string{"Pub", "Put", "Get"} {
		rep := call(m, `"redis-down"`)
		if rep.status != http.StatusServiceUnavailable || rep.code != "Unavailable" || !strings.Contains(rep.message, "unreachable") || rep.took > 20*time.Second {
			t.Errorf("%s with Redis down: %d after %v: %s; want 503 saying the store is unreachable", m, rep.status, rep.took, rep.raw)
		}
	}
	if rep := hit(t, "GET", h.URL+"/readyz", ""); rep.status != http.StatusOK {
		t.Errorf("/readyz with Redis down: %d %s; want 200 (the sidecar answers)", rep.status, rep.raw)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Put after Redis came back", 30*time.Second, statusIs(t, "POST", h.URL+"/v1/apps/deadapp/methods/Put", `"back"`, http.StatusOK))
	deadRec.Lock()
	delete(deadRec.got, "redis-back")
	deadRec.Unlock()
	// Redis here keeps nothing across a restart: the sidecar recreates its
	// consumer group, and events flow again.
	waitFor(t, "an event published after Redis came back is delivered", 60*time.Second, func() (bool, string) {
		if deadRec.count("redis-back") > 0 {
			return true, ""
		}
		rep := call("Pub", `"redis-back"`)
		time.Sleep(500 * time.Millisecond)
		return deadRec.count("redis-back") > 0, strconv.Itoa(rep.status) + " " + rep.raw
	})
}

// The host opened before its sidecar is up, as in a Kubernetes pod whose
// containers start together: Open says what it waits for, and returns once
// the sidecar answers; without a sidecar it fails after StartTimeout, or
// when its context ends, with an error naming what it waited for.
func TestSidecarLate(t *testing.T) {
	needDaprd(t)
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{AppID: "late", Resources: res})
	sc.Kill()

	t.Run("sidecar comes up", func(t *testing.T) {
		logs := &syncbuf.Buffer{}
		o := dapr.OptionsFromEnv(sc.Getenv())
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.StartTimeout = time.Minute
		started := make(chan error, 1)
		go func() {
			time.Sleep(2 * time.Second)
			started <- sc.Start()
		}()
		b, err := dapr.Open(context.Background(), o)
		if err != nil {
			t.Fatalf("Open while the sidecar starts: %v", err)
		}
		defer b.Close()
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		if b.Protocol() != "grpc" {
			t.Errorf("protocol %s, want grpc", b.Protocol())
		}
		if l := logs.String(); !strings.Contains(l, "waiting for the sidecar") || !strings.Contains(l, sc.GRPCAddr()) {
			t.Errorf("Open did not say what it waited for:\n%s", l)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.State("late", "statestore").Set(ctx, "k", []byte(`1`), sdk.WriteOptions{}); err != nil {
			t.Errorf("Set once open: %v", err)
		}
		sc.Kill()
	})

	t.Run("no sidecar", func(t *testing.T) {
		o := dapr.OptionsFromEnv(sc.Getenv())
		o.Logger = slog.New(slog.DiscardHandler)
		o.StartTimeout = 2 * time.Second
		start := time.Now()
		_, err := dapr.Open(context.Background(), o)
		if !sdk.IsCode(err, sdk.Unavailable) || !strings.Contains(err.Error(), sc.GRPCAddr()) || time.Since(start) > 30*time.Second {
			t.Errorf("Open without a sidecar: %v after %v, want Unavailable naming %s", err, time.Since(start), sc.GRPCAddr())
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		o.StartTimeout = time.Minute
		_, err = dapr.Open(ctx, o)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting") || !strings.Contains(err.Error(), sc.GRPCAddr()) {
			t.Errorf("Open ended by its context: %v, want the context's error, saying it waited for %s", err, sc.GRPCAddr())
		}
	})
}
