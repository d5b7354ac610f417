package native

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/hostbackend"
	"github.com/roam-dev/roam/sdk"
)

// Main runs the registered apps as a native host and exits. A generated main
// package calls it; see the package doc.
//
// SIGINT or SIGTERM shuts the host down gracefully (host.ServeUntilDone);
// a second one ends it at once, with status 130 or 143
// (host.NotifyContext). The exit status is 0 after a clean shutdown, and 1
// when the shutdown grace ran out with requests in flight or the backend
// did not close cleanly (a delivery's handler left running: see
// host.CloseBackend). A flag that cannot work (host.Flags.Check) exits 1
// before the backend is opened, with the message on stderr, as roam run
// does for it.
func Main() {
	ctx, stop := host.NotifyContext(context.Background())
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "roam:", err)
		}
		os.Exit(1)
	}
}

// Config is the native host's configuration, from flags.
type Config struct {
	host.Flags
	DefaultApp   string
	Apps         string
	PrintVersion bool
	// Browser hosts (web/): see host.Options.
	WebDir     string // the page, served under /web/
	WebModules string // a directory of {app}.wasm, served under /web/modules/
}

// ParseFlags parses the host's command line into a Config.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("roam-host", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Flags.Register(fs)
	fs.StringVar(&c.DefaultApp, "app-id", "", "app that receives Dapr app-channel calls (/{method}); default: the only app")
	fs.StringVar(&c.Apps, "apps", "", "comma-separated app ids to run (default: all registered); events are routed per process: subscribers in another process on the same --data-dir do not receive them (they wait in the publisher's unrouted log; see roam_pubsub_unrouted_events)")
	fs.BoolVar(&c.PrintVersion, "version", false, "print the version and commit this binary was built from, and exit")
	fs.StringVar(&c.WebDir, "web-dir", "", "directory of a web page to serve under /web/ (the browser host's page)")
	fs.StringVar(&c.WebModules, "web-modules", "", "directory of {app}.wasm modules to serve under /web/modules/")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := host.CheckCORSOrigins(c.Origins()); err != nil {
		return c, fmt.Errorf("--cors-origins: %w", err)
	}
	return c, nil
}

// webAssets reads --web-dir and --web-modules.
func (c Config) webAssets() (*host.WebAssets, error) {
	if c.WebDir == "" && c.WebModules == "" {
		return nil, nil
	}
	w := &host.WebAssets{Modules: map[string][]byte{}}
	if c.WebDir != "" {
		if fi, err := os.Stat(c.WebDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--web-dir %s: not a directory", c.WebDir)
		}
		w.Page = os.DirFS(c.WebDir)
	}
	if c.WebModules != "" {
		files, err := filepath.Glob(filepath.Join(c.WebModules, "*.wasm"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("--web-modules: %w", err)
			}
			w.Modules[strings.TrimSuffix(filepath.Base(f), ".wasm")] = b
		}
	}
	return w, nil
}

// Run parses args and runs the host until ctx is done. It writes the
// human-facing start-up lines to stdout and logs to stderr. After ctx is
// done it returns nil only if the shutdown was clean: the requests in
// flight finished within --shutdown-grace and the backend closed.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	c, err := ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.PrintVersion {
		fmt.Fprintf(stdout, "%s %s %s\n", filepath.Base(os.Args[0]), Version, Commit)
		return nil
	}
	// Settings that cannot work are refused before the backend is opened,
	// as roam run refuses them before it builds this binary; Main reports
	// them as roam run does (exit 1, "roam: " and the message on stderr).
	if err := c.Check(); err != nil {
		return err
	}
	log, logs, err := host.NewLogger(c.LogLevel, c.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer logs.Close()

	apps, err := selectApps(c.Apps)
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	cfg, secrets, err := host.LoadDataConfig(dataDir)
	if err != nil {
		return err
	}
	metrics := host.NewMetrics(logs.Dropped)
	tracing, err := host.TracingFromEnv(ctx, nil, log)
	if err != nil {
		return err
	}
	defer host.FlushTracing(tracing, log)
	ids := make([]string, len(apps))
	for i, a := range apps {
		ids[i] = a.ID()
	}
	b, err := hostbackend.Open(ctx, hostbackend.Config{
		Backend: c.Backend, DataDir: dataDir, Config: cfg, Secrets: secrets, AppIDs: ids, Logger: log,
		OnDeliver: metrics.OnDeliver, Tracing: tracing != nil,
	})
	if err != nil {
		return err
	}
	// Last, after the server has stopped: the backend's Close waits for
	// the deliveries in flight, whose spans and logs the deferred flushes
	// above then export. A Close that fails, does not return in time or
	// leaves a handler running makes the exit non-zero (CloseBackend).
	var srv *host.Server
	defer func() {
		if cerr := host.CloseBackend(b, srv, host.BackendCloseWait); cerr != nil {
			log.Error("backend not closed cleanly", "err", cerr)
			err = errors.Join(err, cerr)
		}
	}()
	if sc, ok := b.(interface{ SidecarAppID() string }); ok && c.DefaultApp == "" {
		// The sidecar's app channel reaches the app it is named after.
		for _, id := range ids {
			if id == sc.SidecarAppID() {
				c.DefaultApp = id
			}
		}
	}

	web, err := c.webAssets()
	if err != nil {
		return err
	}
	srv, err = NewServer(b, apps, host.Options{
		MaxBodyBytes: c.MaxBodyBytes, RequestTimeout: c.RequestTimeout, Pprof: c.Pprof,
		DefaultApp: c.DefaultApp, Logger: log, Metrics: metrics, Tracing: tracing,
		CORSOrigins: c.Origins(), StateAPI: c.StateAPI, StateAPIToken: os.Getenv(host.EnvStateAPIToken), Web: web, MaxConnections: c.MaxConnections,
	})
	if err != nil {
		return err
	}

	ln, err := host.Listen(c.Addr, c.Port)
	if err != nil {
		return err
	}
	var mln net.Listener // --metrics-port's, when set
	if c.MetricsPort != 0 {
		if mln, err = host.ListenMetrics(c.Addr, c.MetricsPort); err != nil {
			ln.Close()
			return err
		}
	}
	return host.ServeUntilDone(ctx, srv, b, ln, host.ServeOptions{
		Stdout: stdout, Start: start, DataDir: dataDir, Grace: c.ShutdownGrace, Drain: c.ShutdownDrain, Logger: log,
		Metrics: mln,
	})
}

// NewServer sets up apps on b and returns a server for them with deliveries
// started. The caller serves it and closes b.
func NewServer(b backend.Backend, apps []*sdk.App, opts host.Options) (*host.Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := host.NewServer(b, opts)
	for _, a := range apps {
		app, err := Setup(a, b, srv, opts.Logger)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", a.ID(), err)
		}
		if err := srv.Add(app); err != nil {
			return nil, err
		}
	}
	if err := srv.StartDeliveries(); err != nil {
		return nil, err
	}
	return srv, nil
}

func selectApps(only string) ([]*sdk.App, error) {
	all := sdk.Apps()
	if len(all) == 0 {
		return nil, errors.New("no apps registered: import at least one package that declares one with sdk.NewApp (roam run does this for the packages you name)")
	}
	if only == "" {
		return all, nil
	}
	byID := map[string]*sdk.App{}
	var ids []string
	for _, a := range all {
		byID[a.ID()] = a
		ids = append(ids, a.ID())
	}
	var out []*sdk.App
	for _, id := range strings.Split(only, ",") {
		a, ok := byID[strings.TrimSpace(id)]
		if !ok {
			return nil, fmt.Errorf("--apps: no app %q in this binary; it has: %s", id, strings.Join(ids, ", "))
		}
		out = append(out, a)
	}
	return out, nil
}

// Version and Commit are stamped by `roam build` (-ldflags -X).
var (
	Version = "dev"
	Commit  = ""
)
