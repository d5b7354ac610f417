package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

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
	root.AddCommand(newRunCmd(stdout, stderr), newBuildCmd(stdout, stderr), newEdgeCmd(stdout, stderr), newDistCmd(stdout, stderr), newVersionCmd(stdout))
	root.AddCommand(newOperatorCmd(stdout, stderr))
	root.AddCommand(newManifestsCmd(stdout, stderr))
	return root
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var hf host.Flags
	var web bool
	c := &cobra.Command{
		Use:   "run [packages or directories]",
		Short: "Build the apps found under the given directories and run them on the embedded backend",
		Long: `run builds every Roam app found in the given packages (a directory means
everything below it) into one native host and starts it. State and events
live in --data-dir; nothing else is needed: no Docker, no sidecar.

For the browser host, run also builds each app as a wasm module and serves
the modules at /web/modules/{app}.wasm, and the page in a web/ directory
beside the apps (examples/shop/web) at /web/, with the state sync API on
and CORS open to http://127.0.0.1:* (--web=false, --state-api=false and
--cors-origins change that).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
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
				backends = append(backends, "dapr")
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
			// Replace this process with the host, so that signals, exit
			// status and process supervision reach it directly.
			return syscall.Exec(bin, append([]string{"roam-host"}, hostArgs...), os.Environ())
		},
	}
	cli.RegisterHostFlags(c, &hf)
	// roam run is for development: open to pages served from this machine.
	hf.CORSOrigins, hf.StateAPI = "http://127.0.0.1:*", true
	c.Flags().Lookup("cors-origins").DefValue = hf.CORSOrigins
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
			_, err := build.Wasm(ctx, build.Options{Patterns: []string{p.ImportPath}, Out: tmp, Release: true, Stdout: stderr})
			if err == nil {
				err = os.Rename(tmp, out)
			}
			if err != nil {
				os.Remove(tmp)
				fmt.Fprintf(stderr, "roam: %s does not build as a wasm module, so browsers cannot run it: %v\n", p.ImportPath, err)
			}
		}()
	}
	wg.Wait()
	a := []string{"--web-modules", dir}
	for _, arg := range args {
		page, err := filepath.Abs(filepath.Join(arg, "web"))
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			if target == "wasm" {
				if out == "" {
					out = filepath.Base(filepath.Clean(args[0])) + ".wasm"
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
			if !ok {
				return fmt.Errorf("--target %q: use native or GOOS/GOARCH such as linux/arm64", target)
			}
			if out == "" {
				out = filepath.Base(filepath.Clean(args[0]))
				if out == "." || out == "/" {
					out = "app"
				}
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
	c.Flags().StringVarP(&out, "output", "o", "", "output file (default: the directory's name)")
	c.Flags().StringVar(&backendList, "backends", "embedded", "backends the native binary links: embedded is always there; add dapr (embedded,dapr: go-sdk and gRPC, about 5 MB more) to run it beside a Dapr sidecar (roam dist links it by default), and otlp to link OpenTelemetry tracing (configured by OTEL_*; dapr links it too)")
	c.Flags().StringVar(&target, "target", "native", "native, wasm (a wasip1 module of one app), or GOOS/GOARCH such as linux/arm64")
	return c
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print roam's version",
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(stdout, "roam %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

func versionString() string { return cli.Version(version) }
