// Package cli holds the cobra commands and flags that more than one of
// Roam's binaries serves: `roam edge` and the slim `roam-edge` of the edge
// image run the same command, and `roam run` and `roam edge` share the
// host's flags.
package cli

import (
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	// The edge host runs modules beside a Dapr sidecar too.
	_ "github.com/roam-dev/roam/backend/dapr/register"
	"github.com/roam-dev/roam/host/edge"
)

// HostFlags are the flags every host takes.
type HostFlags struct {
	Addr, DataDir, LogLevel, LogFormat string
	Port                               int
	Pprof                              bool
	MaxBody                            int64
	RequestTimeout, ShutdownGrace      time.Duration
	CORSOrigins                        string
	StateAPI                           bool
}

// Register adds the flags to c.
func (h *HostFlags) Register(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&h.Addr, "addr", "127.0.0.1", "address to listen on")
	f.IntVar(&h.Port, "port", 8080, "port to listen on (0 picks a free one)")
	f.StringVar(&h.DataDir, "data-dir", ".roam", "directory for durable state, events and the local app registry")
	f.StringVar(&h.LogLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&h.LogFormat, "log-format", "text", "text or json")
	f.BoolVar(&h.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/")
	f.Int64Var(&h.MaxBody, "max-body-bytes", 4<<20, "largest accepted request body")
	f.DurationVar(&h.RequestTimeout, "request-timeout", 30*time.Second, "deadline of each call and delivery")
	f.DurationVar(&h.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests get to finish on SIGTERM")
	f.StringVar(&h.CORSOrigins, "cors-origins", "", "comma-separated origins whose pages may call the host, e.g. http://127.0.0.1:* (empty: none)")
	f.BoolVar(&h.StateAPI, "state-api", false, "serve the state sync API the browser host pushes to and pulls from")
}

// Args gives the flags back as a host's command line.
func (h *HostFlags) Args() []string {
	a := []string{"--addr", h.Addr, "--port", strconv.Itoa(h.Port), "--data-dir", h.DataDir,
		"--log-level", h.LogLevel, "--log-format", h.LogFormat,
		"--max-body-bytes", strconv.FormatInt(h.MaxBody, 10),
		"--request-timeout", h.RequestTimeout.String(), "--shutdown-grace", h.ShutdownGrace.String()}
	if h.Pprof {
		a = append(a, "--pprof")
	}
	if h.CORSOrigins != "" {
		a = append(a, "--cors-origins", h.CORSOrigins)
	}
	if h.StateAPI {
		a = append(a, "--state-api")
	}
	return a
}

// Origins splits --cors-origins.
func (h *HostFlags) Origins() []string {
	var out []string
	for _, o := range strings.Split(h.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// Version is the stamped version (-X main.version=...), else the module's,
// else "dev".
func Version(stamped string) string {
	if stamped != "" {
		return stamped
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// EdgeCommand is `roam edge`: wasm modules on the edge host.
func EdgeCommand(use string, stdout, stderr io.Writer) *cobra.Command {
	var hf HostFlags
	c := edge.Config{}
	cmd := &cobra.Command{
		Use:   use + " FILE.wasm|DIR|MANIFEST.json|oci://REF ...",
		Short: "Run wasm modules (roam build --target wasm) on the edge host, on the embedded backend or beside a Dapr sidecar",
		Long: `edge runs Roam apps built as wasip1 modules on wazero, served over the same
HTTP API as roam run, with state and events in --data-dir. A directory means
every *.wasm in it, and oci://REF a module pulled from a registry (verified by
digest and cached). A .json manifest lists modules with their own pool, memory
and timeout settings, and is the only way to grant a module environment
variables or directories: by default a guest sees no environment, no files and
no sockets. Each module gets a pool of instances (--pool-size); a call
that finds none free waits in a queue (--max-queue) and is refused with 503
when the queue is full. Compiled code is cached in --cache-dir, so a restart
does not recompile. With --watch (the default) a module whose file changes is
reloaded without dropping a request.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c.Paths = args
			c.Addr, c.Port, c.DataDir = hf.Addr, hf.Port, hf.DataDir
			c.LogLevel, c.LogFormat, c.Pprof = hf.LogLevel, hf.LogFormat, hf.Pprof
			c.MaxBodyBytes, c.RequestTimeout, c.ShutdownGrace = hf.MaxBody, hf.RequestTimeout, hf.ShutdownGrace
			c.StateAPI = hf.StateAPI
			c.CORSOrigins = hf.Origins()
			return edge.Run(cmd.Context(), c, stdout, stderr)
		},
	}
	hf.Register(cmd)
	f := cmd.Flags()
	f.IntVar(&c.PoolSize, "pool-size", 0, "instances per module (0: 4 per CPU, at least 4, at most 12)")
	f.IntVar(&c.MaxQueue, "max-queue", edge.DefaultMaxQueue, "calls per module that may wait for a free instance before 503 (0: none)")
	f.IntVar(&c.MemoryLimitMB, "memory-limit-mb", edge.DefaultMemoryLimitPages/16, "memory cap of each instance, in MiB")
	f.StringVar(&c.CacheDir, "cache-dir", edge.DefaultCacheDir(), "directory of compiled modules")
	f.BoolVar(&c.Watch, "watch", true, "reload a module when its file changes")
	f.StringVar(&c.DefaultApp, "app-id", "", "app that receives Dapr app-channel calls (/{method}); default: the only app")
	f.StringVar(&c.Backend, "backend", "auto", "auto (dapr when DAPR_GRPC_PORT or DAPR_HTTP_PORT is set, else embedded), embedded or dapr")
	return cmd
}
