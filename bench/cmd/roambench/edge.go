package main

// The edge part of roambench: the shop's two apps built as wasip1 modules
// (roam build --target wasm) and served by `roam edge`, measured in the
// same run as the native shop binary:
//
//   - start-up: exec → the first 200 from a module (orders.ListByCustomer
//     of a customer with no orders, a real call that reads state), with the
//     compilation cache warm and with a fresh cache directory, at the
//     default pool size and at --pool-size 1, with the host's own per-module
//     load times from its stdout;
//   - idle RSS at --pool-size 1 and 8, hence the resident cost of one pooled
//     instance;
//   - orders.Get and orders.Create under the same load generator and
//     settings as the native shop (see measureLoad), for the edge/native
//     ratio.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets of the edge issue.
const (
	targetEdgeRatio = 0.50                    // edge req/s ≥ 50% of native
	targetEdgeWarm  = 25 * time.Millisecond   // exec → first 200, cache warm
	targetEdgeCold  = 2500 * time.Millisecond // exec → first 200, fresh cache
	// edgeInstanceAssumed is what the host assumes a warm instance costs
	// (host/edge: instanceRSS) and edgeInstanceBudget the memory its default
	// pool size is derived from (DefaultInstanceBudget).
	edgeInstanceAssumed = 5 << 20
	edgeInstanceBudget  = 64 << 20
)

const (
	listPath = "/v1/apps/orders/methods/ListByCustomer"
	// listBody names a customer with no orders: the reply is 200 with an
	// empty list, after a state read in the orders module.
	listBody = `{"customer":"roambench-nobody"}`
)

// edgeApps are the shop's apps, each built as a module of its own.
var edgeApps = []string{"orders", "inventory"}

// buildModules builds each app of the shop into dir/APP.wasm with
// `roam build --target wasm`, from the repository.
func buildModules(ctx context.Context, repo, roam, dir string, stderr io.Writer) (time.Duration, []string, error) {
	start := time.Now()
	var cmds []string
	for _, app := range edgeApps {
		out := filepath.Join(dir, app+".wasm")
		args := []string{"build", "--target", "wasm", "-o", out, "./examples/shop/" + app}
		cmd := exec.CommandContext(ctx, roam, args...)
		cmd.Dir = repo
		cmd.Stdout = stderr
		cmd.Stderr = stderr
		if err := cmd.Run(); err != nil {
			return 0, nil, fmt.Errorf("build the %s module: %w", app, err)
		}
		cmds = append(cmds, "roam "+strings.Join(args, " "))
	}
	return time.Since(start), cmds, nil
}

// moduleLoad is one "roam: module ..." line of roam edge.
type moduleLoad struct {
	File, App string
	Instances int
	LoadedIn  time.Duration
}

// parseModuleLine reads edge.LoadFiles's
// "roam: module orders.wasm: app orders, 8 instances (up to 32), 4.2 MB, loaded in 176ms"
// (a fixed pool has no "up to").
func parseModuleLine(line string) (moduleLoad, bool) {
	rest, ok := strings.CutPrefix(line, "roam: module ")
	if !ok {
		return moduleLoad{}, false
	}
	file, rest, ok := strings.Cut(rest, ": app ")
	if !ok {
		return moduleLoad{}, false
	}
	f := strings.Split(rest, ", ")
	if len(f) < 4 {
		return moduleLoad{}, false
	}
	num, _, _ := strings.Cut(f[1], " instances")
	n, err := strconv.Atoi(num)
	if err != nil {
		return moduleLoad{}, false
	}
	in, ok := strings.CutPrefix(f[len(f)-1], "loaded in ")
	if !ok {
		return moduleLoad{}, false
	}
	d, err := time.ParseDuration(in)
	if err != nil {
		return moduleLoad{}, false
	}
	return moduleLoad{File: file, App: f[0], Instances: n, LoadedIn: d}, true
}

// edgeStart is one start of roam edge, to the first 200 from a module.
type edgeStart struct {
	ToOK      time.Duration // exec → first 200 from orders.ListByCustomer
	ToLine    time.Duration // exec → "ready on" line
	ReadyIn   time.Duration // the process's own "ready in"
	ToRuntime time.Duration // exec → "edge runtime" line (process start, runtime and cache opened)
	Runtime   string        // the WebAssembly runtime and its version, from that line
	Modules   []moduleLoad
	Mem       memory // idle RSS; zero when not read
	CodeRSS   int64  // resident anonymous executable mappings: the compiled modules
}

// loadedIn returns the module's "loaded in" for app.
func (s edgeStart) loadedIn(app string) time.Duration {
	for _, m := range s.Modules {
		if m.App == app {
			return m.LoadedIn
		}
	}
	return 0
}

// instances returns the pool size the host reported for its modules.
func (s edgeStart) instances() int {
	if len(s.Modules) == 0 {
		return 0
	}
	return s.Modules[0].Instances
}

// edgeSet is a series of starts under one setting.
type edgeSet struct {
	Cold   bool
	Pool   int  // 0: the host's default
	Alone  bool // roam-edge (the edge host alone, as in its image) instead of roam edge
	Orders bool // orders.wasm alone instead of the shop's modules
	Starts []edgeStart
}

func (s *edgeSet) label() string {
	cache := "cache warm"
	if s.Cold {
		cache = "fresh cache dir"
	}
	pool := "default pool"
	if s.Pool > 0 {
		pool = "--pool-size " + strconv.Itoa(s.Pool)
	}
	l := cache + ", " + pool
	if s.Alone {
		l = "roam-edge, " + l
	}
	if s.Orders {
		l += ", orders alone"
	}
	return l
}

func (s *edgeSet) median(f func(edgeStart) time.Duration) time.Duration {
	var d []time.Duration
	for _, st := range s.Starts {
		d = append(d, f(st))
	}
	return median(d)
}

func (s *edgeSet) rss() (rss, anon, file, code []int64) {
	for _, st := range s.Starts {
		if st.Mem.RSS > 0 {
			rss, anon, file = append(rss, st.Mem.RSS), append(anon, st.Mem.Anon), append(file, st.Mem.File)
			code = append(code, st.CodeRSS)
		}
	}
	return
}

// anonExecRSS sums the resident size of a process's anonymous executable
// mappings (/proc/PID/smaps): in roam edge, the compiled wasm code, which
// wazero maps once per module and shares between instances. 0 when
// unknown.
func anonExecRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps"))
	if err != nil {
		return 0
	}
	return parseAnonExecRSS(string(b))
}

func parseAnonExecRSS(smaps string) int64 {
	var total int64
	counting := false
	for line := range strings.SplitSeq(smaps, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && len(f[1]) == 4 {
			// A mapping's header: range perms offset dev inode [path].
			counting = f[1][2] == 'x' && len(f) == 5
			continue
		}
		if counting && len(f) == 3 && f[0] == "Rss:" && f[2] == "kB" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				total += kb << 10
			}
		}
	}
	return total
}

// edgeReport is everything the edge part measured.
type edgeReport struct {
	roamBuild  string // the command and its duration
	roamSize   int64
	modCmds    []string
	modBuild   time.Duration
	modSizes   []int64
	hostCmd    string
	defPool    int // pool size the host chose by default
	warm       *edgeSet
	warm1      *edgeSet
	warm8      *edgeSet // only when the default pool size is not 8
	alone1     *edgeSet // roam-edge, --pool-size 1
	orders1    *edgeSet // roam-edge, orders alone, --pool-size 1
	edgeBin    string   // the roam-edge binary
	edgeBuild  string   // how it was built
	edgeSize   int64
	cold       *edgeSet
	cold1      *edgeSet
	nativeList []time.Duration // the native shop: exec → first 200 from the same call

	// From the load phase.
	loadPool    int // -edge-pool (0: the default)
	loadMaxPool int // -edge-max-pool (0: the default)
	afterLoad   memory
	logErrors   int
	stats       string // the host's edge metrics after the load
	// After -edge-idle without calls (zero: not measured).
	idleFor   time.Duration
	afterIdle memory
	idleStats string
}

// edgeHostArgs returns roam edge's command line; a host named roam-edge
// (the edge host alone) takes no subcommand.
func edgeHostArgs(prefix []string, roam, modDir, dataDir, cacheDir string, pool int, extra ...string) []string {
	argv := append(append([]string(nil), prefix...), roam)
	if filepath.Base(roam) != "roam-edge" {
		argv = append(argv, "edge")
	}
	argv = append(argv, modDir, "--port", "0", "--data-dir", dataDir, "--cache-dir", cacheDir)
	if pool > 0 {
		argv = append(argv, "--pool-size", strconv.Itoa(pool))
	}
	return append(argv, extra...)
}

// startEdge starts roam edge and returns once orders.ListByCustomer has
// answered 200, and it has reported loading modules modules. Cold starts
// compile them: it allows two minutes.
func startEdge(ctx context.Context, argv []string, logFile string, modules int) (*shop, edgeStart, error) {
	s, err := startProcess(ctx, argv, logFile, 2*time.Minute, probeList)
	if err != nil {
		return nil, edgeStart{}, err
	}
	st := edgeStart{ToOK: s.ExecToReady, ToLine: s.ExecToLine, ReadyIn: s.ReadyIn}
	for _, l := range s.Lines {
		if rt, ok := strings.CutPrefix(l.Text, "roam: edge runtime "); ok {
			st.ToRuntime = l.At
			st.Runtime, _, _ = strings.Cut(rt, ",")
		}
		if m, ok := parseModuleLine(l.Text); ok {
			st.Modules = append(st.Modules, m)
		}
	}
	if len(st.Modules) != modules {
		s.Stop()
		return nil, st, fmt.Errorf("roam edge reported %d modules, want %d; its stdout: %q", len(st.Modules), modules, s.Lines)
	}
	return s, st, nil
}

// probeList is the edge start-up probe: a real call to a module.
func probeList(c *http.Client, base string) bool {
	resp, err := c.Post(base+listPath, "application/json", strings.NewReader(listBody))
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"orders":[]`))
}

// prepareEdge builds roam's wasm modules of the shop into tmp/modules, and
// the roam-edge binary into tmp/roam-edge.
func prepareEdge(ctx context.Context, repo, roam, tags, tmp string, er *edgeReport, stderr io.Writer, progress func(string, ...any)) (modDir string, err error) {
	modDir = filepath.Join(tmp, "modules")
	if err := os.Mkdir(modDir, 0o755); err != nil {
		return "", err
	}
	er.edgeBin = filepath.Join(tmp, "roam-edge")
	er.edgeBuild = "CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w' -o roam-edge ./cmd/roam-edge"
	if tags != "" {
		er.edgeBuild += " -tags " + tags
	}
	progress("building: %s", er.edgeBuild)
	if err := buildRoamEdge(ctx, repo, er.edgeBin, tags, stderr); err != nil {
		return "", err
	}
	if fi, err := os.Stat(er.edgeBin); err == nil {
		er.edgeSize = fi.Size()
	}
	progress("building the wasm modules: roam build --target wasm (orders, inventory)")
	if er.modBuild, er.modCmds, err = buildModules(ctx, repo, roam, modDir, stderr); err != nil {
		return "", err
	}
	for _, app := range edgeApps {
		fi, err := os.Stat(filepath.Join(modDir, app+".wasm"))
		if err != nil {
			return "", err
		}
		er.modSizes = append(er.modSizes, fi.Size())
	}
	return modDir, nil
}

// measureEdgeStarts starts roam edge repeatedly: cold (a fresh cache
// directory each time) and warm (the shared cache dir), at the default pool
// size and at 1, interleaved so that a change in the machine's load touches
// every series alike. The first cold start fills cacheDir for the rest.
func measureEdgeStarts(ctx context.Context, c config, rep *report, tmp, modDir, cacheDir string, progress func(string, ...any)) error {
	er := rep.edge
	er.cold, er.cold1 = &edgeSet{Cold: true}, &edgeSet{Cold: true, Pool: 1}
	er.warm, er.warm1 = &edgeSet{}, &edgeSet{Pool: 1}
	er.alone1, er.orders1 = &edgeSet{Pool: 1, Alone: true}, &edgeSet{Pool: 1, Alone: true, Orders: true}
	er.hostCmd = strings.Join(edgeHostArgs(nil, "roam", "DIR", "DATA", "CACHE", 0), " ")

	n := 0
	start := func(set *edgeSet, cache string, readMem bool) error {
		n++
		dir := filepath.Join(tmp, "edge-start-"+strconv.Itoa(n))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if cache == "" {
			cache = filepath.Join(dir, "cache")
		}
		host, mods, want := rep.roam, modDir, len(edgeApps)
		if set.Alone {
			host = er.edgeBin
		}
		if set.Orders {
			mods, want = filepath.Join(modDir, "orders.wasm"), 1
		}
		argv := edgeHostArgs(nil, host, mods, filepath.Join(dir, "data"), cache, set.Pool, "--watch=false")
		s, st, err := startEdge(ctx, argv, filepath.Join(dir, "stderr.log"), want)
		if err != nil {
			return err
		}
		if readMem {
			time.Sleep(c.rssDelay)
			if st.Mem, err = readMemory(s.Pid()); err != nil {
				s.Stop()
				return err
			}
			st.CodeRSS = anonExecRSS(s.Pid())
		}
		if err := s.Stop(); err != nil {
			return fmt.Errorf("stopping roam edge: %w (log: %s)", err, tail(s.logs))
		}
		set.Starts = append(set.Starts, st)
		return nil
	}

	progress("edge: %d cold starts (fresh compilation cache) at the default pool size and at --pool-size 1", c.edgeColdRuns)
	for i := range c.edgeColdRuns {
		cache := ""
		if i == 0 {
			cache = cacheDir // the first fills the shared cache
		}
		if err := start(er.cold, cache, false); err != nil {
			return err
		}
		if err := start(er.cold1, "", false); err != nil {
			return err
		}
	}
	if c.edgeColdRuns == 0 { // fill the cache, uncounted
		if err := start(&edgeSet{}, cacheDir, false); err != nil {
			return err
		}
	}
	progress("edge: %d warm starts at the default pool size and at --pool-size 1 (idle RSS on the first %d, %s after ready)", c.edgeRuns, c.rssRuns, c.rssDelay)
	for i := range c.edgeRuns {
		mem := i < c.rssRuns
		if err := start(er.warm, cacheDir, mem); err != nil {
			return err
		}
		if err := start(er.warm1, cacheDir, mem); err != nil {
			return err
		}
		if er.edgeBin != "" {
			if err := start(er.alone1, cacheDir, false); err != nil {
				return err
			}
			if err := start(er.orders1, cacheDir, false); err != nil {
				return err
			}
		}
	}
	er.defPool = er.warm.Starts[0].instances()
	if er.defPool != 8 {
		er.warm8 = &edgeSet{Pool: 8}
		progress("edge: the default pool is %d here; %d more warm starts at --pool-size 8 for idle RSS", er.defPool, c.rssRuns)
		for range c.rssRuns {
			if err := start(er.warm8, cacheDir, true); err != nil {
				return err
			}
		}
	}

	// The native shop under the same probe, for comparison.
	progress("native shop: %d starts to the first 200 from orders.ListByCustomer", c.edgeRuns)
	for i := range c.edgeRuns {
		dir := filepath.Join(tmp, "native-list-"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		argv := []string{rep.bin, "--port", "0", "--data-dir", filepath.Join(dir, "data")}
		s, err := startProcess(ctx, argv, filepath.Join(dir, "stderr.log"), 15*time.Second, probeList)
		if err != nil {
			return err
		}
		er.nativeList = append(er.nativeList, s.ExecToReady)
		if err := s.Stop(); err != nil {
			return fmt.Errorf("stopping the shop: %w (log: %s)", err, tail(s.logs))
		}
		os.RemoveAll(dir)
	}
	return nil
}

// edgeMetrics returns the host's roam_edge_* counters and gauges that tell
// whether the pool behaved under load (instantiations beyond the pre-warm,
// traps, timeouts, rejections, recycles; its size, ceiling, memory, growth
// and shrinking), from its /metrics.
func edgeMetrics(ctx context.Context, base string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return ""
	}
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		for _, name := range []string{"roam_edge_instantiations_total", "roam_edge_traps_total", "roam_edge_timeouts_total", "roam_edge_rejected_total", "roam_edge_recycled_total",
			"roam_edge_pool_size", "roam_edge_pool_max", "roam_edge_pool_memory_bytes", "roam_edge_pool_grown_total", "roam_edge_pool_shrunk_total"} {
			if strings.HasPrefix(line, name+"{") {
				out = append(out, strings.TrimPrefix(line, "roam_edge_"))
			}
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// printEdge writes the edge section of the report.
func (r *report) printEdge(p func(string, ...any), c config) {
	er := r.edge
	p("")
	rt := "wazero"
	if er.warm != nil && len(er.warm.Starts) > 0 && er.warm.Starts[0].Runtime != "" {
		rt = er.warm.Starts[0].Runtime
	}
	p("### Edge host: the same shop as wasm modules on `roam edge` (%s)", rt)
	p("")
	p("- roam: `%s` (%s)", er.roamBuild, bytesText(er.roamSize))
	if er.edgeBuild != "" {
		p("- roam-edge, the edge host alone (the roam-edge image's binary, built as roam dist builds it): `%s` (%s)", er.edgeBuild, bytesText(er.edgeSize))
	}
	for i, cmd := range er.modCmds {
		p("- module: `%s` (%s)", cmd, bytesText(er.modSizes[i]))
	}
	p("- host: `%s` (start-up runs add `--watch=false`; `--pool-size N` where noted), embedded backend like the shop; default pool here: %d instances per module", er.hostCmd, er.defPool)
	p("- start-up: exec → first 200 from `POST %s %s` on a fresh connection (polled every 100 µs after the \"ready on\" line gives the port), fresh data dir each start", listPath, listBody)
	p("")
	p("| Figure | Measured | Target | Met |")
	p("| --- | --- | --- | --- |")
	ratioRow := func(op string) {
		nat, edge, ok := r.edgePair(op)
		if !ok {
			return
		}
		ratio := edge.RPS() / nat.RPS()
		p("| %s req/s, edge / native (Go load generator) | %.0f%% (%.0f / %.0f) | ≥ 50%% | %s |",
			op, 100*ratio, edge.RPS(), nat.RPS(), met(ratio >= targetEdgeRatio))
		if nc, ec := nat.CPUPerRequest(), edge.CPUPerRequest(); nc > 0 && ec > 0 {
			p("| … server CPU per request, native / edge | %.0f%% (%s / %s) | | |", 100*float64(nc)/float64(ec), us(nc), us(ec))
		}
		p("| … p50 / p99, native → edge | %s / %s → %s / %s | | |", ms(nat.P50), ms(nat.P99), ms(edge.P50), ms(edge.P99))
	}
	ratioRow("orders.Get")
	ratioRow("orders.Create (SKU per worker)")
	if w, ok := r.wrkRPS("roam edge"); ok {
		if n, ok := r.wrkRPS("roam shop"); ok {
			p("| orders.Get req/s, edge / native (wrk) | %.0f%% (%.0f / %.0f) | ≥ 50%% | %s |", 100*w/n, w, n, met(w/n >= targetEdgeRatio))
		}
	}

	startRows := func(s *edgeSet, target time.Duration, targetText string) {
		if s == nil || len(s.Starts) == 0 {
			return
		}
		d := s.median(func(st edgeStart) time.Duration { return st.ToOK })
		var all []time.Duration
		for _, st := range s.Starts {
			all = append(all, st.ToOK)
		}
		metText := ""
		if target > 0 {
			metText = met(d <= target)
		}
		p("| Start, %s (instances per module: %d): exec → first 200 from a module, median of %d (min–max) | %s (%s–%s) | %s | %s |",
			s.label(), s.Starts[0].instances(), len(s.Starts), ms(d), ms(slices.Min(all)), ms(slices.Max(all)), targetText, metText)
		p("| … exec → \"edge runtime\" line (process start, runtime, cache dir) / loads: orders, inventory / \"ready\" line; \"ready in\" | %s / %s, %s / %s; %s | | |",
			ms(s.median(func(st edgeStart) time.Duration { return st.ToRuntime })),
			ms(s.median(func(st edgeStart) time.Duration { return st.loadedIn("orders") })),
			ms(s.median(func(st edgeStart) time.Duration { return st.loadedIn("inventory") })),
			ms(s.median(func(st edgeStart) time.Duration { return st.ToLine })),
			ms(s.median(func(st edgeStart) time.Duration { return st.ReadyIn })))
	}
	startRows(er.warm, targetEdgeWarm, "≤ 25 ms")
	startRows(er.warm1, targetEdgeWarm, "≤ 25 ms")
	startRows(er.alone1, targetEdgeWarm, "≤ 25 ms")
	startRows(er.orders1, targetEdgeWarm, "≤ 25 ms")
	startRows(er.cold, targetEdgeCold, "≤ 2.5 s")
	startRows(er.cold1, targetEdgeCold, "≤ 2.5 s")
	if len(er.nativeList) > 0 {
		p("| Native shop, same probe: exec → first 200 from orders.ListByCustomer, median of %d | %s | | |", len(er.nativeList), ms(median(er.nativeList)))
	}
	// What a start is made of: the modules load one after the other, each
	// compiled (or read from the cache), then its pool instantiated.
	loads := func(set *edgeSet) map[string]time.Duration {
		out := map[string]time.Duration{}
		if set == nil || len(set.Starts) == 0 {
			return nil
		}
		for _, app := range edgeApps {
			out[app] = set.median(func(st edgeStart) time.Duration { return st.loadedIn(app) })
		}
		return out
	}
	perApp := func(f func(app string) time.Duration) string {
		var parts []string
		for _, app := range edgeApps {
			parts = append(parts, app+" "+ms(f(app)))
		}
		return strings.Join(parts, ", ")
	}
	lw, lw1, lc1 := loads(er.warm), loads(er.warm1), loads(er.cold1)
	if lw1 != nil {
		p("| … warm: cache load + first instance(s) (module load at --pool-size 1), median | %s | | |", perApp(func(a string) time.Duration { return lw1[a] }))
	}
	if lw != nil && lw1 != nil && er.defPool > 1 {
		p("| … warm: each further instance of the default pool ((load at %d − load at 1) / %d, wall; the host instantiates them in parallel) | %s | | |",
			er.defPool, er.defPool-1, perApp(func(a string) time.Duration { return (lw[a] - lw1[a]) / time.Duration(er.defPool-1) }))
	}
	if lc1 != nil && lw1 != nil {
		p("| … cold: compilation (load with a fresh cache − load from the cache, at --pool-size 1) | %s | | |", perApp(func(a string) time.Duration { return lc1[a] - lw1[a] }))
	}

	// Memory per pooled instance.
	s8 := er.warm8
	if s8 == nil && er.defPool == 8 {
		s8 = er.warm
	}
	if s8 != nil && er.warm1 != nil {
		r1, a1, f1, c1 := er.warm1.rss()
		r8, a8, f8, c8 := s8.rss()
		if len(r1) > 0 && len(r8) > 0 {
			p("| Idle RSS (VmRSS %s after ready), --pool-size 1, median of %d | %s (anon %s, of which compiled code %s; file %s) | | |",
				c.rssDelay, len(r1), bytesText(median(r1)), mibText(median(a1)), mibText(median(c1)), mibText(median(f1)))
			p("| Idle RSS, --pool-size 8, median of %d | %s (anon %s, of which compiled code %s; file %s) | | |",
				len(r8), bytesText(median(r8)), mibText(median(a8)), mibText(median(c8)), mibText(median(f8)))
			per := (median(r8) - median(r1)) / int64(7*len(edgeApps))
			perAnon := (median(a8) - median(a1)) / int64(7*len(edgeApps))
			p("| Memory per pooled instance: (RSS at 8 − RSS at 1) / (7 × %d modules) | %s (anon %s) | (the host assumes %s) | |",
				len(edgeApps), mibText(per), mibText(perAnon), mibText(edgeInstanceAssumed))
			if per > 0 {
				p("| Instances of that size in the host's 64 MiB budget; DefaultPoolSize here | %d; %d (4 per CPU, 4–12) | | |", edgeInstanceBudget/per, er.defPool)
			}
		}
	}
	p("")
	pool := fmt.Sprintf("the default pool (%d)", er.defPool)
	if er.loadPool > 0 {
		pool = fmt.Sprintf("--pool-size %d (-edge-pool)", er.loadPool)
	}
	if er.loadMaxPool > 0 {
		pool += fmt.Sprintf(", --max-pool-size %d (-edge-max-pool)", er.loadMaxPool)
	} else {
		pool += ", the default --max-pool-size"
	}
	p("roam edge under load ran with %s, the compilation cache warm.", pool)
	p("roam edge after load: VmRSS %s, VmHWM %s; %d ERROR lines in its log; %s.",
		mibText(er.afterLoad.RSS), mibText(er.afterLoad.HWM), er.logErrors, er.stats)
	if er.idleFor > 0 {
		p("roam edge after %s idle: VmRSS %s; %s.", er.idleFor, mibText(er.afterIdle.RSS), er.idleStats)
	}
}

// edgePair returns the native shop's and the edge host's results for op.
func (r *report) edgePair(op string) (nat, edge loadResult, ok bool) {
	var n int
	for _, l := range r.loads {
		if l.op != op {
			continue
		}
		switch l.server {
		case serverShop:
			nat, n = l.res, n+1
		case serverEdge:
			edge, n = l.res, n+1
		}
	}
	return nat, edge, n == 2 && nat.RPS() > 0
}

// wrkRPS returns wrk's req/s against server.
func (r *report) wrkRPS(server string) (float64, bool) {
	for _, w := range r.wrks {
		if w.server == server && w.res.RPS > 0 {
			return w.res.RPS, true
		}
	}
	return 0, false
}
