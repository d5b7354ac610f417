// Package cli holds the cobra commands that more than one of Roam's
// binaries serves: `roam edge` and the slim `roam-edge` of the edge image
// run the same command, and the cobra commands that run a host take its
// flags (host.Flags) through RegisterHostFlags.
package cli

import (
	"errors"
	"flag"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"

	// The edge host runs modules beside a Dapr sidecar too.
	_ "github.com/roam-dev/roam/backend/dapr/register"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/edge"
)

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

// RegisterHostFlags adds the hosts' flags (host.Flags) to c.
func RegisterHostFlags(c *cobra.Command, f *host.Flags) {
	fs := flag.NewFlagSet(c.Name(), flag.ContinueOnError)
	f.Register(fs)
	c.Flags().AddGoFlagSet(fs)
}

// EdgeCommand is `roam edge`: wasm modules on the edge host.
func EdgeCommand(use string, stdout, stderr io.Writer) *cobra.Command {
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
when the queue is full. While calls queue, the pool grows, up to
--max-pool-size instances and --pool-memory-mb of their memory; the instances
it grew by close after --pool-idle-timeout without a call. Compiled code is
cached in --cache-dir, so a restart does not recompile. With --watch (the
default) a module whose file changes is reloaded without dropping a request.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("requires at least 1 arg: the modules to run, as FILE.wasm (roam build --target wasm makes one), a directory of them, a .json manifest or oci://REF")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// Run refuses the flags that cannot work (Config.Check: the
			// host's, then the pool's) before it loads anything.
			c.Paths = args
			return edge.Run(cmd.Context(), c, stdout, stderr)
		},
	}
	RegisterHostFlags(cmd, &c.Flags)
	f := cmd.Flags()
	f.IntVar(&c.PoolSize, "pool-size", 0, "instances per module, made at start and kept (0: 4 per CPU, at least 4, at most 12)")
	f.IntVar(&c.MaxPoolSize, "max-pool-size", 0, "instances a module's pool may grow to while calls queue (0: 4 × --pool-size, at most 64; equal to --pool-size for a fixed pool)")
	f.IntVar(&c.PoolMemoryMB, "pool-memory-mb", edge.DefaultPoolMemoryBytes>>20, "a module's pool stops growing once its instances' memory adds up to this, in MiB")
	f.DurationVar(&c.PoolIdleTimeout, "pool-idle-timeout", edge.DefaultIdleTimeout, "how long an instance beyond --pool-size stays idle before it is closed")
	f.IntVar(&c.MaxQueue, "max-queue", edge.DefaultMaxQueue, "calls per module that may wait for a free instance before 503 (0: none)")
	f.IntVar(&c.MemoryLimitMB, "memory-limit-mb", edge.DefaultMemoryLimitPages/16, "memory cap of each instance, in MiB")
	f.StringVar(&c.CacheDir, "cache-dir", edge.DefaultCacheDir(), "directory of compiled modules")
	f.BoolVar(&c.Watch, "watch", true, "reload a module when its file changes")
	f.StringVar(&c.DefaultApp, "app-id", "", "app that receives Dapr app-channel calls (/{method}); default: the only app")
	return cmd
}
