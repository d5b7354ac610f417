package e2e_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/conformance/tracecheck"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/internal/otlptest"
)

// TestRunTraced: `roam run` with an OTLP endpoint in its environment links
// tracing into the host it builds (a lean build would not have it) and
// exports the shop's spans there: orders.Create is one trace, down to
// inventory's state operations.
func TestRunTraced(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	h := startHostEnv(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL, "OTEL_BSP_SCHEDULE_DELAY=50"},
		t.TempDir(), []string{"./examples/shop"})
	id := runID(t)
	sku := "sku-" + id
	mustCall[contract.StockLevel](t, h, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 5}, http.StatusOK)
	mustCall[contract.OrderReply](t, h, "orders", "Create", contract.CreateOrder{Customer: "c-" + id, SKU: sku, Quantity: 2}, http.StatusOK)
	spans := rcv.Wait(t, "the spans of orders.Create", 60*time.Second, func(ss []otlptest.Span) bool {
		return len(otlptest.Find(ss, "inventory", "inventory.Reserve")) > 0 && len(otlptest.Find(ss, "orders", "publish order.created")) > 0 &&
			len(otlptest.Find(ss, "orders", "orders/Create")) > 0 && len(otlptest.Find(ss, "inventory", "state.Transact statestore")) > 0
	})
	tracecheck.OrdersCreate(t, spans, "", "")
}

// startHostEnv is startHost with more environment.
func startHostEnv(t testing.TB, env []string, dataDir string, pkgs []string) *host {
	t.Helper()
	args := append(append([]string{"run"}, pkgs...), "--port", "0", "--data-dir", dataDir)
	out := &syncBuffer{}
	w := &readyWatcher{out: out, ready: make(chan string, 1)}
	cmd := exec.Command(roamBin, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = w, out
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
	})
	select {
	case u := <-w.ready:
		return &host{proc: p, URL: u}
	case <-p.done:
		t.Fatalf("roam %s exited (%v) before it was ready; output:\n%s", strings.Join(args, " "), p.err, out)
	case <-time.After(readyTimeout):
		t.Fatalf("roam %s not ready within %v; output:\n%s", strings.Join(args, " "), readyTimeout, out)
	}
	return nil
}
