package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseReadyLine(t *testing.T) {
	url, in, ok := parseReadyLine("roam: ready on http://127.0.0.1:40123 in 2.913ms (metrics http://127.0.0.1:40123/metrics)")
	if !ok || url != "http://127.0.0.1:40123" || in != 2913*time.Microsecond {
		t.Fatalf("got %q %v %v", url, in, ok)
	}
	if _, _, ok := parseReadyLine("roam: ready on http://127.0.0.1:1 in 812µs (metrics x)"); !ok {
		t.Fatal("µs duration not parsed")
	}
	for _, bad := range []string{"roam: backend embedded, data in /x", "roam: ready on http://x soon", ""} {
		if _, _, ok := parseReadyLine(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

const wrkOutput = `Running 5s test @ http://127.0.0.1:43871/v1/apps/orders/methods/Get
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.34us    1.20ms  30.00ms   95.00%
    Req/Sec    24.10k     1.00k   26.00k    70.00%
  Latency Distribution
     50%  630.00us
     75%    1.00ms
     90%    1.50ms
     99%    9.78ms
  241000 requests in 5.00s, 60.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 0
  Non-2xx or 3xx responses: 3
Requests/sec:  48200.50
Transfer/sec:     12.00MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{RPS: 48200.50, Requests: 241000, P50: 630 * time.Microsecond, P99: 9780 * time.Microsecond, Non2xx: 3, SockErrs: "connect 0, read 1, write 0, timeout 0"}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect"); err == nil {
		t.Fatal("no error without Requests/sec")
	}
	if d, err := parseWrkDuration("1.50m"); err != nil || d != 90*time.Second {
		t.Fatalf("1.50m: %v %v", d, err)
	}
}

func TestPercentileMedian(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 50); p != 50 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 99); p != 99 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of nothing = %v", p)
	}
	if m := median([]int64{5, 1, 3}); m != 3 {
		t.Errorf("median = %v", m)
	}
	if m := median([]time.Duration{4, 1, 3, 2}); m != 2 { // (2+3)/2 in integers
		t.Errorf("median = %v", m)
	}
}

func TestOrderIDOf(t *testing.T) {
	id, err := orderIDOf([]byte(`{"order":{"id":"abc123","customer":"c"},"etag":"7"}`))
	if err != nil || id != "abc123" {
		t.Fatalf("got %q, %v", id, err)
	}
	if _, err := orderIDOf([]byte(`{"code":"not_found"}`)); err == nil {
		t.Fatal("no error without an id")
	}
}

func TestProcReaders(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("implausible %+v", m)
	}
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// TestLoadAgainstBare runs the load generator briefly against the bare
// handler and checks what it counted, not how fast it was.
func TestLoadAgainstBare(t *testing.T) {
	get, create := []byte(`{"order":{"id":"x"},"etag":"1"}`), []byte(`{"order":{"id":"y"},"etag":"2"}`)
	ts := httptest.NewServer(bareHandler(get, create))
	defer ts.Close()

	// The bare handler serves the fixed bytes, and only to POST.
	resp, err := http.Post(ts.URL+createPath, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, create) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST Create: %d %s %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	resp, err = http.Get(ts.URL + getPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET Get: %d", resp.StatusCode)
	}

	res, err := runLoad(context.Background(), loadSpec{
		URL: ts.URL + getPath, Concurrency: 4, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond,
		Body: func(w, n int) []byte { return []byte(`{"id":"x"}`) },
		CPU:  func() (time.Duration, error) { return cpuTime(os.Getpid()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Window != 300*time.Millisecond {
		t.Fatalf("implausible %+v", res)
	}

	res, err = runLoad(context.Background(), loadSpec{
		URL: ts.URL + "/no-such-path", Concurrency: 2, Duration: 100 * time.Millisecond,
		Body: func(w, n int) []byte { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstErr, "404") {
		t.Fatalf("errors not counted: %+v", res)
	}

	if _, err := runLoad(context.Background(), loadSpec{URL: "http://192.0.2.1:80/", Concurrency: 1, Duration: time.Second}); err == nil {
		t.Fatal("a target other than 127.0.0.1 was accepted")
	}
}

func TestParseModuleLine(t *testing.T) {
	m, ok := parseModuleLine("roam: module orders.wasm: app orders, 8 instances, 4.2 MB, loaded in 176ms")
	want := moduleLoad{File: "orders.wasm", App: "orders", Instances: 8, LoadedIn: 176 * time.Millisecond}
	if !ok || m != want {
		t.Fatalf("got %+v %v, want %+v", m, ok, want)
	}
	if m, ok := parseModuleLine("roam: module inventory.wasm: app inventory, 1 instances, 4.1 MB, loaded in 2.145s"); !ok || m.LoadedIn != 2145*time.Millisecond || m.Instances != 1 {
		t.Fatalf("got %+v %v", m, ok)
	}
	if m, ok := parseModuleLine("roam: module orders.wasm: app orders, 8 instances (up to 32), 4.2 MB, loaded in 176ms"); !ok || m != want {
		t.Fatalf("a pool that may grow: got %+v %v", m, ok)
	}
	for _, bad := range []string{
		"roam: edge runtime wazero v1.12.0, compiled code cached in x",
		"roam: module x.wasm: app x, many instances, 1 MB, loaded in 1ms",
		"roam: module x.wasm: app x, 1 instances, 1 MB, loaded in soon",
		"roam: module x.wasm",
	} {
		if _, ok := parseModuleLine(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func TestEdgeHostArgs(t *testing.T) {
	got := strings.Join(edgeHostArgs([]string{"taskset", "-c", "1"}, "roam", "mods", "data", "cache", 8, "--pprof"), " ")
	if want := "taskset -c 1 roam edge mods --port 0 --data-dir data --cache-dir cache --pool-size 8 --pprof"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := strings.Join(edgeHostArgs(nil, "roam", "mods", "d", "c", 0), " "); strings.Contains(got, "pool-size") {
		t.Fatalf("default pool passed a size: %q", got)
	}
	if got, want := strings.Join(edgeHostArgs(nil, "/tmp/x/roam-edge", "mods/orders.wasm", "d", "c", 1), " "), "/tmp/x/roam-edge mods/orders.wasm --port 0 --data-dir d --cache-dir c --pool-size 1"; got != want {
		t.Fatalf("roam-edge: got %q, want %q", got, want)
	}
}

func TestProbeList(t *testing.T) {
	status, reply := http.StatusServiceUnavailable, `{}`
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != listPath {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if string(b) != listBody {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	defer ts.Close()
	if probeList(ts.Client(), ts.URL) {
		t.Fatal("a 503 passed")
	}
	status = http.StatusOK
	if probeList(ts.Client(), ts.URL) {
		t.Fatal("a 200 without the empty list passed")
	}
	reply = `{"orders":[]}`
	if !probeList(ts.Client(), ts.URL) {
		t.Fatal("the empty list did not pass")
	}
}

func TestEdgeSetFigures(t *testing.T) {
	s := &edgeSet{Pool: 1, Starts: []edgeStart{
		{ToOK: 3 * time.Millisecond, Modules: []moduleLoad{{App: "orders", Instances: 1, LoadedIn: 2 * time.Millisecond}}, Mem: memory{RSS: 10}},
		{ToOK: 1 * time.Millisecond, Modules: []moduleLoad{{App: "orders", Instances: 1, LoadedIn: 4 * time.Millisecond}}},
		{ToOK: 2 * time.Millisecond, Modules: []moduleLoad{{App: "orders", Instances: 1, LoadedIn: 6 * time.Millisecond}}, Mem: memory{RSS: 30}},
	}}
	if d := s.median(func(st edgeStart) time.Duration { return st.ToOK }); d != 2*time.Millisecond {
		t.Errorf("median = %v", d)
	}
	if d := s.median(func(st edgeStart) time.Duration { return st.loadedIn("orders") }); d != 4*time.Millisecond {
		t.Errorf("median load = %v", d)
	}
	if rss, _, _, _ := s.rss(); len(rss) != 2 {
		t.Errorf("rss of starts without a reading: %v", rss)
	}
	if l := (&edgeSet{Pool: 1, Alone: true, Orders: true}).label(); l != "roam-edge, cache warm, --pool-size 1, orders alone" {
		t.Errorf("label %q", l)
	}
	if s.label() != "cache warm, --pool-size 1" || (&edgeSet{Cold: true}).label() != "fresh cache dir, default pool" {
		t.Errorf("labels: %q", s.label())
	}
}

func TestParseAnonExecRSS(t *testing.T) {
	smaps := `00400000-00b49000 r-xp 00000000 fd:00 123 /usr/bin/roam
Rss:                6500 kB
7f25aefdb000-7f25b0000000 r-xp 00000000 00:00 0 
Size:              16532 kB
Rss:               16532 kB
7f25c44fc000-7f25c54a8000 r-xp 00000000 00:00 0 
Rss:               16048 kB
2ce8eec00000-2ce8f2c00000 rw-p 00000000 00:00 0 
Rss:               47524 kB
7ffe12ab2000-7ffe12ad3000 rw-p 00000000 00:00 0                          [stack]
Rss:                 132 kB
`
	if got, want := parseAnonExecRSS(smaps), int64(16532+16048)<<10; got != want {
		t.Fatalf("got %d, want %d", got, want)
	}
	if n := anonExecRSS(os.Getpid()); n < 0 {
		t.Fatalf("own anonymous executable RSS %d", n)
	}
}

func TestParseMachineBusy(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	d, err := parseMachineBusy("cpu  100 10 20 500 7 1 2 3 0 0\ncpu0 50 5 10 250 3 0 1 1 0 0\n")
	if err != nil || d != 136*clockTick {
		t.Fatalf("got %v, %v", d, err)
	}
	if _, err := parseMachineBusy("intr 1 2 3\n"); err == nil {
		t.Fatal("no error without a cpu line")
	}
	if _, err := machineBusy(); err != nil {
		t.Fatal(err)
	}
	r := loadResult{Window: time.Second, MachineBusy: 1500 * time.Millisecond, ServerCPU: 600 * time.Millisecond, ClientCPU: 400 * time.Millisecond}
	if o := r.OthersCPU(); o < 0.499 || o > 0.501 {
		t.Fatalf("others = %v", o)
	}
	if o := (loadResult{Window: time.Second}).OthersCPU(); o != -1 {
		t.Fatalf("unknown others = %v", o)
	}
}
