package main

import (
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
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
	root.AddCommand(newRunCmd(stdout, stderr), newBuildCmd(stdout, stderr), newVersionCmd(stdout))
	return root
}

type hostFlags struct {
	addr, dataDir, logLevel, logFormat string
	port                               int
	pprof                              bool
	maxBody                            int64
	requestTimeout, shutdownGrace      time.Duration
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
}

func (h *hostFlags) args() []string {
	a := []string{"--addr", h.addr, "--port", strconv.Itoa(h.port), "--data-dir", h.dataDir,
		"--log-level", h.logLevel, "--log-format", h.logFormat,
		"--max-body-bytes", strconv.FormatInt(h.maxBody, 10),
		"--request-timeout", h.requestTimeout.String(), "--shutdown-grace", h.shutdownGrace.String()}
	if h.pprof {
		a = append(a, "--pprof")
	}
	return a
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var hf hostFlags
	c := &cobra.Command{
		Use:   "run [packages or directories]",
		Short: "Build the apps found under the given directories and run them on the embedded backend",
		Long: `run builds every Roam app found in the given packages (a directory means
everything below it) into one native host and starts it. State and events
live in --data-dir; nothing else is needed: no Docker, no sidecar.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			cache, err := os.UserCacheDir()
			if err != nil {
				cache = os.TempDir()
			}
			wd, _ := os.Getwd()
			key := sha256.Sum256([]byte(wd + "\x00" + strings.Join(args, "\x00")))
			bin := filepath.Join(cache, "roam", "run", hex.EncodeToString(key[:8]), "host")
			if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "roam: building %s\n", strings.Join(args, " "))
			if _, err := build.Native(cmd.Context(), build.Options{Patterns: args, Out: bin, Stdout: stderr}); err != nil {
				return err
			}
			// Replace this process with the host, so that signals, exit
			// status and process supervision reach it directly.
			return syscall.Exec(bin, append([]string{"roam-host"}, hf.args()...), os.Environ())
		},
	}
	hf.register(c)
	return c
}

func newBuildCmd(stdout, stderr io.Writer) *cobra.Command {
	var out, target string
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
			pkgs, err := build.Native(cmd.Context(), build.Options{
				Patterns: args, Out: out, Release: true, Target: build.Target{GOOS: goos, GOARCH: goarch},
				Version: versionString(), Stdout: stderr,
			})
			if err != nil {
				return err
			}
			var ids []string
			for _, p := range pkgs {
				ids = append(ids, p.AppIDs...)
			}
			fmt.Fprintf(stdout, "built %s (%s/%s) with apps: %s\n", out, goos, goarch, strings.Join(ids, ", "))
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "output file (default: the directory's name)")
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
