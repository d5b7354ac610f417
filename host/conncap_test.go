package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
)

// startCapped starts a server of opts on a free port and returns it with
// its address; the test shuts it down.
func startCapped(t *testing.T, opts Options) (*Server, string) {
	t.Helper()
	b := memory.New(memory.Options{})
	t.Cleanup(func() { b.Close() })
	s := NewServer(b, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := s.Start(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-errc
	})
	return s, ln.Addr().String()
}

// connMetric returns the value of one of the roam_http_connections_*
// families, and whether it is registered.
func connMetric(t *testing.T, s *Server, name string) (float64, bool) {
	t.Helper()
	fams, err := s.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// waitMetric waits, generously, until connMetric(name) is want.
func waitMetric(t *testing.T, s *Server, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := connMetric(t, s, name)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOpen waits until n connections hold a slot.
func waitOpen(t *testing.T, s *Server, n int) {
	t.Helper()
	waitMetric(t, s, "roam_http_connections_open", float64(n))
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// getHealthz sends GET /healthz on a connection of its own and reports the
// status, or the error, on the returned channel.
func getHealthz(addr string) <-chan error {
	done := make(chan error, 1)
	go func() {
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: time.Minute}).Get("http://" + addr + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		done <- err
	}()
	return done
}

// stillOpen reports whether the server has left c open: a read finds
// nothing to read rather than the end of the stream.
func stillOpen(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestMaxConnectionsWaits: with 4 connections open that have sent nothing
// (slow or idle clients, the attack the cap is for), a 5th client is not
// served; once one of the 4 closes, it is, and the 3 others stay open.
func TestMaxConnectionsWaits(t *testing.T) {
	s, addr := startCapped(t, Options{MaxConnections: 4})
	if v, _ := connMetric(t, s, "roam_http_connections_max"); v != 4 {
		t.Fatalf("roam_http_connections_max = %v, want 4", v)
	}
	var held [4]net.Conn
	for i := range held {
		held[i] = dial(t, addr)
	}
	waitOpen(t, s, 4)

	served := getHealthz(addr)
	// Not served while the 4 stay open. A short look is enough: a server
	// without the cap answers in well under this, so a slow machine can
	// only make this pass, not fail.
	select {
	case err := <-served:
		t.Fatalf("the 5th request was answered (%v) while 4 connections were open", err)
	case <-time.After(300 * time.Millisecond):
	}
	waitMetric(t, s, "roam_http_connections_full_total", 1) // it arrived, and waits

	held[0].Close()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("the 5th request, after one connection closed: %v", err)
		}
	case <-time.After(8 * time.Second): // within the server's 10s ReadHeaderTimeout of the held ones
		t.Fatal("the 5th request was not answered after one of the 4 connections closed")
	}
	// It got the slot that closing one freed: the others were neither
	// closed to make room (they never sent a request, so they are not
	// idle) nor timed out.
	for i, c := range held[1:] {
		if !stillOpen(c) {
			t.Errorf("held connection %d was closed", i+1)
		}
	}
	if v, _ := connMetric(t, s, "roam_http_connections_idle_closed_total"); v != 0 {
		t.Errorf("roam_http_connections_idle_closed_total = %v, want 0", v)
	}
}

// TestMaxConnectionsClosesIdle: with 4 keep-alive connections idle after a
// request, a 5th client is served at once, and one of the 4, the one idle
// longest, is closed to make room; the others stay open.
func TestMaxConnectionsClosesIdle(t *testing.T) {
	s, addr := startCapped(t, Options{MaxConnections: 4})
	var idle [4]net.Conn
	for i := range idle {
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
		idle[i] = c
	}
	waitOpen(t, s, 4)

	select {
	case err := <-getHealthz(addr):
		if err != nil {
			t.Fatalf("the 5th request: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the 5th request was not answered: no idle connection was closed for it")
	}
	closed := 0
	for _, c := range idle {
		if !stillOpen(c) {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d of the 4 idle connections were closed, want 1", closed)
	}
	for name, want := range map[string]float64{"roam_http_connections_full_total": 1, "roam_http_connections_idle_closed_total": 1} {
		if v, _ := connMetric(t, s, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

// TestMaxConnectionsShutdown: a client waiting for a slot does not keep
// Shutdown from closing the listener, and is answered 503 and closed (it
// was closed unanswered: TestMaxConnectionsShutdownAnswers).
func TestMaxConnectionsShutdown(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	s := NewServer(b, Options{MaxConnections: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := s.Start(ln)
	dial(t, ln.Addr().String())
	waitOpen(t, s, 1)
	waiting := dial(t, ln.Addr().String())
	waitMetric(t, s, "roam_http_connections_full_total", 1) // accepted, waiting for a slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.Shutdown(ctx) // gives up on the held connection, which sent nothing
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second): // under ReadHeaderTimeout, which would free the slot
		t.Fatal("Serve did not return after Shutdown: Accept still waits for a slot")
	}
	waiting.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(waiting)
	if err != nil || !bytes.Equal(got, shutdownReply) {
		t.Errorf("the waiting connection: read %q, %v; want %q, then EOF", got, err, shutdownReply)
	}
}

// TestMaxConnectionsDefault: 0 takes the default, which the open-file limit
// bounds; a negative number turns the cap off.
func TestMaxConnectionsDefault(t *testing.T) {
	n := defaultMaxConnections()
	if limit, ok := openFileLimit(); ok && uint64(n) >= limit || n < 1 || n > 10_000 {
		t.Fatalf("defaultMaxConnections() = %d under an open-file limit of %d", n, limit)
	}
	b := memory.New(memory.Options{})
	defer b.Close()
	if s := NewServer(b, Options{}); s.conns == nil || cap(s.conns.slots) != n {
		t.Errorf("Options{} caps at %v, want %d", s.conns, n)
	}
	s := NewServer(b, Options{MaxConnections: -1})
	if s.conns != nil {
		t.Errorf("MaxConnections -1 caps at %d, want no cap", cap(s.conns.slots))
	}
	if _, ok := connMetric(t, s, "roam_http_connections_open"); ok {
		t.Errorf("roam_http_connections_open is registered without a cap")
	}
}

// BenchmarkIdleConnectionMemory measures what an idle keep-alive
// connection costs the server (the grounds of defaultMaxConnections), in
// B/conn: the heap and stacks of 1,000 connections idle after a request,
// less those of 1,000 plain TCP connections held by a bare listener (the
// client's side, and the descriptors, which any cap pays too).
func BenchmarkIdleConnectionMemory(b *testing.B) {
	const n = 1000
	if limit, ok := openFileLimit(); ok && limit < 4*n+100 {
		b.Skipf("open-file limit %d", limit)
	}
	inUse := func() int64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc + ms.StackInuse)
	}
	open := func(addr string, request bool) []net.Conn {
		cs := make([]net.Conn, n)
		for i := range cs {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if request {
				io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cs[i] = c
		}
		return cs
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
	}
	for b.Loop() {
		// Bare: accept and hold.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		accepted := make(chan net.Conn, n)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		before := inUse()
		cs := open(ln.Addr().String(), false)
		held := make([]net.Conn, n)
		for i := range held {
			held[i] = <-accepted
		}
		bare := inUse() - before
		closeAll(cs)
		closeAll(held)
		ln.Close()

		mb := memory.New(memory.Options{})
		s := NewServer(mb, Options{MaxConnections: 2 * n})
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		errc := s.Start(ln)
		before = inUse()
		cs = open(ln.Addr().String(), true)
		served := inUse() - before
		closeAll(cs)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.Shutdown(ctx)
		cancel()
		<-errc
		mb.Close()
		b.ReportMetric(float64(served)/n, "B/conn")
		b.ReportMetric(float64(served-bare)/n, "server-B/conn")
	}
}
