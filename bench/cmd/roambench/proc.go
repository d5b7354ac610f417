package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildRoam builds the roam command once (`go build -o OUT ./cmd/roam`);
// roambench then builds the shop and its wasm modules with it, as a user
// would with an installed roam.
func buildRoam(ctx context.Context, repo, out, tags string, stderr io.Writer) (time.Duration, error) {
	start := time.Now()
	args := []string{"build", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/roam")...)
	cmd.Dir = repo
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("build roam: %w", err)
	}
	return time.Since(start), nil
}

// buildRoamEdge builds cmd/roam-edge, the edge host alone, as roam dist
// builds it for the roam-edge image: static, stripped.
func buildRoamEdge(ctx context.Context, repo, out, tags string, stderr io.Writer) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/roam-edge")...)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build roam-edge: %w", err)
	}
	return nil
}

// buildShop builds the shop exactly as a user would for release
// (`roam build -o OUT ./examples/shop`, run from the repository) and returns
// how long the build took.
func buildShop(ctx context.Context, repo, roam, out string, stderr io.Writer) (time.Duration, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, roam, "build", "-o", out, "./examples/shop")
	cmd.Dir = repo
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("build the shop: %w", err)
	}
	return time.Since(start), nil
}

// binaryInfo describes an executable: its size and whether it is static (no
// interpreter, no dynamic section) and stripped (no symbol table).
type binaryInfo struct {
	Size             int64
	Static, Stripped bool
}

func inspectBinary(path string) (binaryInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return binaryInfo{}, err
	}
	bi := binaryInfo{Size: st.Size()}
	f, err := elf.Open(path)
	if err != nil {
		return bi, err
	}
	defer f.Close()
	bi.Static = true
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			bi.Static = false
		}
	}
	bi.Stripped = f.Section(".symtab") == nil
	return bi, nil
}

// shop is a running server process: the shop binary, or roam edge.
type shop struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{} // closed once stdout is drained
	logs string        // its stderr, a file

	// ExecToReady runs from just before exec to the first 200 from the
	// readiness probe (/readyz for the shop).
	ExecToReady time.Duration
	// ExecToLine runs from just before exec to the "ready" line on stdout.
	ExecToLine time.Duration
	// ReadyIn is the process's own "ready in X", measured from the start
	// of native.Run (after runtime and package initialisation).
	ReadyIn time.Duration
	// Lines are the stdout lines up to the ready line, with the time since
	// exec at which each was read.
	Lines []stampedLine
}

type stampedLine struct {
	Text string
	At   time.Duration // since exec
}

// startShop starts bin with --port 0 and a data directory, and returns once
// /readyz has answered 200. A non-empty prefix runs the binary through a
// command that execs it (taskset -c 1), keeping its process id.
func startShop(ctx context.Context, prefix []string, bin, dataDir, logFile string, extra ...string) (*shop, error) {
	argv := append(append(append([]string(nil), prefix...), bin, "--port", "0", "--data-dir", dataDir), extra...)
	return startProcess(ctx, argv, logFile, 15*time.Second, probeReadyz)
}

// hostEnv is the servers' environment: this process's, without the
// variables that make a Roam host pick the Dapr backend (backend "auto"), so
// that every figure is on the embedded backend.
func hostEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DAPR_GRPC_PORT=") && !strings.HasPrefix(kv, "DAPR_HTTP_PORT=") {
			env = append(env, kv)
		}
	}
	return env
}

// probeReadyz is startShop's readiness probe: GET /readyz.
func probeReadyz(c *http.Client, base string) bool {
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startProcess runs argv, waits for the host's "ready on" line (which gives
// the port) and then polls probe on fresh connections every 100 µs until it
// succeeds; ExecToReady is the time of that success. It gives up after
// timeout.
func startProcess(ctx context.Context, argv []string, logFile string, timeout time.Duration, probe func(c *http.Client, base string) bool) (*shop, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = hostEnv()
	logs, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer logs.Close() // the child holds its own descriptor
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &shop{cmd: cmd, done: make(chan struct{}), logs: logFile}
	type readyLine struct {
		url   string
		in    time.Duration
		at    time.Duration
		lines []stampedLine
	}
	lines := make(chan readyLine, 1)
	bin := filepath.Base(argv[0])

	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		sent := false
		var seen []stampedLine
		for sc.Scan() {
			if sent {
				continue
			}
			at := time.Since(t0)
			seen = append(seen, stampedLine{sc.Text(), at})
			if url, in, ok := parseReadyLine(sc.Text()); ok {
				lines <- readyLine{url, in, at, seen}
				sent = true
			}
		}
		io.Copy(io.Discard, stdout)
	}()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var rl readyLine
	select {
	case rl = <-lines:
	case <-s.done:
		s.Stop()
		return nil, fmt.Errorf("%s exited before it was ready; its log: %s", bin, tail(logFile))
	case <-timer.C:
		s.Stop()
		return nil, fmt.Errorf("%s printed no ready line within %s; its log: %s", bin, timeout, tail(logFile))
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
	s.URL, s.ReadyIn, s.ExecToLine, s.Lines = rl.url, rl.in, rl.at, rl.lines

	// The first success of the probe, each try on a fresh connection.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	for {
		if probe(c, s.URL) {
			s.ExecToReady = time.Since(t0)
			return s, nil
		}
		if time.Since(t0) > timeout || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("%s: readiness probe not answered within %s", bin, timeout)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// parseReadyLine reads native.Run's
// "roam: ready on http://127.0.0.1:PORT in 1.234ms (metrics ...)".
func parseReadyLine(line string) (url string, in time.Duration, ok bool) {
	rest, found := strings.CutPrefix(line, "roam: ready on ")
	if !found {
		return "", 0, false
	}
	f := strings.Fields(rest)
	if len(f) < 3 || f[1] != "in" {
		return "", 0, false
	}
	d, err := time.ParseDuration(f[2])
	if err != nil {
		return "", 0, false
	}
	return f[0], d, true
}

// Pid returns the shop's process id.
func (s *shop) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGINT, waits for a graceful exit and kills the process if it
// takes more than 10 seconds. Not SIGTERM: after one the host goes on
// serving for a drain of up to 5 seconds (for balancers), which a
// benchmark's hundreds of starts and stops would wait out each time.
func (s *shop) Stop() error {
	s.cmd.Process.Signal(os.Interrupt)
	waited := make(chan error, 1)
	go func() { <-s.done; waited <- s.cmd.Wait() }()
	select {
	case err := <-waited:
		return err
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		return errors.Join(errors.New("did not stop within 10s of SIGINT; killed"), <-waited)
	}
}

// memory is what /proc/PID/status says of a process's memory, in bytes.
type memory struct {
	RSS, HWM, Anon, File int64
}

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		*dst = kb << 10
	}
	if m.RSS == 0 {
		return m, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return m, nil
}

// clockTick is USER_HZ, which Linux fixes at 100 for user space.
const clockTick = 10 * time.Millisecond

// cpuTime returns the user+system CPU time a process has used, from
// /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(u+s) * clockTick, nil
}

// machineBusy returns the CPU time the machine's CPUs have spent not idle
// (user, nice, system, irq, softirq, steal; not idle or iowait), summed
// over CPUs, from the first line of /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineBusy(string(b))
}

func parseMachineBusy(stat string) (time.Duration, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * clockTick, nil
}

// cpusAllowed returns the Cpus_allowed_list of a process ("0-1").
func cpusAllowed(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(empty)"
	}
	return "\n" + string(b)
}

// fsyncLatency writes 4 KiB and fdatasyncs it n times in dir, as a commit
// does, and returns the median and 99th percentile: every durable write of
// the embedded backend waits for this, and on a shared disk it varies a lot.
func fsyncLatency(dir string, n int) (p50, p99 time.Duration, err error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	d := make([]time.Duration, 0, n)
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return 0, 0, err
		}
		t := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		d = append(d, time.Since(t))
	}
	return percentile(d, 50), percentile(d, 99), nil
}
