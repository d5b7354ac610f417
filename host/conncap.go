package host

// The connection cap (Options.MaxConnections, --max-connections): a
// Server's listener keeps at most so many client connections open. Without
// it a client could open connections without end, each held up to
// ReadHeaderTimeout before its first request and IdleTimeout between
// requests, until the process ran out of file descriptors, and then of
// memory.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roam-dev/roam/sdk"
)

// defaultMaxConnections is the cap when Options.MaxConnections is 0:
// 10,000, or less when the open-file limit leaves less than that beside
// what the rest of the process needs.
//
// Every connection is a file descriptor, and so is everything else the
// process opens: the embedded backend's database files, the connections to
// a Dapr sidecar and to an OTLP collector, the edge host's module and cache
// files. Out of descriptors, all of those fail, not only new clients; so
// the cap leaves a quarter of the limit, up to 1,024, to the rest. Go
// raises the soft limit to the hard one when the process starts (since Go
// 1.19), so the limit read here is usually the hard one, which is large on
// common Linux systems and containers (524,288 or more): there the limit
// does not bind and 10,000 does. 10,000 bounds memory: a
// connection idle between requests, or yet to send one, holds about 17 KiB
// of this server's (its goroutine's stack, 4 KiB read and write buffers,
// net/http's state: BenchmarkIdleConnectionMemory), so 10,000 of them are
// about 170 MiB, where an unbounded count grows until the process dies.
// That is far more connections than one host's apps serve at once, and an
// operator with less memory to spare, or more clients, sets the flag.
func defaultMaxConnections() int {
	const fixed = 10_000
	limit, ok := openFileLimit()
	if !ok || limit >= fixed+1024 {
		return fixed
	}
	return max(1, int(limit-min(limit/4, 1024)))
}

// connCap bounds the connections a Server has open. Each one takes a slot
// when it is accepted and gives it back when it closes. A client arriving
// while every slot is taken is accepted from the kernel and held,
// unanswered, until a slot frees; the clients after it wait in the
// listen backlog, as behind golang.org/x/net/netutil.LimitListener. If
// the listener closes first (shutdown), it is answered 503 and closed
// (refuseAtShutdown).
//
// Unlike LimitListener, the arrival does not wait on connections that
// merely sit idle between requests, which could hold every slot for
// IdleTimeout (2 minutes): HTTP/1.1 clients and browsers keep connections
// open after a request, so the cap would be reached by ordinary use, not
// only by an attack. A waiting arrival closes the connection idle longest
// (near enough: see closeIdlest), as nginx does when it runs out of
// connections. Closing an idle keep-alive connection is what IdleTimeout
// does anyway, and clients expect it. Connections that have not yet sent a
// request, or are in one, are left alone: ReadHeaderTimeout and the
// request's deadlines end those. (The host does not link x/net either, and
// LimitListener's connections hide CloseWrite from net/http: see capConn.)
type connCap struct {
	slots chan struct{} // one token per open connection
	// idled wakes a waiting arrival when a connection goes idle; waiters
	// counts the arrivals waiting, so that the request path signals only
	// when one is.
	idled   chan struct{}
	waiters atomic.Int32
	epoch   time.Time // idle times are monotonic offsets from it

	mu    sync.Mutex
	conns map[*capConn]struct{} // the open ones, for closeIdlest

	full, evicted atomic.Uint64
	lastWarn      atomic.Int64 // unix nanoseconds of the last "cap reached" warning
	log           *slog.Logger
}

// newConnCap returns a cap of max connections, with its collectors on m's
// registry.
func newConnCap(max int, m *Metrics, log *slog.Logger) *connCap {
	cc := &connCap{
		slots: make(chan struct{}, max),
		idled: make(chan struct{}, 1),
		epoch: time.Now(),
		conns: map[*capConn]struct{}{},
		log:   log,
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roam_http_connections_open", Help: "Client connections open on the host's HTTP server.",
		}, func() float64 { return float64(len(cc.slots)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roam_http_connections_max", Help: "The most client connections the host's HTTP server keeps open (--max-connections).",
		}, func() float64 { return float64(cap(cc.slots)) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "roam_http_connections_full_total", Help: "Client connections that arrived while roam_http_connections_max were open, and waited for one to close (or closed an idle one).",
		}, func() float64 { return float64(cc.full.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "roam_http_connections_idle_closed_total", Help: "Idle keep-alive client connections closed to make room for a new one while roam_http_connections_max were open.",
		}, func() float64 { return float64(cc.evicted.Load()) }),
	} {
		// Two servers may share one Metrics (tests); the first one's
		// connections are the ones counted.
		m.Registry.Register(c)
	}
	return cc
}

// listener returns ln under the cap.
func (cc *connCap) listener(ln net.Listener) net.Listener {
	return &capListener{Listener: ln, cc: cc, done: make(chan struct{})}
}

// acquire takes a slot, waiting (and closing idle connections) while there
// is none, unless done closes first.
func (cc *connCap) acquire(done <-chan struct{}) bool {
	select {
	case cc.slots <- struct{}{}:
		return true
	default:
	}
	cc.full.Add(1)
	cc.warnFull()
	cc.waiters.Add(1)
	defer cc.waiters.Add(-1)
	for {
		cc.closeIdlest()
		select {
		case cc.slots <- struct{}{}:
			return true
		case <-cc.idled:
			// A connection went idle: close it on the next round, unless
			// a slot freed meanwhile.
		case <-done:
			return false
		}
	}
}

// idleSample is how many idle connections closeIdlest compares.
const idleSample = 64

// closeIdlest closes the connection idle longest, if one is idle. Closing
// it gives its slot back.
//
// It is the longest idle of the first idleSample idle connections met in
// the map, whose iteration starts at a random place: close to the longest
// idle of all (as Redis approximates LRU), without a walk of all 10,000
// under the lock on every arrival while the server is full; and no list to
// keep in order, which would take the lock twice a request.
func (cc *connCap) closeIdlest() {
	for {
		var oldest *capConn
		var since int64
		seen := 0
		cc.mu.Lock()
		for c := range cc.conns {
			t := c.idle.Load()
			if t <= 0 {
				continue
			}
			if oldest == nil || t < since {
				oldest, since = c, t
			}
			if seen++; seen == idleSample {
				break
			}
		}
		cc.mu.Unlock()
		if oldest == nil {
			return
		}
		// Unless it turned active since (a request came in), it is ours
		// to close.
		if oldest.idle.CompareAndSwap(since, -1) {
			cc.evicted.Add(1)
			oldest.Close()
			return
		}
	}
}

// warnFull logs that the cap was reached, at most once a minute.
func (cc *connCap) warnFull() {
	now := time.Now().UnixNano()
	last := cc.lastWarn.Load()
	if now-last < int64(time.Minute) || !cc.lastWarn.CompareAndSwap(last, now) {
		return
	}
	cc.log.Warn("connection cap reached: new clients wait for a connection to close, and idle keep-alive ones are closed to make room (see roam_http_connections_*)",
		"max_connections", cap(cc.slots))
}

// connState is the http.Server's ConnState hook: it tracks which
// connections are idle between requests, and since when. It runs twice a
// request, so it takes no lock.
func (cc *connCap) connState(nc net.Conn, st http.ConnState) {
	c, ok := nc.(*capConn)
	if !ok {
		return
	}
	if st != http.StateIdle {
		c.idle.Store(0)
		return
	}
	// +1: an idle time is never 0, which means not idle.
	c.idle.Store(int64(time.Since(cc.epoch)) + 1)
	if cc.waiters.Load() > 0 {
		select {
		case cc.idled <- struct{}{}:
		default:
		}
	}
}

// capListener is a listener under a connCap.
type capListener struct {
	net.Listener
	cc        *connCap
	done      chan struct{} // closed by Close: a waiting Accept gives up
	closeOnce sync.Once
}

// Accept accepts a connection and then waits for a slot for it. Accepting
// first means that idle connections are closed only for a client that
// actually arrived: the server calls Accept again as soon as it returns, and
// a slot taken before accepting would close one each time the count
// reached the cap, even with no one waiting.
func (l *capListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.cc.acquire(l.done) {
		refuseAtShutdown(c)
		return nil, net.ErrClosed
	}
	cc := &capConn{Conn: c, cc: l.cc}
	l.cc.mu.Lock()
	l.cc.conns[cc] = struct{}{}
	l.cc.mu.Unlock()
	return cc, nil
}

// shutdownReply is what a client still waiting for a slot when the
// listener closes is told: a 503 with the JSON error body of every other
// reply (writeError's), and that the connection closes. It is written
// before the client's request is read, so it answers whatever the client
// sent, as a proxy's 503 would.
var shutdownReply = func() []byte {
	body := EncodeError(sdk.NewError(sdk.Unavailable, "the host is shutting down: it stopped accepting requests before a connection slot came free (--max-connections); retry"))
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}()

// refuseLinger bounds how long a refused connection is kept after its
// reply, for the client to read it.
const refuseLinger = time.Second

// refuseAtShutdown answers c, a connection accepted but given no slot
// before the listener closed, with shutdownReply, and closes it. It was
// closed unanswered, which a client sees as a reset, not as a server going
// away: a 503 with Connection: close is what it can retry elsewhere on.
//
// The reply is written at once (a fresh connection's send buffer takes
// it), then the write side is closed, so that the client sees the reply
// end. Closing the connection outright with the client's request unread
// would reset it, and a reset can discard the reply before the client
// reads it (golang.org/issue/3595, as net/http's closeWriteAndWait): so
// what the client sends is read and discarded, in the background, until
// it closes its side or refuseLinger passes. Accept, and so the server's
// Serve, returns meanwhile.
func refuseAtShutdown(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(refuseLinger))
	if _, err := c.Write(shutdownReply); err != nil {
		c.Close()
		return
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		c.Close()
		return
	}
	go func() {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(refuseLinger))
		io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	}()
}

func (l *capListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// capConn is a connection holding a slot until it closes.
type capConn struct {
	net.Conn
	cc *connCap
	// idle is when the connection went idle (see connState); 0 while it is
	// not idle, and -1 once closeIdlest picked it.
	idle    atomic.Int64
	release sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.release.Do(func() {
		c.cc.mu.Lock()
		delete(c.cc.conns, c)
		c.cc.mu.Unlock()
		<-c.cc.slots
	})
	return err
}

// CloseWrite and ReadFrom pass on what net/http looks for on a
// connection, which a wrapper would otherwise hide (LimitListener's does):
// CloseWrite sends the FIN that tells a client the reply is complete before
// a connection closed with part of a request unread (a 413 with the body
// still arriving) is reset (golang.org/issue/3595), and ReadFrom lets
// replies of files use sendfile.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *capConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
