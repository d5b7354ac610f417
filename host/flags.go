package host

import (
	"errors"
	"flag"
	"strconv"
	"strings"
	"time"
)

// Flags are the command-line settings every host takes: the native host's
// binary, `roam edge` and `roam-edge`, and `roam run`, which passes them on
// to the binary it builds (Args). They are defined once, here, on the
// standard library's flag package, so that the native binary links no CLI
// framework; cobra commands add them with pflag's AddGoFlagSet.
type Flags struct {
	Addr           string
	Port           int
	DataDir        string
	LogLevel       string
	LogFormat      string
	Pprof          bool
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	ShutdownGrace  time.Duration
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
	fs.StringVar(&f.DataDir, "data-dir", ".roam", "directory for durable state, events and the local app registry")
	fs.StringVar(&f.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/")
	fs.Int64Var(&f.MaxBodyBytes, "max-body-bytes", 4<<20, "largest accepted request body")
	fs.DurationVar(&f.RequestTimeout, "request-timeout", 30*time.Second, "deadline of each call and delivery")
	fs.DurationVar(&f.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests get to finish on SIGTERM")
	fs.StringVar(&f.CORSOrigins, "cors-origins", "", "comma-separated origins whose pages may call this host (e.g. http://127.0.0.1:* or https://shop.example); default none")
	fs.BoolVar(&f.StateAPI, "state-api", false, "serve the state sync API that browser hosts push to and pull from (/v1/apps/{app}/state/...)")
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
