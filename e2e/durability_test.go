package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestKillDurability puts a host under write and publish load, kills it with
// SIGKILL mid-stream, restarts it on the same data directory and checks that
// everything it acknowledged survived: every Put is readable with its value,
// and every Publish is delivered, once, in publish order.
func TestKillDurability(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHost(t, dir, shopAndConformance)
	marker := runID(t)

	type pubData struct {
		M string `json:"m"`
		P int    `json:"p"`
		I int    `json:"i"`
	}
	var (
		mu        sync.Mutex
		puts      = map[string]string{} // acknowledged key -> value
		published = map[pubData]bool{}  // acknowledged events
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// stopLoad ends the load; deferred too, so that a failure before the
	// kill does not leave the workers calling.
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		cancel()
		wg.Wait()
	})
	defer stopLoad()
	callOK := func(method string, body any) bool {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		status, _, _, err := post(cctx, h.URL, http.MethodPost, "/v1/apps/conformance/methods/"+method, body)
		return err == nil && status == http.StatusOK
	}
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("dur-%s-%d-%d", marker, g, i)
				value := fmt.Sprintf(`{"g":%d,"i":%d,"pad":"%0*d"}`, g, i, 64+i%64, i)
				if callOK("Put", map[string]any{"key": key, "value": json.RawMessage(value)}) {
					mu.Lock()
					puts[key] = value
					mu.Unlock()
				}
			}
		})
	}
	for p := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := pubData{M: marker, P: p, I: i}
				if callOK("Publish", map[string]any{"topic": "conf.events", "data": d}) {
					mu.Lock()
					published[d] = true
					mu.Unlock()
				}
			}
		})
	}

	// Let the load run until enough is acknowledged to test anything,
	// then pull the plug on the host process itself, with the load still
	// running. The bound only turns a host that stopped acknowledging into
	// a failure.
	const minPuts, minPublishes = 50, 10
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		np, nb := len(puts), len(published)
		mu.Unlock()
		if np >= minPuts && nb >= minPublishes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("too little load acknowledged within 60s to test anything: %d puts (want %d), %d publishes (want %d); output:\n%s", np, minPuts, nb, minPublishes, h.out)
		}
	}
	h.signal(syscall.SIGKILL)
	h.exitedWithin(10 * time.Second)
	stopLoad()
	if ws, ok := h.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("host did not die of SIGKILL: %v", h.cmd.ProcessState)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("acknowledged before the kill: %d puts, %d publishes", len(puts), len(published))

	h2 := startHost(t, dir, shopAndConformance)

	// Every acknowledged Put reads back with its value.
	keys := make([]string, 0, len(puts))
	for k := range puts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 500)]
		keys = keys[len(chunk):]
		got := mustCall[struct{ Items []storedValue }](t, h2, "conformance", "BulkGet", map[string]any{"keys": chunk}, http.StatusOK)
		if len(got.Items) != len(chunk) {
			t.Fatalf("BulkGet of %d keys: %d items", len(chunk), len(got.Items))
		}
		for i, it := range got.Items {
			if !it.Found || it.Key != chunk[i] {
				t.Fatalf("acknowledged put %s lost after SIGKILL: %+v", chunk[i], it)
			}
			if !jsonEqual(it.Value, []byte(puts[chunk[i]])) {
				t.Fatalf("put %s: value %s after restart, want %s", chunk[i], it.Value, puts[chunk[i]])
			}
		}
	}

	// Every acknowledged Publish is delivered after the restart: once each
	// (Received drops redeliveries by event id) and in each publisher's order.
	eventually(t, 60*time.Second, "acknowledged events delivered after restart", func() string {
		r := mustCall[struct{ Events []json.RawMessage }](t, h2, "conformance", "Received", map[string]string{"topic": "conf.events", "match": marker}, http.StatusOK)
		seen := map[pubData]bool{}
		next := [2]int{}
		for _, raw := range r.Events {
			var d pubData
			if err := json.Unmarshal(raw, &d); err != nil || d.M != marker || d.P < 0 || d.P > 1 {
				t.Fatalf("unexpected event %s", raw)
			}
			if seen[d] {
				t.Fatalf("event %s recorded twice", raw)
			}
			if d.I < next[d.P] {
				t.Fatalf("publisher %d's event %d arrived after its event %d", d.P, d.I, next[d.P]-1)
			}
			next[d.P] = d.I + 1
			seen[d] = true
		}
		missing := 0
		for d := range published {
			if !seen[d] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Sprintf("%d of %d acknowledged events not delivered yet (%d recorded)", missing, len(published), len(r.Events))
		}
		return ""
	})
	if s, _ := h2.get(t, "/healthz"); s != http.StatusOK {
		t.Fatalf("/healthz after restart: %d", s)
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
