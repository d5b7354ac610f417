// Command roambench measures a release build of the shop example as a user
// runs it, and prints the figures as a markdown table beside the targets:
//
//   - the size of the static, stripped binary `roam build` produces;
//   - start-to-ready: from exec to the first 200 from /readyz, with
//     --port 0 and a fresh data directory, median over -runs starts (and the
//     process's own "ready in" figure);
//   - idle RSS about a second after ready, median over -rss-runs starts;
//   - orders.Get and orders.Create over loopback HTTP from a closed-loop Go
//     load generator (keep-alive, -c connections, -warmup then -duration per
//     case), against the shop and against a bare net/http server returning
//     the same bytes; with the server's CPU time per request; and, when wrk is
//     installed, wrk's figures for orders.Get;
//   - unless -no-edge: the shop's apps built as wasm modules
//     (roam build --target wasm) on `roam edge`, measured in the same run:
//     orders.Get and orders.Create under the same load beside the native
//     shop (the edge/native ratio), start-up to the first 200 from a module
//     with the compilation cache warm and cold, and idle RSS per pooled
//     instance (see edge.go).
//
// Run it from anywhere inside the repository:
//
//	go run ./bench/cmd/roambench
//	go run ./bench/cmd/roambench -pprof-dir /tmp/prof   # also CPU profiles of the shop under load
//
// It only ever connects to 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "roambench:", err)
		}
		os.Exit(1)
	}
}

// Targets of the foundation issue.
const (
	targetBinary   = 15_000_000 // bytes (15 MB)
	targetRSS      = 12_000_000 // bytes (12 MB)
	targetReady    = 30 * time.Millisecond
	targetGetRatio = 0.70
)

type config struct {
	repo, bin, roam, pprofDir, bareServer string
	tags                                  string
	serverCPUs                            string
	runs, rssRuns, conc                   int
	edgeRuns, edgeColdRuns, edgePool      int
	edgeMaxPool                           int
	rssDelay, warmup, duration, edgeIdle  time.Duration
	noWrk, noHot, noEdge                  bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("roambench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.repo, "repo", "", "root of the roam repository (default: found from the working directory)")
	fs.StringVar(&c.bin, "bin", "", "measure this shop binary instead of building one")
	fs.StringVar(&c.roam, "roam", "", "use this roam binary instead of building one (go build ./cmd/roam)")
	fs.StringVar(&c.tags, "tags", "", "build tags for go build ./cmd/roam: roam_wazy runs the edge host on wazy instead of wazero")
	fs.BoolVar(&c.noEdge, "no-edge", false, "skip the edge host (roam edge with the shop as wasm modules)")
	fs.IntVar(&c.edgeRuns, "edge-runs", 10, "warm starts of roam edge per pool size (compilation cache filled)")
	fs.IntVar(&c.edgeColdRuns, "edge-cold-runs", 3, "cold starts of roam edge per pool size (fresh compilation cache; seconds each)")
	fs.IntVar(&c.edgePool, "edge-pool", 0, "--pool-size of roam edge under load (0: the host's default)")
	fs.IntVar(&c.edgeMaxPool, "edge-max-pool", 0, "--max-pool-size of roam edge under load (0: the host's default; equal to -edge-pool for a fixed pool)")
	fs.DurationVar(&c.edgeIdle, "edge-idle", 0, "after the load, leave roam edge idle this long and read its RSS and pool again (0: skip; its pools shrink after --pool-idle-timeout, 30s)")
	fs.IntVar(&c.runs, "runs", 10, "starts for the start-to-ready median")
	fs.IntVar(&c.rssRuns, "rss-runs", 5, "starts for the idle RSS median (the first ones of -runs)")
	fs.DurationVar(&c.rssDelay, "rss-delay", time.Second, "wait after ready before reading idle RSS")
	fs.IntVar(&c.conc, "c", 32, "concurrent connections of the load generator")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "uncounted warm-up of each load case")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "counted duration of each load case")
	fs.BoolVar(&c.noWrk, "no-wrk", false, "skip wrk even when it is installed")
	fs.BoolVar(&c.noHot, "no-hot", false, "skip the one-hot-SKU orders.Create case")
	fs.StringVar(&c.serverCPUs, "server-cpus", "", "CPU `list` for the servers under load, through taskset -c (e.g. 1; then start roambench itself under taskset -c 0)")
	fs.StringVar(&c.pprofDir, "pprof-dir", "", "run the shop with --pprof and save CPU profiles of it under load here")
	fs.StringVar(&c.bareServer, "bare-server", "", "internal: serve as the bare net/http baseline with the replies in this directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.bareServer != "" {
		return serveBare(ctx, c.bareServer, stdout)
	}
	if c.runs < 1 || c.conc < 1 || c.duration < time.Second {
		return errors.New("-runs and -c must be at least 1, -duration at least 1s")
	}
	if !c.noEdge && (c.edgeRuns < 1 || c.edgeColdRuns < 0 || c.edgePool < 0 || c.edgeMaxPool < 0 || c.edgeIdle < 0) {
		return errors.New("-edge-runs must be at least 1, -edge-cold-runs, -edge-pool, -edge-max-pool and -edge-idle at least 0 (or -no-edge)")
	}
	c.rssRuns = min(c.rssRuns, c.runs)
	return measure(ctx, c, os.Args, stdout, stderr)
}

// report is everything one run measured.
type report struct {
	date     time.Time
	cmdline  string
	machine  string
	bin      string
	roam     string // the roam binary: builds the shop and its modules, runs roam edge
	roamCmd  string // how roam was built
	buildCmd string
	build    time.Duration
	binInfo  binaryInfo

	ready, line, readyIn []time.Duration
	rss                  []memory

	loads     []loadCase
	wrks      []wrkCase
	wrkCmd    string
	wrkNote   string
	cpus      string
	afterLoad memory
	profiles  []string
	shopLog   string
	logErrors int
	loadavg   [2]string           // /proc/loadavg at start and end
	fsync     [2][2]time.Duration // fdatasync p50, p99 at start and end
	startCPUs string              // affinity of the start-up runs
	dataBytes int64               // the load run's data directory at the end
	edge      *edgeReport         // nil with -no-edge
}

// The servers under load.
const (
	serverShop = "roam shop"
	serverBare = "bare net/http"
	serverEdge = "roam edge"
)

type loadCase struct {
	op, server string
	res        loadResult
}

type wrkCase struct {
	server    string
	res       wrkResult
	serverCPU time.Duration // over the whole wrk run
}

func measure(ctx context.Context, c config, argv []string, stdout, stderr io.Writer) error {
	prog := filepath.Base(argv[0])
	if strings.Contains(argv[0], "go-build") { // go run's temporary binary
		prog = "go run ./bench/cmd/roambench"
	}
	rep := &report{date: time.Now().UTC(), cmdline: strings.Join(append([]string{prog}, argv[1:]...), " "), machine: machine(ctx)}
	rep.loadavg[0] = loadavg()
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "roambench: "+format+"\n", args...) }

	tmp, err := os.MkdirTemp("", "roambench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if rep.fsync[0][0], rep.fsync[0][1], err = fsyncLatency(tmp, 100); err != nil {
		return err
	}

	// 1. The binaries: roam, built once, builds the shop (and, for the
	// edge part, its apps as wasm modules).
	repo := c.repo
	if (c.bin == "" || !c.noEdge) && repo == "" {
		if repo, err = findRepo(); err != nil {
			return err
		}
	}
	rep.roam = c.roam
	roamCmd := "-roam " + c.roam
	if rep.roam == "" && (c.bin == "" || !c.noEdge) {
		rep.roam = filepath.Join(tmp, "roam")
		roamCmd = "go build -o " + rep.roam + " ./cmd/roam"
		if c.tags != "" {
			roamCmd = "go build -o " + rep.roam + " -tags " + c.tags + " ./cmd/roam"
		}
		progress("building: %s", roamCmd)
		d, err := buildRoam(ctx, repo, rep.roam, c.tags, stderr)
		if err != nil {
			return err
		}
		roamCmd += fmt.Sprintf("; %s", d.Round(100*time.Millisecond))
	}
	rep.roamCmd = roamCmd
	rep.bin = c.bin
	if rep.bin == "" {
		rep.bin = filepath.Join(tmp, "shop")
		rep.buildCmd = "roam build -o " + rep.bin + " ./examples/shop"
		progress("building: %s", rep.buildCmd)
		if rep.build, err = buildShop(ctx, repo, rep.roam, rep.bin, stderr); err != nil {
			return err
		}
	}
	if rep.binInfo, err = inspectBinary(rep.bin); err != nil {
		return err
	}
	var modDir string
	edgeCache := filepath.Join(tmp, "edge-cache")
	if !c.noEdge {
		rep.edge = &edgeReport{roamBuild: roamCmd}
		if fi, err := os.Stat(rep.roam); err == nil {
			rep.edge.roamSize = fi.Size()
		}
		if modDir, err = prepareEdge(ctx, repo, rep.roam, c.tags, tmp, rep.edge, stderr, progress); err != nil {
			return err
		}
	}

	// 2. Start to ready, and idle RSS. The shop inherits this process's CPU
	// affinity here; -server-cpus applies to the load phase only.
	rep.startCPUs = cpusAllowed(os.Getpid())
	progress("starting the shop %d times (idle RSS on the first %d, %s after ready)", c.runs, c.rssRuns, c.rssDelay)
	for i := range c.runs {
		dir := filepath.Join(tmp, "start-"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		s, err := startShop(ctx, nil, rep.bin, filepath.Join(dir, "data"), filepath.Join(dir, "stderr.log"))
		if err != nil {
			return err
		}
		rep.ready = append(rep.ready, s.ExecToReady)
		rep.line = append(rep.line, s.ExecToLine)
		rep.readyIn = append(rep.readyIn, s.ReadyIn)
		if i < c.rssRuns {
			time.Sleep(c.rssDelay)
			m, err := readMemory(s.Pid())
			if err != nil {
				s.Stop()
				return err
			}
			rep.rss = append(rep.rss, m)
		}
		if err := s.Stop(); err != nil {
			return fmt.Errorf("stopping the shop: %w (log: %s)", err, tail(s.logs))
		}
	}

	// 3. Edge start-up and idle memory.
	if rep.edge != nil {
		if err := measureEdgeStarts(ctx, c, rep, tmp, modDir, edgeCache, progress); err != nil {
			return err
		}
	}

	// 4. Load.
	if err := measureLoad(ctx, c, rep, tmp, modDir, edgeCache, progress); err != nil {
		return err
	}
	rep.loadavg[1] = loadavg()
	if rep.fsync[1][0], rep.fsync[1][1], err = fsyncLatency(tmp, 100); err != nil {
		return err
	}
	rep.print(stdout, c)
	return nil
}

// dirSize returns the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// loadavg returns the 1, 5 and 15 minute load averages: other work on the
// machine skews every figure here.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// shopState is what setupShop prepared on a server: stock and one order.
type shopState struct {
	orderID                        string
	getBody, getReply, createReply []byte
}

// setupShop restocks one SKU per load-generator worker, so that Creates do
// not contend on one stock level, and one shared "hot" SKU, then creates the
// order that Get reads and checks that reading it is stable.
func setupShop(ctx context.Context, base string, conc int) (shopState, error) {
	var st shopState
	setup := &http.Client{Timeout: 30 * time.Second}
	defer setup.CloseIdleConnections()
	skus := []string{"hot"}
	for w := range conc {
		skus = append(skus, "sku-"+strconv.Itoa(w))
	}
	for _, sku := range skus {
		body := fmt.Appendf(nil, `{"sku":%q,"quantity":1000000}`, sku)
		if _, err := postOK(ctx, setup, base+"/v1/apps/inventory/methods/Restock", body); err != nil {
			return st, fmt.Errorf("restock %s: %w", sku, err)
		}
	}
	var err error
	st.createReply, err = postOK(ctx, setup, base+createPath, []byte(`{"customer":"bench","sku":"sku-0","quantity":1}`))
	if err != nil {
		return st, fmt.Errorf("create the order to Get: %w", err)
	}
	if st.orderID, err = orderIDOf(st.createReply); err != nil {
		return st, err
	}
	st.getBody = []byte(`{"id":"` + st.orderID + `"}`)
	if st.getReply, err = postOK(ctx, setup, base+getPath, st.getBody); err != nil {
		return st, fmt.Errorf("get order %s: %w", st.orderID, err)
	}
	if again, err := postOK(ctx, setup, base+getPath, st.getBody); err != nil || !bytes.Equal(again, st.getReply) {
		return st, fmt.Errorf("orders.Get of %s is not stable (%v): %s then %s", st.orderID, err, st.getReply, again)
	}
	return st, nil
}

func measureLoad(ctx context.Context, c config, rep *report, tmp, modDir, edgeCache string, progress func(string, ...any)) error {
	var extra []string
	if c.pprofDir != "" {
		if err := os.MkdirAll(c.pprofDir, 0o755); err != nil {
			return err
		}
		extra = append(extra, "--pprof")
	}
	var prefix []string
	if c.serverCPUs != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return fmt.Errorf("-server-cpus: %w", err)
		}
		prefix = []string{ts, "-c", c.serverCPUs}
	}
	rep.shopLog = filepath.Join(tmp, "load-stderr.log")
	s, err := startShop(ctx, prefix, rep.bin, filepath.Join(tmp, "load-data"), rep.shopLog, extra...)
	if err != nil {
		return err
	}
	defer s.Stop()
	progress("shop under load at %s (pid %d)", s.URL, s.Pid())
	shopSt, err := setupShop(ctx, s.URL, c.conc)
	if err != nil {
		return err
	}

	bareDir := filepath.Join(tmp, "bare")
	if err := os.Mkdir(bareDir, 0o755); err != nil {
		return err
	}
	b, err := startBare(prefix, bareDir, shopSt.getReply, shopSt.createReply)
	if err != nil {
		return err
	}
	defer b.Stop()
	rep.cpus = fmt.Sprintf("load generator on CPUs %s, shop on %s, bare server on %s",
		cpusAllowed(os.Getpid()), cpusAllowed(s.Pid()), cpusAllowed(b.Pid()))

	// The edge host: the same apps as wasm modules, its own data directory,
	// the compilation cache the start-up runs filled, the default pool.
	var e *shop
	var edgeState shopState
	edgeLog := filepath.Join(tmp, "edge-load-stderr.log")
	if rep.edge != nil {
		eextra := slices.Clone(extra)
		if c.edgeMaxPool > 0 {
			eextra = append(eextra, "--max-pool-size", strconv.Itoa(c.edgeMaxPool))
		}
		argv := edgeHostArgs(prefix, rep.roam, modDir, filepath.Join(tmp, "edge-load-data"), edgeCache, c.edgePool, eextra...)
		if e, _, err = startEdge(ctx, argv, edgeLog, len(edgeApps)); err != nil {
			return err
		}
		defer e.Stop()
		progress("roam edge under load at %s (pid %d)", e.URL, e.Pid())
		rep.edge.loadPool, rep.edge.loadMaxPool = c.edgePool, c.edgeMaxPool
		if edgeState, err = setupShop(ctx, e.URL, c.conc); err != nil {
			return fmt.Errorf("roam edge: %w", err)
		}
		rep.cpus += ", roam edge on " + cpusAllowed(e.Pid())
	}

	// Every Create has a customer of its own (tag, worker, sequence): the
	// customer index is rewritten on each Create, so reusing customers
	// would make the cost grow with the run.
	createFn := func(tag string, sku func(w int) string) func(w, n int) []byte {
		return func(w, n int) []byte {
			return fmt.Appendf(nil, `{"customer":"%s%d-%d","sku":%q,"quantity":1}`, tag, w, n, sku(w))
		}
	}
	perWorker := createFn("w", func(w int) string { return "sku-" + strconv.Itoa(w) })
	hot := createFn("h", func(int) string { return "hot" })

	type target struct {
		name    string
		url     string
		pid     int
		orderID string
	}
	type loadCaseSpec struct {
		op      string
		t       target
		path    string
		body    func(w, n int) []byte
		profile string
	}
	getOf := func(st shopState) func(w, n int) []byte { return func(w, n int) []byte { return st.getBody } }
	shopT := target{serverShop, s.URL, s.Pid(), shopSt.orderID}
	bareT := target{serverBare, b.URL, b.Pid(), shopSt.orderID}
	var cases []loadCaseSpec
	cases = append(cases,
		loadCaseSpec{"orders.Get", shopT, getPath, getOf(shopSt), "get"},
		loadCaseSpec{"orders.Get", bareT, getPath, getOf(shopSt), ""})
	var edgeT target
	if e != nil {
		edgeT = target{serverEdge, e.URL, e.Pid(), edgeState.orderID}
		cases = append(cases, loadCaseSpec{"orders.Get", edgeT, getPath, getOf(edgeState), "edge-get"})
	}
	cases = append(cases,
		loadCaseSpec{"orders.Create (SKU per worker)", shopT, createPath, perWorker, "create"},
		loadCaseSpec{"orders.Create", bareT, createPath, perWorker, ""})
	if e != nil {
		cases = append(cases, loadCaseSpec{"orders.Create (SKU per worker)", edgeT, createPath, perWorker, "edge-create"})
	}
	if !c.noHot {
		cases = append(cases, loadCaseSpec{"orders.Create (one hot SKU)", shopT, createPath, hot, ""})
	}
	for _, lc := range cases {
		progress("load: %s on %s, %d connections, %s + %s", lc.op, lc.t.name, c.conc, c.warmup, c.duration)
		pid := lc.t.pid
		var prof sync.WaitGroup
		var profErr error
		if c.pprofDir != "" && lc.profile != "" {
			out := filepath.Join(c.pprofDir, lc.profile+".pprof")
			rep.profiles = append(rep.profiles, out)
			prof.Go(func() {
				time.Sleep(c.warmup)
				profErr = fetchProfile(ctx, lc.t.url, int(c.duration.Seconds()), out)
			})
		}
		res, err := runLoad(ctx, loadSpec{
			URL: lc.t.url + lc.path, Concurrency: c.conc, Warmup: c.warmup, Duration: c.duration,
			Body: lc.body, CPU: func() (time.Duration, error) { return cpuTime(pid) },
		})
		prof.Wait()
		if err != nil {
			return err
		}
		if profErr != nil {
			return fmt.Errorf("CPU profile: %w", profErr)
		}
		rep.loads = append(rep.loads, loadCase{lc.op, lc.t.name, res})
	}

	if c.noWrk {
		rep.wrkNote = "skipped (-no-wrk)"
	} else if wrk, err := exec.LookPath("wrk"); err != nil {
		rep.wrkNote = "wrk is not installed (apt-get install -y wrk)"
	} else {
		script := filepath.Join(tmp, "orders_get.lua")
		if err := os.WriteFile(script, wrkGetScript, 0o644); err != nil {
			return err
		}
		targets := []target{shopT, bareT}
		if e != nil {
			targets = append(targets, edgeT)
		}
		for _, t := range targets {
			progress("wrk: orders.Get on %s", t.name)
			cpu0, err0 := cpuTime(t.pid)
			r, line, err := runWrk(ctx, wrk, script, t.url+getPath, t.orderID, 2, c.conc, c.duration)
			if err != nil {
				return err
			}
			cpu1, err1 := cpuTime(t.pid)
			var cpu time.Duration
			if err0 == nil && err1 == nil {
				cpu = cpu1 - cpu0
			}
			rep.wrkCmd = strings.Replace(line, script, "bench/cmd/roambench/orders_get.lua", 1)
			rep.wrks = append(rep.wrks, wrkCase{t.name, r, cpu})
		}
	}

	if rep.afterLoad, err = readMemory(s.Pid()); err != nil {
		return err
	}
	rep.dataBytes = dirSize(filepath.Join(tmp, "load-data"))
	if logs, err := os.ReadFile(rep.shopLog); err == nil {
		rep.logErrors = bytes.Count(logs, []byte("level=ERROR"))
	}
	if e != nil {
		if rep.edge.afterLoad, err = readMemory(e.Pid()); err != nil {
			return err
		}
		rep.edge.stats = edgeMetrics(ctx, e.URL)
		if c.edgeIdle > 0 {
			progress("roam edge: idle for %s", c.edgeIdle)
			time.Sleep(c.edgeIdle)
			rep.edge.idleFor = c.edgeIdle
			if rep.edge.afterIdle, err = readMemory(e.Pid()); err != nil {
				return err
			}
			rep.edge.idleStats = edgeMetrics(ctx, e.URL)
		}
		if logs, err := os.ReadFile(edgeLog); err == nil {
			rep.edge.logErrors = bytes.Count(logs, []byte("level=ERROR"))
		}
	}
	return nil
}

func postOK(ctx context.Context, c *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, out)
	}
	return out, nil
}

// orderIDOf reads order.id from an OrderReply without a JSON library, to
// keep this command free of assumptions about field order: it looks for
// "id":"...".
func orderIDOf(reply []byte) (string, error) {
	_, rest, ok := bytes.Cut(reply, []byte(`"id":"`))
	if !ok {
		return "", fmt.Errorf("no order id in %s", reply)
	}
	id, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok || len(id) == 0 {
		return "", fmt.Errorf("no order id in %s", reply)
	}
	return string(id), nil
}

func fetchProfile(ctx context.Context, base string, seconds int, out string) error {
	c := &http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/profile?seconds="+strconv.Itoa(seconds), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/debug/pprof/profile: HTTP %d", base, resp.StatusCode)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// findRepo walks up from the working directory to the roam module's root.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/roam-dev/roam\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the roam repository: run from it or pass -repo")
		}
		dir = parent
	}
}

// machine describes the host: CPUs online, CPU model, kernel and Go
// version. The CPU count is the machine's, not this process's affinity.
func machine(ctx context.Context) string {
	model, cpus := "unknown CPU", 0
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				cpus++
			case k == "model name" && model == "unknown CPU":
				model = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	gover := runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		gover = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", cpus, model, strings.TrimSpace(string(kernel)), gover)
}
