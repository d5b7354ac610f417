package native

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/sdk"
)

// Main runs the registered apps as a native host and exits. A generated main
// package calls it; see the package doc.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
	Addr           string
	Port           int
	DataDir        string
	LogLevel       string
	LogFormat      string
	Pprof          bool
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	ShutdownGrace  time.Duration
	DefaultApp     string
	Apps           string
}

// ParseFlags parses the host's command line into a Config.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("roam-host", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1", "address to listen on")
	fs.IntVar(&c.Port, "port", 8080, "port to listen on (0 picks a free one)")
	fs.StringVar(&c.DataDir, "data-dir", ".roam", "directory for durable state, events and the local app registry")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 4<<20, "largest accepted request body")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 30*time.Second, "deadline of each call and delivery")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 10*time.Second, "how long in-flight requests get to finish on SIGTERM")
	fs.StringVar(&c.DefaultApp, "app-id", "", "app that receives Dapr app-channel calls (/{method}); default: the only app")
	fs.StringVar(&c.Apps, "apps", "", "comma-separated app ids to run (default: all registered)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

// Run parses args and runs the host until ctx is done. It writes the
// human-facing start-up lines to stdout and logs to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	start := time.Now()
	c, err := ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	var base slog.Handler
	ho := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		base = slog.NewJSONHandler(stderr, ho)
	} else {
		base = slog.NewTextHandler(stderr, ho)
	}
	logs := host.NewAsyncHandler(base, 4096)
	defer logs.Close()
	log := slog.New(logs)

	apps, err := selectApps(c.Apps)
	if err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	cfg, secrets, err := loadConfig(dataDir)
	if err != nil {
		return err
	}
	metrics := host.NewMetrics(logs.Dropped)
	b, err := embedded.Open(embedded.Options{
		Dir: dataDir, Config: cfg, Secrets: secrets, Logger: log,
		OnDeliver: func(sub backend.Subscription, outcome string) {
			if outcome == "deadletter" {
				metrics.Delivered(sub, outcome)
			}
		},
	})
	if err != nil {
		return err
	}
	defer b.Close()
	// Open (and lock) the apps' data files now: a second host of the same
	// app on this data directory must fail here, not report ready, announce
	// itself in the registry and then fail every call on the lock.
	ids := make([]string, len(apps))
	for i, a := range apps {
		ids[i] = a.ID()
	}
	if err := b.OpenApps(ids...); err != nil {
		return err
	}

	srv, err := NewServer(b, apps, host.Options{
		MaxBodyBytes: c.MaxBodyBytes, RequestTimeout: c.RequestTimeout, Pprof: c.Pprof,
		DefaultApp: c.DefaultApp, Logger: log, Metrics: metrics,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(c.Addr, strconv.Itoa(c.Port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %d on %s is in use: stop the process holding it, or pass --port with another number (--port 0 picks a free one)", c.Port, c.Addr)
		}
		return fmt.Errorf("listen on %s:%d: %w", c.Addr, c.Port, err)
	}
	baseURL := "http://" + ln.Addr().String()
	if an, ok := backend.Backend(b).(backend.Announcer); ok {
		withdraw, err := an.Announce(srv.AppIDs(), baseURL)
		if err != nil {
			ln.Close()
			return err
		}
		defer withdraw()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	fmt.Fprintf(stdout, "roam: backend %s, data in %s\n", b.Name(), dataDir)
	for _, id := range srv.AppIDs() {
		fmt.Fprintf(stdout, "roam: app %-10s %s/v1/apps/%s/methods/{method}\n", id, baseURL, id)
	}
	fmt.Fprintf(stdout, "roam: ready on %s in %s (metrics %s/metrics)\n", baseURL, time.Since(start).Round(time.Microsecond), baseURL)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", c.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: in-flight requests cut off", "err", err)
	}
	return nil
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

// loadConfig reads the optional config.json ({"key": "value"}) and
// secrets.json ({"store": {"key": "value"}}) of the data directory, the
// embedded counterparts of Dapr's configuration and local-file secret stores.
func loadConfig(dir string) (map[string]string, map[string]map[string]string, error) {
	cfg := map[string]string{}
	secrets := map[string]map[string]string{}
	for name, v := range map[string]any{"config.json": &cfg, "secrets.json": &secrets} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
	}
	return cfg, secrets, nil
}

// Version and Commit are stamped by `roam build` (-ldflags -X).
var (
	Version = "dev"
	Commit  = ""
)
