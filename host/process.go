package host

// The parts of a host process that do not depend on how apps run, shared by
// the native host's Run and the edge host's Run.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/roam-dev/roam/backend"
)

// NewLogger returns a host process's logger: text or JSON records on w at
// or above level, behind a bounded asynchronous pipeline. Close the
// returned handler at exit to flush it.
func NewLogger(level, format string, w io.Writer) (*slog.Logger, *AsyncHandler, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	var base slog.Handler
	ho := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		base = slog.NewJSONHandler(w, ho)
	} else {
		base = slog.NewTextHandler(w, ho)
	}
	logs := NewAsyncHandler(base, 4096)
	return slog.New(logs), logs, nil
}

// LoadDataConfig reads the optional config.json ({"key": "value"}) and
// secrets.json ({"store": {"key": "value"}}) of a data directory, the
// embedded counterparts of Dapr's configuration and local-file secret stores.
func LoadDataConfig(dir string) (map[string]string, map[string]map[string]string, error) {
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

// Listen opens a host's TCP listener, saying what to do about a port in use.
func Listen(addr string, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("port %d on %s is in use: stop the process holding it, or pass --port with another number (--port 0 picks a free one)", port, addr)
		}
		return nil, fmt.Errorf("listen on %s:%d: %w", addr, port, err)
	}
	return ln, nil
}

// ServeOptions describe what ServeUntilDone prints and how it shuts down.
type ServeOptions struct {
	Stdout  io.Writer // the human-facing start-up lines
	Start   time.Time // when the process started, for the "ready in" line
	DataDir string
	Grace   time.Duration // how long in-flight requests get at shutdown
	Logger  *slog.Logger
	// OnReady, when set, runs once the host serves and has printed its
	// ready line.
	OnReady func()
}

// ServeUntilDone announces srv's apps on b (when b is a
// backend.Announcer), serves srv on ln, prints the start-up lines, and shuts
// down gracefully when ctx is done. It closes ln; the caller closes b.
func ServeUntilDone(ctx context.Context, srv *Server, b backend.Backend, ln net.Listener, o ServeOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	baseURL := "http://" + ln.Addr().String()
	if an, ok := b.(backend.Announcer); ok {
		withdraw, err := an.Announce(srv.AppIDs(), baseURL)
		if err != nil {
			ln.Close()
			return err
		}
		defer withdraw()
	}

	errc := srv.Start(ln)

	if b.Name() == "embedded" {
		fmt.Fprintf(o.Stdout, "roam: backend %s, data in %s\n", b.Name(), o.DataDir)
	} else {
		fmt.Fprintf(o.Stdout, "roam: backend %s\n", b.Name()) // its data lives behind the sidecar
	}
	for _, id := range srv.AppIDs() {
		fmt.Fprintf(o.Stdout, "roam: app %-10s %s/v1/apps/%s/methods/{method}\n", id, baseURL, id)
	}
	if srv.opts.Web != nil {
		fmt.Fprintf(o.Stdout, "roam: page %s/web/\n", baseURL)
	}
	fmt.Fprintf(o.Stdout, "roam: ready on %s in %s (metrics %s/metrics)\n", baseURL, time.Since(o.Start).Round(time.Microsecond), baseURL)
	if o.OnReady != nil {
		o.OnReady()
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", o.Grace)
	sctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: in-flight requests cut off", "err", err)
	}
	return nil
}
