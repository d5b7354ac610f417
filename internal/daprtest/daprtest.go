// Package daprtest runs real Dapr infrastructure for tests: Debian's
// redis-server on a free loopback port, and daprd sidecars (built from
// tools/daprd) on free ports, with components, a resiliency policy and
// SQLite name resolution written to a temporary resources directory.
//
// Nothing here is a mock. When daprd or redis-server is missing, the
// harness fails the test loudly, with what to install: it never skips.
// Processes are killed when the test (or test group) that started them
// ends, and their logs are printed when it failed.
package daprtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/syncbuf"
)

// ---- binaries ----

var daprdOnce struct {
	sync.Once
	path string
	err  error
}

// Daprd returns the path of daprd: $ROAM_DAPRD, else the build of
// tools/daprd/build.sh (cached by version; the first call on a machine
// builds it, which takes minutes). It fails t when there is none.
func Daprd(t testing.TB) string {
	t.Helper()
	daprdOnce.Do(func() {
		if p := os.Getenv("ROAM_DAPRD"); p != "" {
			if _, err := os.Stat(p); err != nil {
				daprdOnce.err = fmt.Errorf("ROAM_DAPRD=%s: %v", p, err)
				return
			}
			daprdOnce.path = p
			return
		}
		root, err := repoRoot()
		if err != nil {
			daprdOnce.err = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "tools", "daprd", "build.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			daprdOnce.err = fmt.Errorf("tools/daprd/build.sh failed: %v\n%s", err, stderr.String())
			return
		}
		daprdOnce.path = strings.TrimSpace(string(out))
	})
	if daprdOnce.err != nil {
		t.Fatalf("daprd is not available, and these tests need a real sidecar: %v", daprdOnce.err)
	}
	return daprdOnce.path
}

func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

// RepoRoot returns the module's root directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	r, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// handedOut holds every port FreePort and ReservePort have returned in this
// process. The kernel picks a port for bind(0) at random among the free
// ones, and a port FreePort has closed is free again at once: without this
// record, two calls of one sidecar's start sometimes got the same number
// (daprd then dies with "could not listen on any endpoint", or, when its
// metrics server took the HTTP API's port, answers the harness's health
// probe from the wrong server).
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// claim records port as handed out, reporting false when it already was.
func claim(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	if handedOut.ports[port] {
		return false
	}
	handedOut.ports[port] = true
	return true
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1 and
// that no other call of FreePort or ReservePort in this process returned.
func FreePort(t testing.TB) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if claim(port) {
			return port
		}
	}
}

// ReservedPort is a port on 127.0.0.1 bound to a socket that does not
// listen yet: nobody else can take the port, and a connection to it is
// refused, as to a closed port, until Listen.
//
// It is the app port of a host under test, which a sidecar must be started
// with before the host can open its backend. A real host opens its port
// when it serves (host.Listen just before Serve), and daprd, which waits
// for its app port to accept a connection and then reads the app's
// subscriptions, sees it refused until then. A listener opened early would
// instead accept daprd's connections into its backlog and leave them
// unanswered while the host starts (see DefaultAppStartBudget for what
// daprd makes of that): Listen on a ReservedPort when the host serves.
type ReservedPort struct {
	Port int

	mu sync.Mutex
	fd int // -1 once Listen or the test's end took it
}

// ReservePort binds a fresh port on 127.0.0.1 without listening on it. The
// socket is closed when t ends, unless Listen turned it into a listener
// (which the caller closes).
func ReservePort(t testing.TB) *ReservedPort {
	t.Helper()
	for {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("reserving a port: socket: %v", err)
		}
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			syscall.Close(fd)
			t.Fatalf("reserving a port: bind: %v", err)
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			syscall.Close(fd)
			t.Fatalf("reserving a port: getsockname: %v", err)
		}
		port := sa.(*syscall.SockaddrInet4).Port
		if !claim(port) {
			// FreePort handed it out before; whoever got it may still bind it.
			syscall.Close(fd)
			continue
		}
		p := &ReservedPort{Port: port, fd: fd}
		t.Cleanup(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.fd >= 0 {
				syscall.Close(p.fd)
				p.fd = -1
			}
		})
		return p
	}
}

// Listen starts listening on the reserved port and returns the listener.
// It can be called once.
func (p *ReservedPort) Listen() (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fd < 0 {
		return nil, fmt.Errorf("port %d: Listen called twice, or after the test ended", p.Port)
	}
	fd := p.fd
	p.fd = -1
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("listen on reserved port %d: %v", p.Port, err)
	}
	f := os.NewFile(uintptr(fd), "127.0.0.1:"+strconv.Itoa(p.Port))
	defer f.Close() // FileListener holds a duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("listen on reserved port %d: %v", p.Port, err)
	}
	return ln, nil
}

// ---- processes ----

// syncBuffer captures output written from several goroutines.
type syncBuffer = syncbuf.Buffer

// proc is a child process that can be killed and started again.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  *syncBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd
	exit chan struct{}
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(p.log, "---- start: %s %s\n", p.bin, strings.Join(p.args, " "))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", p.name, err)
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	p.cmd, p.exit = cmd, exit
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exit := p.cmd, p.exit
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exit
	fmt.Fprintf(p.log, "---- killed\n")
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exit:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to grace for the process to exit, then kills
// it. A sidecar that stops this way deregisters its name.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, exit := p.cmd, p.exit
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exit:
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
		fmt.Fprintf(p.log, "---- stopped\n")
	case <-time.After(grace):
		p.kill()
	}
}

// cleanup stops p when t ends and prints its log if t failed.
func (p *proc) cleanup(t testing.TB) {
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			logs := p.log.String()
			if len(logs) > 200<<10 {
				logs = "...\n" + logs[len(logs)-200<<10:]
			}
			t.Logf("==== log of %s ====\n%s==== end of %s ====", p.name, logs, p.name)
		}
	})
}

// ---- Redis ----

// Redis is a redis-server on a loopback port, without persistence.
type Redis struct {
	Addr string
	Port int
	p    *proc
}

// StartRedis starts redis-server on a free port. It stops when t ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed, and these tests need a real Redis: apt-get install -y redis-server (test.sh does)")
	}
	port := FreePort(t)
	dir := t.TempDir()
	r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, p: &proc{
		name: "redis-server :" + strconv.Itoa(port),
		bin:  bin,
		args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--protected-mode", "no"},
		log: &syncBuffer{},
	}}
	r.p.cleanup(t)
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// Start starts Redis (again, after Kill) and waits until it answers.
func (r *Redis) Start() error {
	if err := r.p.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", r.Addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 16)
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not answer within 20s:\n%s", r.Addr, r.p.log.String())
}

// Kill stops Redis with SIGKILL.
func (r *Redis) Kill() { r.p.kill() }

// Do runs one Redis command (inline protocol) and returns the raw reply.
func (r *Redis) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.Addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

// ---- resources ----

// Resources are the components and configuration of a group of sidecars.
type Resources struct {
	// Dir is the --resources-path.
	Dir string
	// Config is the --config file (SQLite name resolution).
	Config string
	// SecretsFile is the local secret store's file ("secretstore").
	SecretsFile string
}

// ResourceOptions shape the resources.
type ResourceOptions struct {
	// MaxAttempts is how many times Dapr delivers an event (the pub/sub
	// component's inbound retry policy); zero means 3.
	MaxAttempts int
	// RetryInterval is the constant wait between deliveries; zero means
	// 10ms.
	RetryInterval time.Duration
	// Secrets are the local secret store's secrets.
	Secrets map[string]string
	// StateStores names more state.redis stores beside "statestore", each
	// in a Redis database of its own.
	StateStores []string
	// AppStartBudget bounds how long each sidecar keeps reading its app's
	// subscriptions at start-up, retrying every 500ms while the app does
	// not answer (or refuses); zero means DefaultAppStartBudget. Daprd
	// reports healthy only after that.
	AppStartBudget time.Duration
	// OTLPEndpoint, when set (host:port of an OTLP/gRPC receiver, such as
	// internal/otlptest's), makes the sidecars trace every call and export
	// their spans there, in plaintext.
	OTLPEndpoint string
}

// DefaultAppStartBudget is how long a sidecar keeps trying to read its
// app's subscriptions at start-up (ResourceOptions.AppStartBudget): as long
// as the harness waits for a sidecar to start or to become healthy, since
// daprd's health waits for this too.
//
// Daprd reads an app's subscriptions once, when the app's port first
// accepts a connection, under its built-in policy
// DaprBuiltInInitializationRetries: by default four attempts within about
// 3s. Over gRPC that is too short for an app that is not serving yet: daprd
// dials its app channel when it starts, the dial's reconnect backoff grows
// (1s, 1.6s, 2.6s, ...) while the app starts, and each attempt in between
// fails at once, or after 1s when the port accepts but nothing answers the
// HTTP/2 handshake. A host that takes a few seconds to serve (loading
// apps, wasm modules, under -race) then never gets an event: the sidecar
// logs "failed to subscribe to topics" and goes on without them
// (dapr/dapr#9034). The Resiliency overrides that policy, as Dapr documents
// for this case, so that the sidecar keeps reading until the app answers.
const DefaultAppStartBudget = 60 * time.Second

// appStartRetryInterval is the wait between two reads of the subscriptions.
const appStartRetryInterval = 500 * time.Millisecond

// WriteResources writes, for Redis r: statestore (state.redis), pubsub
// (pubsub.redis, one delivery at a time, so that order holds), configstore
// (configuration.redis), secretstore (secretstores.local.file), a
// Resiliency whose inbound retry policy on pubsub makes MaxAttempts
// deliveries and whose DaprBuiltInInitializationRetries give an app
// AppStartBudget to answer for its subscriptions, and a Configuration that
// resolves app ids through a SQLite file shared by every sidecar of the
// group.
func WriteResources(t testing.TB, r *Redis, o ResourceOptions) Resources {
	t.Helper()
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 10 * time.Millisecond
	}
	if o.AppStartBudget <= 0 {
		o.AppStartBudget = DefaultAppStartBudget
	}
	// Dapr resets an override of a built-in policy below 3 retries to 3.
	startRetries := max(3, int((o.AppStartBudget+appStartRetryInterval-1)/appStartRetryInterval))
	dir := t.TempDir()
	res := Resources{Dir: filepath.Join(dir, "resources"), Config: filepath.Join(dir, "config.yaml"), SecretsFile: filepath.Join(dir, "secrets.json")}
	if err := os.MkdirAll(res.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := "{}"
	if len(o.Secrets) > 0 {
		var b strings.Builder
		b.WriteString("{")
		i := 0
		for k, v := range o.Secrets {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%q", k, v)
			i++
		}
		b.WriteString("}")
		secrets = b.String()
	}
	files := map[string]string{
		filepath.Join(res.Dir, "statestore.yaml"):  Component("statestore", "state.redis", "redisHost", r.Addr, "redisPassword", ""),
		filepath.Join(res.Dir, "pubsub.yaml"):      Component("pubsub", "pubsub.redis", "redisHost", r.Addr, "redisPassword", "", "concurrency", "1", "processingTimeout", "15s", "redeliverInterval", "2s"),
		filepath.Join(res.Dir, "configstore.yaml"): Component("configstore", "configuration.redis", "redisHost", r.Addr, "redisPassword", ""),
		filepath.Join(res.Dir, "secretstore.yaml"): Component("secretstore", "secretstores.local.file", "secretsFile", res.SecretsFile),
		filepath.Join(res.Dir, "resiliency.yaml"): fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: roam-test
spec:
  policies:
    retries:
      events:
        policy: constant
        duration: %s
        maxRetries: %d
      DaprBuiltInInitializationRetries:
        policy: constant
        duration: %s
        maxRetries: %d
  targets:
    components:
      pubsub:
        inbound:
          retry: events
`, o.RetryInterval, o.MaxAttempts-1, appStartRetryInterval, startRetries),
		res.Config: fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: roam-test
spec:
  nameResolution:
    component: sqlite
    version: v1
    configuration:
      connectionString: %q
`, filepath.Join(dir, "names.db")) + tracingSpec(o.OTLPEndpoint),
		res.SecretsFile: secrets,
	}
	for i, name := range o.StateStores {
		files[filepath.Join(res.Dir, name+".yaml")] = Component(name, "state.redis", "redisHost", r.Addr, "redisPassword", "", "redisDB", strconv.Itoa(i+1))
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// tracingSpec is the tracing section of a Configuration (Dapr 1.16's
// schema) exporting to an OTLP/gRPC endpoint, or "" for none.
func tracingSpec(endpoint string) string {
	if endpoint == "" {
		return ""
	}
	return fmt.Sprintf(`  tracing:
    samplingRate: "1"
    otel:
      endpointAddress: %q
      isSecure: false
      protocol: grpc
`, endpoint)
}

// Component renders a Dapr component with metadata given as name, value
// pairs.
func Component(name, typ string, md ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\nspec:\n  type: %s\n  version: v1\n  metadata:\n", name, typ)
	for i := 0; i+1 < len(md); i += 2 {
		fmt.Fprintf(&b, "  - name: %s\n    value: %q\n", md[i], md[i+1])
	}
	return b.String()
}

// ---- sidecars ----

// SidecarOptions describe one daprd.
type SidecarOptions struct {
	AppID string
	// AppPort is the host's port; zero means no app channel.
	AppPort int
	// AppProtocol is "http" (default) or "grpc".
	AppProtocol string
	Resources   Resources
	// Env adds to daprd's environment (APP_API_TOKEN, DAPR_API_TOKEN,
	// NAMESPACE).
	Env []string
	// LogLevel defaults to "info".
	LogLevel string
}

// Sidecar is a running daprd.
type Sidecar struct {
	Opts                                          SidecarOptions
	HTTPPort, GRPCPort, InternalPort, MetricsPort int
	p                                             *proc
}

// StartSidecar starts daprd and waits for its outbound APIs (state,
// pub/sub, ...). It stops when t ends, printing its log if t failed.
func StartSidecar(t testing.TB, o SidecarOptions) *Sidecar {
	t.Helper()
	bin := Daprd(t)
	if o.AppProtocol == "" {
		o.AppProtocol = "http"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	s := &Sidecar{Opts: o, HTTPPort: FreePort(t), GRPCPort: FreePort(t), InternalPort: FreePort(t), MetricsPort: FreePort(t)}
	args := []string{
		"--app-id", o.AppID,
		"--dapr-http-port", strconv.Itoa(s.HTTPPort),
		"--dapr-grpc-port", strconv.Itoa(s.GRPCPort),
		"--dapr-internal-grpc-port", strconv.Itoa(s.InternalPort),
		"--metrics-port", strconv.Itoa(s.MetricsPort),
		"--resources-path", o.Resources.Dir,
		"--config", o.Resources.Config,
		"--log-level", o.LogLevel,
		"--dapr-listen-addresses", "127.0.0.1",
		"--app-channel-address", "127.0.0.1",
		// No actors, workflows or jobs: no placement or scheduler to wait for.
		"--placement-host-address", "",
		"--scheduler-host-address", "",
		"--dapr-graceful-shutdown-seconds", "1",
	}
	if o.AppPort > 0 {
		args = append(args, "--app-port", strconv.Itoa(o.AppPort), "--app-protocol", o.AppProtocol)
	}
	// Register with the name resolver under the loopback address.
	env := append([]string{"DAPR_HOST_IP=127.0.0.1"}, o.Env...)
	s.p = &proc{name: "daprd " + o.AppID, bin: bin, args: args, env: env, log: &syncBuffer{}}
	s.p.cleanup(t)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Start starts daprd (again, after Kill) on the same ports and waits for
// its outbound APIs.
func (s *Sidecar) Start() error {
	if err := s.p.start(); err != nil {
		return err
	}
	return s.waitFor("/v1.0/healthz/outbound", 60*time.Second)
}

// Kill stops daprd with SIGKILL.
func (s *Sidecar) Kill() { s.p.kill() }

// Stop stops daprd gracefully (SIGTERM), killing it after 5s.
func (s *Sidecar) Stop() { s.p.stop(5 * time.Second) }

// Running reports whether daprd is running.
func (s *Sidecar) Running() bool { return s.p.running() }

// WaitHealthy waits until daprd reports itself healthy, which with an app
// port means the app channel is up and the subscriptions are read.
func (s *Sidecar) WaitHealthy(t testing.TB) {
	t.Helper()
	if err := s.waitFor("/v1.0/healthz", 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

func (s *Sidecar) waitFor(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	url := "http://" + s.HTTPAddr() + path
	var last string
	for time.Now().Before(deadline) {
		if !s.p.running() {
			return fmt.Errorf("daprd %s exited while starting:\n%s", s.Opts.AppID, s.p.log.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				cancel()
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("daprd %s: %s did not answer 2xx within %v (last: %s)", s.Opts.AppID, path, d, last)
}

// HTTPAddr and GRPCAddr are the sidecar's API addresses.
func (s *Sidecar) HTTPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.HTTPPort)) }

// GRPCAddr is the sidecar's gRPC API address.
func (s *Sidecar) GRPCAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.GRPCPort)) }

// Env is the environment an app beside this sidecar gets.
func (s *Sidecar) Env() map[string]string {
	return map[string]string{"DAPR_HTTP_PORT": strconv.Itoa(s.HTTPPort), "DAPR_GRPC_PORT": strconv.Itoa(s.GRPCPort)}
}

// Getenv looks name up in Env, then in extra (name=value pairs).
func (s *Sidecar) Getenv(extra ...string) func(string) string {
	env := s.Env()
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return func(k string) string { return env[k] }
}

// Logs returns what daprd has logged so far.
func (s *Sidecar) Logs() string { return s.p.log.String() }
