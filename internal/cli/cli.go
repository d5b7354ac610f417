// Package cli holds the cobra commands that more than one of Roam's
// binaries serves: `roam edge` and the slim `roam-edge` of the edge image
// run the same command, and the cobra commands that run a host take its
// flags (host.Flags) through RegisterHostFlags.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"

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
			if err := CheckHostFlags(c.Flags); err != nil {
				return err
			}
			if err := checkPoolFlags(c); err != nil {
				return err
			}
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

// CheckHostFlags refuses the host settings that cannot work, before roam
// run spends a build on them or roam edge loads its modules: a port out of
// range (which net.Listen words "address 70000: invalid port"), a data
// directory that is a file (the host's first read of it said "open
// F/config.json: not a directory"), the negative sizes and durations the
// hosts would silently replace by their defaults, a log format they would
// silently take for text, and the log levels and CORS origins they refuse
// themselves, but only once built.
func CheckHostFlags(f host.Flags) error {
	switch {
	case f.Port < 0 || f.Port > 65535:
		return fmt.Errorf("--port %d: use 1 to 65535, or 0 for a free one", f.Port)
	case f.MaxBodyBytes < 0:
		return fmt.Errorf("--max-body-bytes %d: use a positive size in bytes (0 takes the default, %d)", f.MaxBodyBytes, 4<<20)
	case f.RequestTimeout < 0:
		return fmt.Errorf("--request-timeout %s: use a positive duration such as 30s (0 takes the default, 30s)", f.RequestTimeout)
	case f.ShutdownGrace < 0:
		return fmt.Errorf("--shutdown-grace %s: use a positive duration such as 10s, or 0 to cut off requests in flight at once", f.ShutdownGrace)
	case f.LogFormat != "text" && f.LogFormat != "json":
		// The hosts write text for any value but json.
		return fmt.Errorf("--log-format %q: use text or json", f.LogFormat)
	}
	_, logs, err := host.NewLogger(f.LogLevel, f.LogFormat, io.Discard)
	if err != nil {
		return err
	}
	logs.Close()
	if err := host.CheckCORSOrigins(f.Origins()); err != nil {
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

// minInstanceMiB is the least memory a wasm instance of a Go module
// holds: a fresh one takes about 4 MiB (see host/edge), so a base pool of
// more than --pool-memory-mb / minInstanceMiB instances could not fit in
// the memory the pool is allowed.
const minInstanceMiB = 1

// checkPoolFlags refuses the pool settings that edge.Run takes silently:
// a negative --pool-size or --max-queue (taken as the default and as no
// queue), and a base pool that cannot fit in --pool-memory-mb. The base
// pool is made in full whatever its memory, so --pool-size 100000 grew the
// host by gigabytes a second until the kernel killed it.
func checkPoolFlags(c edge.Config) error {
	budget := c.PoolMemoryMB
	if budget == 0 {
		budget = edge.DefaultPoolMemoryBytes >> 20
	}
	switch {
	case c.PoolSize < 0:
		return fmt.Errorf("--pool-size %d: use 1 or more, or 0 for the default (4 per CPU, at least 4, at most 12)", c.PoolSize)
	case budget > 0 && c.PoolSize > budget/minInstanceMiB:
		return fmt.Errorf("--pool-size %d: at %d MiB or more an instance (a Go module's takes about 4), the base pool alone would exceed --pool-memory-mb %d: lower --pool-size, or raise --pool-memory-mb", c.PoolSize, minInstanceMiB, budget)
	case c.MaxQueue < 0:
		return fmt.Errorf("--max-queue %d: use 0 for no queue, or the number of calls that may wait", c.MaxQueue)
	}
	return nil
}
