package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/roam-dev/roam/backend/dapr"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/hostbackend"
	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/cli"
)

// version is stamped at release; otherwise the module version is used.
var version = ""

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "roam",
		Short:         "Write service logic once in Go; run it natively, at the edge and in the browser",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(newRunCmd(stdout, stderr), newBuildCmd(stdout, stderr), newEdgeCmd(stdout, stderr), newDistCmd(stdout, stderr), newVersionCmd(stdout))
	root.AddCommand(newOperatorCmd(stdout, stderr))
	root.AddCommand(newManifestsCmd(stdout, stderr))
	return root
}

// flagError words a mistake in a command's flags as kubectl does, naming
// the help to read; a long flag given one dash, Go's way (-port 0, which
// the native host's own binary takes), gets its two-dash spelling.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, " in -"); i >= 0 {
		name, _, _ := strings.Cut(msg[i+len(" in -"):], "=")
		if c.Flags().Lookup(name) != nil {
			return fmt.Errorf("%s: a long flag takes two dashes, --%s (see %s --help)", msg, name, c.CommandPath())
		}
	}
	return fmt.Errorf("%s (see %s --help)", msg, c.CommandPath())
}

// execHost replaces this process with the host roam run built; tests
// replace it.
var execHost = syscall.Exec

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var hf host.Flags
	var web bool
	c := &cobra.Command{
		Use:   "run [packages or directories]",
		Short: "Build the apps found under the given directories and run them on the embedded backend",
		Long: `run builds every Roam app found in the given packages (a directory means
everything below it; no argument, the current directory) into one native
host and starts it. State and events live in --data-dir; nothing else is
needed: no Docker, no sidecar. Beside a Dapr sidecar (DAPR_GRPC_PORT or
DAPR_HTTP_PORT set) the apps use it instead (--backend).

For the browser host, run also builds each app as a wasm module and serves
the modules at /web/modules/{app}.wasm, and the page in a web/ directory
beside the apps (examples/shop/web) at /web/, with the state sync API on
and CORS open to http://127.0.0.1:* (--web=false, --state-api=false and
--cors-origins change that).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			// What the host would refuse after the build, refused before it:
			// its flags, Dapr without a sidecar, and an address it cannot
			// listen on (a port in use).
			if err := hf.Check(); err != nil {
				return err
			}
			cache, err := os.UserCacheDir()
			if err != nil {
				cache = os.TempDir()
			}
			wd, _ := os.Getwd()
			// The Dapr backend is linked only when it may be used.
			backends := []string{"embedded"}
			if name, _, err := hostbackend.Choose(hf.Backend, os.Getenv); err != nil {
				return err
			} else if name == "dapr" {
				// What the host would say after the build.
				if o := dapr.OptionsFromEnv(os.Getenv); o.GRPCAddr == "" && o.HTTPAddr == "" {
					return errors.New("--backend dapr: no sidecar address: set DAPR_GRPC_PORT or DAPR_HTTP_PORT (dapr run does)")
				}
				backends = append(backends, "dapr")
			}
			if hf.Port != 0 {
				ln, err := host.Listen(hf.Addr, hf.Port)
				if err != nil {
					return err
				}
				ln.Close()
			}
			if hf.MetricsPort != 0 {
				ln, err := host.ListenMetrics(hf.Addr, hf.MetricsPort)
				if err != nil {
					return err
				}
				ln.Close()
			}
			key := sha256.Sum256([]byte(wd + "\x00" + strings.Join(args, "\x00") + "\x00" + strings.Join(backends, ",")))
			bin := filepath.Join(cache, "roam", "run", hex.EncodeToString(key[:8]), "host")
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "roam: building %s\n", strings.Join(args, " "))
			pkgs, err := build.Native(cmd.Context(), build.Options{Patterns: args, Out: bin, Stdout: stderr, Backends: backends})
			if err != nil {
				return err
			}
			hostArgs := hf.Args()
			if web {
				hostArgs = append(hostArgs, webArgs(cmd.Context(), stderr, args, pkgs, filepath.Join(filepath.Dir(bin), "modules"))...)
			}
			// A signal during the builds is the user's wish to stop, not
			// to start the host once they end.
			if ctx := cmd.Context(); ctx.Err() != nil {
				return fmt.Errorf("%w while building", context.Cause(ctx))
			}
			// Replace this process with the host, so that signals, exit
			// status and process supervision reach it directly.
			return execHost(bin, append([]string{"roam-host"}, hostArgs...), os.Environ())
		},
	}
	cli.RegisterHostFlags(c, &hf)
	// roam run is for development: open to pages served from this machine.
	hf.CORSOrigins, hf.StateAPI = "http://127.0.0.1:*", true
	cors := c.Flags().Lookup("cors-origins")
	cors.DefValue = hf.CORSOrigins
	cors.Usage = strings.TrimSuffix(cors.Usage, "; default none") // the hosts' default, not roam run's
	c.Flags().Lookup("state-api").DefValue = "true"
	c.Flags().BoolVar(&web, "web", true, "build the apps' wasm modules and serve them, and the page in a web/ directory beside the apps, to browsers under /web/")
	return c
}

// webArgs builds every app package as a wasm module into dir and returns
// the host flags that serve them and the page: the first web/ directory
// with an index.html in one of the run's directory arguments. A module that
// does not build is reported and left out; the native host runs regardless.
func webArgs(ctx context.Context, stderr io.Writer, args []string, pkgs []build.Package, dir string) []string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "roam: web modules: %v\n", err)
		return nil
	}
	var wg sync.WaitGroup
	for _, p := range pkgs {
		if len(p.AppIDs) > 1 {
			continue // a module holds exactly one app
		}
		// The module is named after its app when the source says which
		// (a literal or a constant), else after the package's directory.
		name := filepath.Base(p.Dir)
		if len(p.AppIDs) == 1 {
			name = p.AppIDs[0]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Build beside and rename into place: another roam run of the
			// same directories may be reading the previous build.
			out := filepath.Join(dir, name+".wasm")
			tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
			// Resolved in its own directory: from another module than
			// this directory's, its import path would not resolve here.
			_, err := build.Wasm(ctx, build.Options{Dir: p.Dir, Patterns: []string{p.ImportPath}, Out: tmp, Release: true, Stdout: stderr})
			if err == nil {
				err = os.Rename(tmp, out)
			}
			if err != nil {
				os.Remove(tmp)
				if ctx.Err() == nil { // else the build was stopped, not failed
					fmt.Fprintf(stderr, "roam: %s does not build as a wasm module, so browsers cannot run it: %v\n", p.ImportPath, err)
				}
			}
		}()
	}
	wg.Wait()
	a := []string{"--web-modules", dir}
	for _, arg := range args {
		page, err := filepath.Abs(filepath.Join(strings.TrimSuffix(arg, "/..."), "web"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(page, "index.html")); err == nil {
			return append(a, "--web-dir", page)
		}
	}
	return a
}

func newBuildCmd(stdout, stderr io.Writer) *cobra.Command {
	var out, target, backendList string
	c := &cobra.Command{
		Use:   "build [packages or directories]",
		Short: "Build the apps into a static native binary, or one app into a wasip1 module (--target wasm)",
		Long: `build builds every Roam app found in the given packages (a directory means
everything below it; no argument, the current directory) into one static
native binary of the native host, or, with --target wasm, the one app they
hold into a wasip1 module for roam edge and browsers.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			if target == "wasm" {
				if cmd.Flags().Changed("backends") {
					return errors.New("--backends is for native binaries: a wasm module uses the backend of the host that runs it (roam edge --backend)")
				}
				out, err := outputPath(out, args[0], ".wasm")
				if err != nil {
					return err
				}
				pkg, err := build.Wasm(cmd.Context(), build.Options{Patterns: args, Out: out, Release: true, Stdout: stderr})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "built %s (wasip1/wasm reactor) from %s\n", out, pkg.ImportPath)
				return nil
			}
			goos, goarch, ok := strings.Cut(target, "/")
			if target == "native" || target == "" {
				goos, goarch, ok = runtime.GOOS, runtime.GOARCH, true
			}
			if !ok || goos == "" || goarch == "" || strings.Contains(goarch, "/") {
				return fmt.Errorf("--target %q: use native, wasm, or GOOS/GOARCH such as linux/arm64", target)
			}
			if goarch == "wasm" {
				return fmt.Errorf("--target %s: the native host does not build for wasm; --target wasm builds the app as a wasip1 module, which roam edge and browsers run", target)
			}
			out, err := outputPath(out, args[0], "")
			if err != nil {
				return err
			}
			backends, err := build.ParseBackends(backendList)
			if err != nil {
				return err
			}
			pkgs, err := build.Native(cmd.Context(), build.Options{
				Patterns: args, Out: out, Release: true, Target: build.Target{GOOS: goos, GOARCH: goarch},
				Version: versionString(), Stdout: stderr, Backends: backends,
			})
			if err != nil {
				return err
			}
			var ids []string
			for _, p := range pkgs {
				if len(p.AppIDs) == 0 { // an id computed at run time: name the package
					ids = append(ids, p.ImportPath)
				}
				ids = append(ids, p.AppIDs...)
			}
			fmt.Fprintf(stdout, "built %s (%s/%s) with apps: %s\n", out, goos, goarch, strings.Join(ids, ", "))
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "output file, or a directory to write it in (default: the name of the first argument's directory, with .wasm for --target wasm)")
	c.Flags().StringVar(&backendList, "backends", "embedded", "backends the native binary links: embedded is always there; add dapr (embedded,dapr: go-sdk and gRPC, about 5 MB more) to run it beside a Dapr sidecar (roam dist links it by default), and otlp to link OpenTelemetry tracing (configured by OTEL_*; dapr links it too)")
	c.Flags().StringVar(&target, "target", "native", "native, wasm (a wasip1 module of one app), or GOOS/GOARCH such as linux/arm64")
	return c
}

// outputPath is where roam build writes: -o, or in the directory -o names
// (an existing one, or one written with a trailing slash, as go build
// -o takes it), a file named after the first argument's directory. That
// is the current directory's name for ".", and the last element of an
// import path; before, "." gave "app" (and "..wasm" for --target wasm),
// "./..." a file named "...", and -o DIR left a file named after the
// generated main in DIR.
func outputPath(o, arg, ext string) (string, error) {
	name := strings.TrimSuffix(strings.TrimSuffix(arg, "/..."), "...")
	if abs, err := filepath.Abs(name); err == nil && (strings.HasPrefix(name, ".") || filepath.IsAbs(name) || isDir(name)) {
		name = abs
	}
	name = path.Base(filepath.ToSlash(filepath.Clean(name)))
	if name == "." || name == "/" || name == ".." || name == "" {
		name = "app"
	}
	name += ext
	switch {
	case o == "":
		return name, nil
	case strings.HasSuffix(o, "/") || strings.HasSuffix(o, string(filepath.Separator)):
		if err := os.MkdirAll(o, 0o755); err != nil {
			return "", err
		}
		return filepath.Join(o, name), nil
	case isDir(o):
		return filepath.Join(o, name), nil
	}
	return o, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print roam's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(stdout, "roam %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

func versionString() string { return cli.Version(version) }
