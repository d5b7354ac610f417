package e2e_test

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdown sends SIGTERM while a slow call is in flight: the
// call still completes with 200, and the host then exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	// --pprof lets the test see, from the goroutine dump, the moment the
	// slow handler is running, instead of guessing with a sleep.
	h := startHost(t, t.TempDir(), shopAndConformance, "--pprof")

	type reply struct {
		status int
		body   string
		err    error
	}
	done := make(chan reply, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, b, _, err := post(ctx, h.URL, http.MethodPost, "/v1/apps/conformance/methods/Sleep", `{"ms":1500}`)
		done <- reply{s, string(b), err}
	}()
	eventually(t, 20*time.Second, "Sleep handler running", func() string {
		_, dump := h.get(t, "/debug/pprof/goroutine?debug=2")
		if !strings.Contains(dump, "testapp.(*app).sleep") {
			return "no goroutine in testapp.(*app).sleep"
		}
		return ""
	})
	termAt := time.Now()
	h.signal(syscall.SIGTERM)

	var r reply
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("in-flight call did not finish after SIGTERM; host output:\n%s", h.out)
	}
	if r.err != nil || r.status != http.StatusOK || r.body != "{}" {
		t.Fatalf("in-flight call across SIGTERM: status %d body %q err %v; host output:\n%s", r.status, r.body, r.err, h.out)
	}
	if code := h.exitedWithin(20 * time.Second); code != 0 {
		t.Fatalf("host exit code %d after SIGTERM, want 0; output:\n%s", code, h.out)
	}
	if d := h.exited.Sub(termAt); d > 10*time.Second {
		t.Errorf("host took %v to exit after SIGTERM", d)
	}
	if !strings.Contains(h.out.String(), "shutting down") {
		t.Errorf("host did not log its shutdown; output:\n%s", h.out)
	}
	// The listener is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := post(ctx, h.URL, http.MethodGet, "/healthz", nil); err == nil {
		t.Errorf("host still answers after it exited")
	}
}
