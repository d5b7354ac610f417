package host

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Flags are the command-line settings every host takes: the native host's
// binary, `roam edge` and `roam-edge`, and `roam run`, which passes them on
// to the binary it builds (Args). They are defined once, here, on the
// standard library's flag package, so that the native binary links no CLI
// framework; cobra commands add them with pflag's AddGoFlagSet.
type Flags struct {
	Addr string
	Port int
	// MetricsPort, when not 0, serves /metrics, and only /metrics, on
	// Addr:MetricsPort, and no longer on Port (ServeOptions.Metrics); 0,
	// the default, keeps it on Port.
	MetricsPort    int
	DataDir        string
	LogLevel       string
	LogFormat      string
	Pprof          bool
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	ShutdownGrace  time.Duration
	// ShutdownDrain is ServeOptions.Drain: how long the host goes on
	// serving, /readyz at 503, once a shutdown starts, within
	// ShutdownGrace. 0 takes the default (DefaultDrain after a SIGTERM,
	// none after a Ctrl-C); Check refuses a negative one and one longer
	// than ShutdownGrace.
	ShutdownDrain time.Duration
	// CORSOrigins is comma-separated; see Origins and Options.CORSOrigins.
	CORSOrigins string
	StateAPI    bool
	// Backend is auto (dapr beside a sidecar, else embedded), embedded or
	// dapr; see package hostbackend.
	Backend string
	// MaxConnections is Options.MaxConnections: 0 takes the default, and a
	// negative number is refused (there is no "no cap" on the command line:
	// a descriptor limit bounds every process anyway).
	MaxConnections int
}

// Register defines the flags on fs, with their defaults.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Addr, "addr", "127.0.0.1", "address to listen on")
	fs.IntVar(&f.Port, "port", 8080, "port to listen on (0 picks a free one)")
	fs.IntVar(&f.MetricsPort, "metrics-port", 0, "serve /metrics on this port of --addr, and only there (the serving port then answers 404 to it); 0 keeps it on --port")
	fs.StringVar(&f.DataDir, "data-dir", ".roam", "directory for durable state, events and the local app registry")
	fs.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/, on the serving port, to anyone who reaches it")
	fs.Int64Var(&f.MaxBodyBytes, "max-body-bytes", 4<<20, "largest accepted request body")
	fs.DurationVar(&f.RequestTimeout, "request-timeout", 30*time.Second, "deadline of each call and delivery")
	fs.DurationVar(&f.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests get to finish on SIGTERM")
	fs.DurationVar(&f.ShutdownDrain, "shutdown-drain", 0, "how long the host goes on serving, with /readyz at 503, once a shutdown starts and before it stops accepting; part of --shutdown-grace (0: half the grace, at most 5s, after a SIGTERM, and none after a Ctrl-C; set, it applies to both)")
	fs.StringVar(&f.CORSOrigins, "cors-origins", "", "comma-separated origins whose pages may call this host (e.g. http://127.0.0.1:* or https://shop.example); default none")
	fs.BoolVar(&f.StateAPI, "state-api", false, "serve the state sync API that browser hosts push to and pull from (/v1/apps/{app}/state/...): whoever reaches the port reads and overwrites every app's state, unless ROAM_STATE_API_TOKEN is set, which requests must then carry as Authorization: Bearer <token>")
	fs.StringVar(&f.Backend, "backend", "auto", "auto (dapr when DAPR_GRPC_PORT or DAPR_HTTP_PORT is set, else embedded), embedded or dapr")
	fs.Var((*connCount)(&f.MaxConnections), "max-connections", "client connections open at once; a client beyond them waits, and idle keep-alive connections are closed to make room for it (0: 10000, or less under a low open-file limit)")
}

// connCount is --max-connections: an int that is not negative. Set refuses
// a negative number when the flag is parsed, so that every host that
// registers the flags (and roam run, before it builds anything) refuses
// it alike.
type connCount int

func (n *connCount) String() string { return strconv.Itoa(int(*n)) }

// Type is the value's name in pflag's help, as for its own ints.
func (n *connCount) Type() string { return "int" }

func (n *connCount) Set(s string) error {
	v, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if errors.Is(err, strconv.ErrRange) {
		return errors.New("out of range")
	}
	if err != nil {
		return errors.New("not a whole number")
	}
	if v < 0 {
		return errors.New("must not be negative: 0 takes the default (10000, or less under a low open-file limit); for no cap, pass a number as large as the open-file limit")
	}
	*n = connCount(v)
	return nil
}

// Args gives the flags back as a command line that Register parses.
func (f *Flags) Args() []string {
	a := []string{"--addr", f.Addr, "--port", strconv.Itoa(f.Port), "--data-dir", f.DataDir,
		"--log-level", f.LogLevel, "--log-format", f.LogFormat,
		"--max-body-bytes", strconv.FormatInt(f.MaxBodyBytes, 10),
		"--request-timeout", f.RequestTimeout.String(), "--shutdown-grace", f.ShutdownGrace.String(),
		"--backend", f.Backend}
	if f.Pprof {
		a = append(a, "--pprof")
	}
	if f.CORSOrigins != "" {
		a = append(a, "--cors-origins", f.CORSOrigins)
	}
	if f.StateAPI {
		a = append(a, "--state-api")
	}
	if f.ShutdownDrain != 0 {
		// Only when set: 0 is the default, reckoned from the grace.
		a = append(a, "--shutdown-drain", f.ShutdownDrain.String())
	}
	if f.MetricsPort != 0 {
		// Only when set: 0 keeps /metrics on the serving port.
		a = append(a, "--metrics-port", strconv.Itoa(f.MetricsPort))
	}
	if f.MaxConnections != 0 {
		// Only when set, as the flags above: the default is the host's
		// own, reckoned from its open-file limit.
		a = append(a, "--max-connections", strconv.Itoa(f.MaxConnections))
	}
	return a
}

// Origins splits CORSOrigins.
func (f *Flags) Origins() []string {
	var out []string
	for _, o := range strings.Split(f.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Check refuses the settings that cannot work, before a host opens its
// backend or loads a module (and before roam run spends a build on them):
// a port out of range (which net.Listen words "address 70000: invalid
// port"), a data directory that is a file (the host's first read of it
// said "open F/config.json: not a directory"), the negative sizes and
// durations the hosts would silently replace by their defaults, a drain
// longer than the grace it is part of, a log format they would silently
// take for text, and the log levels and CORS origins they refuse
// themselves, but only once built. Every host calls it: the native host's
// Run, the edge host's Run (through Config.Check), and roam run.
func (f Flags) Check() error {
	switch {
	case f.Port < 0 || f.Port > 65535:
		return fmt.Errorf("--port %d: use 1 to 65535, or 0 for a free one", f.Port)
	case f.MetricsPort < 0 || f.MetricsPort > 65535:
		return fmt.Errorf("--metrics-port %d: use 1 to 65535, or 0 to serve /metrics on --port", f.MetricsPort)
	case f.MetricsPort != 0 && f.MetricsPort == f.Port:
		return fmt.Errorf("--metrics-port %d is --port too: use another port for /metrics, or 0 to serve it on --port", f.MetricsPort)
	case f.MaxBodyBytes < 0:
		return fmt.Errorf("--max-body-bytes %d: use a positive size in bytes (0 takes the default, %d)", f.MaxBodyBytes, 4<<20)
	case f.RequestTimeout < 0:
		return fmt.Errorf("--request-timeout %s: use a positive duration such as 30s (0 takes the default, 30s)", f.RequestTimeout)
	case f.ShutdownGrace < 0:
		return fmt.Errorf("--shutdown-grace %s: use a positive duration such as 10s, or 0 to cut off requests in flight at once", f.ShutdownGrace)
	case f.ShutdownDrain < 0:
		return fmt.Errorf("--shutdown-drain %s: use a positive duration such as 5s, or 0 for the default (half of --shutdown-grace, at most 5s, after a SIGTERM)", f.ShutdownDrain)
	case f.ShutdownDrain > f.ShutdownGrace:
		// The drain is part of the grace: cut to it silently, the host
		// would stop accepting later than asked and leave the requests in
		// flight no time to finish.
		return fmt.Errorf("--shutdown-drain %s is longer than --shutdown-grace %s, of which it is a part: lower it, or raise --shutdown-grace (past the drain, requests in flight get the rest of the grace)", f.ShutdownDrain, f.ShutdownGrace)
	case f.LogFormat != "text" && f.LogFormat != "json":
		// The hosts write text for any value but json.
		return fmt.Errorf("--log-format %q: use text or json", f.LogFormat)
	}
	// The level as NewLogger reads it, without building a logger: one
	// built here only to be closed allocated its 1.2 MB queue at every
	// start, garbage that made a GC run during start-up (about 0.9 MB of
	// the native shop's idle RSS; BENCHMARKS.md, "Native idle RSS, session 9").
	if _, err := parseLogLevel(f.LogLevel); err != nil {
		return err
	}
	if err := CheckCORSOrigins(f.Origins()); err != nil {
		return fmt.Errorf("--cors-origins: %w", err)
	}
	return checkDataDir(f.DataDir)
}

// checkDataDir refuses a --data-dir that is a file, or lies below one. A
// directory that does not exist yet is made by the backend; one the host
// may not write to is reported by it ("mkdir ...: permission denied").
func checkDataDir(dir string) error {
	if dir == "" {
		return errors.New("--data-dir is empty: name a directory (the default is .roam)")
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if fi.IsDir() {
				return nil
			}
			if p == filepath.Clean(dir) {
				return fmt.Errorf("--data-dir %s is a file, not a directory", dir)
			}
			return fmt.Errorf("--data-dir %s: %s is a file, not a directory", dir, p)
		}
		// Not there (or below a file): look further up. Another error,
		// such as a denied search, is the host's to report.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}
