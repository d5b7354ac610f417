package host

// /metrics on a port of its own (--metrics-port): a NetworkPolicy can then
// admit the metrics scraper to /metrics alone, where on the serving port it
// reached the apps' methods and the state sync API as well.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roam-dev/roam/sdk"
)

// ListenMetrics opens the listener of --metrics-port, as Listen opens the
// serving port's.
func ListenMetrics(addr string, port int) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("--metrics-port %d on %s is in use: stop the process holding it, or pass --metrics-port with another number", port, addr)
		}
		return nil, fmt.Errorf("--metrics-port: listen on %s:%d: %w", addr, port, err)
	}
	return ln, nil
}

// StartMetrics serves /metrics, and nothing else, on ln in the background
// until Shutdown, and makes the server's own port answer 404 to /metrics
// from then on. Its http.Server has the main one's timeouts and header cap;
// the channel receives Serve's result. ServeUntilDone calls it when
// ServeOptions.Metrics is set.
func (s *Server) StartMetrics(ln net.Listener) <-chan error {
	scrape := promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", scrape)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, sdk.Errorf(sdk.InvalidArgument, "method %s not allowed on %s: it takes GET", r.Method, r.URL.Path))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, sdk.Errorf(sdk.NotFound, "no route %s: this port serves /metrics only", r.URL.Path))
	})
	srv := s.newHTTPServer(mux)
	s.mu.Lock()
	s.metricsHTTP = srv
	s.mu.Unlock()
	s.metricsElsewhere.Store(true)
	return serveInBackground(srv, ln)
}

// metricsNotHere answers /metrics on the serving port once StartMetrics
// serves it elsewhere.
func (s *Server) metricsNotHere(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, sdk.Errorf(sdk.NotFound, "no route %s on this port: metrics are served on the metrics port (--metrics-port)", r.URL.Path))
}

// shutdownMetrics stops the metrics server, if any: a scrape in flight
// gets cutoffWait to finish.
func shutdownMetrics(srv *http.Server) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cutoffWait)
	defer cancel()
	if srv.Shutdown(ctx) != nil {
		srv.Close()
	}
}

// closeMetrics closes the metrics server at once, if any.
func (s *Server) closeMetrics() {
	s.mu.RLock()
	srv := s.metricsHTTP
	s.mu.RUnlock()
	if srv != nil {
		srv.Close()
	}
}
