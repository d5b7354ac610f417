package dapr_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/examples/shop/inventory"
	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// loadWorkers is how many goroutines a load calls from.
const loadWorkers = 8

// load calls inventory.Stock from loadWorkers goroutines until end. It
// records the calls that started since its last reset: their statuses, the
// last body of each, and which workers have finished one. A worker stuck in
// a call never finishes one, so waiting for every worker (settle) is what
// catches a hang, and what makes "only 503s" mean something: each worker
// has answered at least once.
type load struct {
	mu      sync.Mutex
	from    time.Time      // calls that started before are not counted
	counts  map[int]int    // status (-1: transport error) -> calls
	bodies  map[int]string // status -> the last body
	slowest time.Duration  // of every call that ended since the reset
	fresh   [loadWorkers]bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startLoad(base, sku string) *load {
	l := &load{counts: map[int]int{}, bodies: map[int]string{}, stop: make(chan struct{})}
	for w := range loadWorkers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				start := time.Now()
				st, b, err := call(context.Background(), base, "inventory", "Stock", mustJSON(contract.SKURef{SKU: sku}))
				el := time.Since(start)
				if err != nil {
					st = -1
					b = []byte(err.Error())
				}
				l.mu.Lock()
				// A call in flight at the reset counts towards slowest (one
				// caught by a kill must not hang either), not towards the
				// statuses: it may have been answered before the kill.
				l.slowest = max(l.slowest, el)
				if !start.Before(l.from) {
					l.counts[st]++
					l.bodies[st] = string(b)
					l.fresh[w] = true
				}
				l.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return l
}

// reset forgets what was recorded: from now on only calls that start after
// it count.
func (l *load) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.from = time.Now()
	clear(l.counts)
	clear(l.bodies)
	l.slowest = 0
	l.fresh = [loadWorkers]bool{}
}

// settle waits until every worker has finished a call that started since
// the last reset, and returns what those calls answered. within bounds the
// wait, for a failure's sake: it is not what the test measures.
func (l *load) settle(t *testing.T, what string, within time.Duration) (map[int]int, map[int]string, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		l.mu.Lock()
		n := 0
		for _, f := range l.fresh {
			if f {
				n++
			}
		}
		c, b, s := maps.Clone(l.counts), maps.Clone(l.bodies), l.slowest
		l.mu.Unlock()
		if n == loadWorkers {
			return c, b, s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: only %d of %d workers answered a call within %v (the others hang): statuses %v %v", what, n, loadWorkers, within, c, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *load) end() { close(l.stop); l.wg.Wait() }

// onlyStatus fails t unless every call counted in c answered want.
func onlyStatus(t *testing.T, what string, c map[int]int, b map[int]string, want int) {
	t.Helper()
	if len(c) != 1 || c[want] == 0 {
		t.Fatalf("%s: statuses %v %v, want %d only", what, c, b, want)
	}
}

// available decodes the stock level a 200 carried.
func available(t *testing.T, body string) int {
	t.Helper()
	var s contract.StockLevel
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("Stock reply %q: %v", body, err)
	}
	return s.Available
}

// waitStatus polls until a Stock call returns want.
func waitStatus(t *testing.T, base, sku string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, b, err := call(context.Background(), base, "inventory", "Stock", mustJSON(contract.SKURef{SKU: sku}))
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stock did not return %d within %v: last %d %s %v", want, within, st, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Faults: the sidecar killed mid-load, then Redis. Requests fail fast with
// 503 Unavailable and a message that says what is down, never hang, and
// succeed again once it is back.
//
// Nothing here sleeps for a guess of how long an effect takes: each phase
// resets the load and waits until every worker has answered a call that
// started in it, then checks what all of those answered. The waits' bounds
// only turn a hang into a failure.
func TestFaults(t *testing.T) {
	r := daprtest.StartRedis(t)
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{})
	h := startHost(t, hostOptions{appID: "inventory", res: res}, inventory.App)
	sku := "fault-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	mustCall(t, appDriver{"inventory": h.URL}, "inventory", "Restock", contract.Restock{SKU: sku, Quantity: 5}, http.StatusOK)

	t.Run("sidecar killed", func(t *testing.T) {
		l := startLoad(h.URL, sku)
		defer l.end()
		c, b, _ := l.settle(t, "before the kill", 30*time.Second)
		onlyStatus(t, "before the kill", c, b, http.StatusOK)
		if n := available(t, b[http.StatusOK]); n != 5 {
			t.Fatalf("before the kill: %d available, want 5", n)
		}

		h.Sidecar.Kill() // returns once the process is gone
		l.reset()
		c, b, slow := l.settle(t, "with the sidecar down", 30*time.Second)
		onlyStatus(t, "with the sidecar down", c, b, http.StatusServiceUnavailable)
		if slow > 5*time.Second {
			t.Fatalf("with the sidecar down: the slowest call took %v, want a prompt 503", slow)
		}
		var eb struct{ Code, Message string }
		json.Unmarshal([]byte(b[http.StatusServiceUnavailable]), &eb)
		if eb.Code != "Unavailable" || !strings.Contains(eb.Message, "sidecar") {
			t.Fatalf("503 body %s: want code Unavailable and a message naming the sidecar", b[http.StatusServiceUnavailable])
		}
		t.Logf("sidecar down: %v, slowest %v: %s", c, slow, eb.Message)

		if err := h.Sidecar.Start(); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, h.URL, sku, http.StatusOK, 15*time.Second)
		l.reset()
		c, b, _ = l.settle(t, "after the sidecar came back", 30*time.Second)
		onlyStatus(t, "after the sidecar came back", c, b, http.StatusOK)
		if n := available(t, b[http.StatusOK]); n != 5 {
			t.Fatalf("after the sidecar came back: %d available, want the 5 restocked before", n)
		}
	})

	t.Run("redis killed", func(t *testing.T) {
		l := startLoad(h.URL, sku)
		defer l.end()
		c, b, _ := l.settle(t, "before the kill", 30*time.Second)
		onlyStatus(t, "before the kill", c, b, http.StatusOK)

		r.Kill() // returns once the process is gone
		l.reset()
		// With Redis refusing connections, Dapr's Redis client retries a
		// read for about 3s (go-redis: 3 retries with backoff, on HGETALL
		// and then GET) before it answers with the error.
		c, b, slow := l.settle(t, "with Redis down", 60*time.Second)
		onlyStatus(t, "with Redis down", c, b, http.StatusServiceUnavailable)
		if slow > 10*time.Second {
			t.Fatalf("with Redis down: the slowest call took %v, want a 503 after the client's retries", slow)
		}
		var eb struct{ Code, Message string }
		json.Unmarshal([]byte(b[http.StatusServiceUnavailable]), &eb)
		if eb.Code != "Unavailable" || !strings.Contains(eb.Message, "unreachable") {
			t.Fatalf("503 body %s: want code Unavailable and a message saying the store is unreachable", b[http.StatusServiceUnavailable])
		}
		t.Logf("redis down: %v, slowest %v: %s", c, slow, eb.Message)
		// Writes say so too. Dapr's Redis store words a failed write as a
		// concurrency failure ("failed to set key", "possible etag
		// mismatch"), which must not come back as a Conflict, nor an
		// IfAbsent write's "key already exists".
		be := open(t, h.Sidecar)
		defer be.Close()
		st, ctx := be.State("inventory", "statestore"), ctxT(t)
		for _, w := range []struct {
			what string
			do   func() error
		}{
			{"Set", func() error { return st.Set(ctx, sku+"-w", []byte(`1`), sdk.WriteOptions{}) }},
			{"Set IfAbsent", func() error { return st.Set(ctx, sku+"-a", []byte(`1`), sdk.WriteOptions{IfAbsent: true}) }},
			{"Delete", func() error { return st.Delete(ctx, sku+"-w", sdk.WriteOptions{}) }},
		} {
			if err := w.do(); !sdk.IsCode(err, sdk.Unavailable) || !strings.Contains(err.Error(), "unreachable") {
				t.Errorf("%s with Redis down: %v (code %v), want Unavailable saying the store is unreachable", w.what, err, sdk.CodeOf(err))
			}
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		// Redis kept nothing (no persistence here): the sku is unknown now,
		// which is an answer from the store again.
		waitStatus(t, h.URL, sku, http.StatusNotFound, 20*time.Second)
	})
}

// APP_API_TOKEN: the host refuses app-channel calls without the sidecar's
// token (401 over HTTP, Unauthenticated over gRPC, which the sidecar's HTTP
// API turns into 401 for the caller). DAPR_API_TOKEN: the backend sends it,
// and a sidecar that wants it refuses a backend without it, clearly.
func TestTokens(t *testing.T) {
	r := daprtest.StartRedis(t)
	// Daprd 1.16.0 calls ListTopicSubscriptions over gRPC without the
	// dapr-api-token (dapr/dapr#9142, backported to 1.16 by #9143), which
	// the host rightly refuses: these sidecars never read their apps'
	// subscriptions, and would retry for the harness's whole start-up budget
	// before reporting healthy. The hosts here serve at once and need no
	// events, so their sidecars give up within Dapr's usual few seconds.
	res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{AppStartBudget: 2 * time.Second})
	for _, proto := range []string{"http", "grpc"} {
		t.Run("app token "+proto, func(t *testing.T) {
			right := startHost(t, hostOptions{appID: "tokapp-" + proto, appProtocol: proto, res: res,
				sidecarEnv: []string{"APP_API_TOKEN=s3cret"}, backendEnv: []string{"APP_API_TOKEN=s3cret"}}, aloApp)
			st, b := post(t, "http://"+right.Sidecar.HTTPAddr()+"/v1.0/invoke/tokapp-"+proto+"/method/Ping", `{"p":1}`, nil)
			if st != http.StatusOK || string(b) != `{"p":1}` {
				t.Fatalf("invoke with the right token: %d %s", st, b)
			}
			wrong := startHost(t, hostOptions{appID: "tokwrong-" + proto, appProtocol: proto, res: res, noWait: true,
				sidecarEnv: []string{"APP_API_TOKEN=guess"}, backendEnv: []string{"APP_API_TOKEN=s3cret"}}, aloApp)
			deadline := time.Now().Add(20 * time.Second)
			for {
				st, b = post(t, "http://"+wrong.Sidecar.HTTPAddr()+"/v1.0/invoke/tokwrong-"+proto+"/method/Ping", `{}`, nil)
				if st == http.StatusUnauthorized || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if st != http.StatusUnauthorized {
				t.Fatalf("invoke through a sidecar with the wrong token: %d %s, want 401", st, b)
			}
			if proto == "http" {
				for _, c := range []struct{ method, path, token string }{
					{"POST", "/Ping", ""}, {"POST", "/Ping", "guess"}, {"GET", "/dapr/subscribe", ""},
					{"POST", "/dapr/roam/events/pubsub/alo.events", "guess"},
				} {
					st, b := do(t, c.method, wrong.URL+c.path, `{}`, map[string]string{"dapr-api-token": c.token})
					if st != http.StatusUnauthorized {
						t.Errorf("%s %s with token %q: %d %s, want 401", c.method, c.path, c.token, st, b)
					}
				}
				if st, b := do(t, "POST", wrong.URL+"/Ping", `{}`, map[string]string{"dapr-api-token": "s3cret"}); st != http.StatusOK {
					t.Errorf("POST /Ping with the right token: %d %s", st, b)
				}
				if st, _ := do(t, "GET", wrong.URL+"/healthz", ``, nil); st != http.StatusOK {
					t.Errorf("GET /healthz without a token: %d, want 200 (not the app channel)", st)
				}
			}
		})
	}

	t.Run("DAPR_API_TOKEN", func(t *testing.T) {
		sc := daprtest.StartSidecar(t, daprtest.SidecarOptions{AppID: "tokapi", Resources: res, Env: []string{"DAPR_API_TOKEN=api-s3cret"}})
		b := open(t, sc, "DAPR_API_TOKEN=api-s3cret")
		defer b.Close()
		ctx := ctxT(t)
		st := b.State("tokapi", "statestore")
		if err := st.Set(ctx, "k", []byte(`1`), sdk.WriteOptions{}); err != nil {
			t.Fatalf("Set with the API token: %v", err)
		}
		// Refused at once, not after waiting for the sidecar: StartTimeout
		// is a minute, and the bound half of it, far from any machine's
		// noise.
		o := dapr.OptionsFromEnv(sc.Getenv())
		o.StartTimeout = time.Minute
		start := time.Now()
		_, err := dapr.Open(ctx, o)
		if !sdk.IsCode(err, sdk.FailedPrecondition) || !strings.Contains(err.Error(), "DAPR_API_TOKEN") || time.Since(start) > o.StartTimeout/2 {
			t.Fatalf("Open without the API token: %v (code %v) after %v, want FailedPrecondition naming DAPR_API_TOKEN, not a wait for the sidecar", err, sdk.CodeOf(err), time.Since(start))
		}
	})
}

func post(t *testing.T, url, body string, hdr map[string]string) (int, []byte) {
	return do(t, http.MethodPost, url, body, hdr)
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}
