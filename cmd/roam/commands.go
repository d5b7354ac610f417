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
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/roam-dev/roam/host/hostbackend"
	"github.com/roam-dev/roam/internal/build"
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
	return root
}

type hostFlags struct {
	addr, dataDir, logLevel, logFormat string
	port                               int
	pprof                              bool
	maxBody                            int64
	requestTimeout, shutdownGrace      time.Duration
	corsOrigins                        string
	stateAPI                           bool
}

func (h *hostFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&h.addr, "addr", "127.0.0.1", "address to listen on")
	f.IntVar(&h.port, "port", 8080, "port to listen on (0 picks a free one)")
	f.StringVar(&h.dataDir, "data-dir", ".roam", "directory for durable state, events and the local app registry")
	f.StringVar(&h.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&h.logFormat, "log-format", "text", "text or json")
	f.BoolVar(&h.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/")
	f.Int64Var(&h.maxBody, "max-body-bytes", 4<<20, "largest accepted request body")
	f.DurationVar(&h.requestTimeout, "request-timeout", 30*time.Second, "deadline of each call and delivery")
	f.DurationVar(&h.shutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests get to finish on SIGTERM")
	f.StringVar(&h.corsOrigins, "cors-origins", "", "comma-separated origins whose pages may call the host, e.g. http://127.0.0.1:* (empty: none)")
	f.BoolVar(&h.stateAPI, "state-api", false, "serve the state sync API the browser host pushes to and pulls from")
}

func (h *hostFlags) args() []string {
	a := []string{"--addr", h.addr, "--port", strconv.Itoa(h.port), "--data-dir", h.dataDir,
		"--log-level", h.logLevel, "--log-format", h.logFormat,
		"--max-body-bytes", strconv.FormatInt(h.maxBody, 10),
		"--request-timeout", h.requestTimeout.String(), "--shutdown-grace", h.shutdownGrace.String()}
	if h.pprof {
		a = append(a, "--pprof")
	}
	if h.corsOrigins != "" {
		a = append(a, "--cors-origins", h.corsOrigins)
	}
	if h.stateAPI {
		a = append(a, "--state-api")
	}
	return a
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var hf hostFlags
	var web bool
	var backendName string
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
			if name, _, err := hostbackend.Choose(backendName, os.Getenv); err != nil {
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
			hostArgs := append(hf.args(), "--backend", backendName)
			if web {
				hostArgs = append(hostArgs, webArgs(cmd.Context(), stderr, args, pkgs, filepath.Join(filepath.Dir(bin), "modules"))...)
			}
			// Replace this process with the host, so that signals, exit
			// status and process supervision reach it directly.
			return syscall.Exec(bin, append([]string{"roam-host"}, hostArgs...), os.Environ())
		},
	}
	hf.register(c)
	// roam run is for development: open to pages served from this machine.
	hf.corsOrigins, hf.stateAPI = "http://127.0.0.1:*", true
	c.Flags().Lookup("cors-origins").DefValue = hf.corsOrigins
	c.Flags().Lookup("state-api").DefValue = "true"
	c.Flags().StringVar(&backendName, "backend", "auto", "auto (dapr when DAPR_GRPC_PORT or DAPR_HTTP_PORT is set, else embedded), embedded or dapr")
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
		// The module is named after its app when the source names it with
		// a literal, else after the package's directory (the shop's apps
		// take their ids from constants named like their directories).
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
				if len(p.AppIDs) == 0 { // ids given as constants: name the package
					ids = append(ids, p.ImportPath)
				}
				ids = append(ids, p.AppIDs...)
			}
			fmt.Fprintf(stdout, "built %s (%s/%s) with apps: %s\n", out, goos, goarch, strings.Join(ids, ", "))
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "output file (default: the directory's name)")
	c.Flags().StringVar(&backendList, "backends", "embedded", "backends the native binary links: embedded is always there; add dapr (embedded,dapr: go-sdk and gRPC, about 5 MB more) to run it beside a Dapr sidecar (roam dist links it by default)")
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

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
