package main

import (
	"io"
	"strings"

	"github.com/spf13/cobra"

	// roam edge runs modules beside a Dapr sidecar too.
	_ "github.com/roam-dev/roam/backend/dapr/register"
	"github.com/roam-dev/roam/host/edge"
)

func newEdgeCmd(stdout, stderr io.Writer) *cobra.Command {
	var hf hostFlags
	c := edge.Config{}
	cmd := &cobra.Command{
		Use:   "edge FILE.wasm|DIR|MANIFEST.json ...",
		Short: "Run wasm modules (roam build --target wasm) on the edge host, on the embedded backend or beside a Dapr sidecar",
		Long: `edge runs Roam apps built as wasip1 modules on wazero, served over the same
HTTP API as roam run, with state and events in --data-dir. A directory means
every *.wasm in it. A .json manifest lists modules with their own pool, memory
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
			c.Addr, c.Port, c.DataDir = hf.addr, hf.port, hf.dataDir
			c.LogLevel, c.LogFormat, c.Pprof = hf.logLevel, hf.logFormat, hf.pprof
			c.MaxBodyBytes, c.RequestTimeout, c.ShutdownGrace = hf.maxBody, hf.requestTimeout, hf.shutdownGrace
			c.StateAPI = hf.stateAPI
			for _, o := range strings.Split(hf.corsOrigins, ",") {
				if o = strings.TrimSpace(o); o != "" {
					c.CORSOrigins = append(c.CORSOrigins, o)
				}
			}
			return edge.Run(cmd.Context(), c, stdout, stderr)
		},
	}
	hf.register(cmd)
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
