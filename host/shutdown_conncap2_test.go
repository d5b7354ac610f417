package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
)

// TestMaxConnectionsShutdownAnswers: with a cap of 1, one connection busy
// (a request's headers half sent, so the server holds it) and a second
// client waiting for the slot with its whole request sent, closing the
// server at shutdown answers the waiting client with a 503, Connection:
// close and the hosts' JSON error body, then closes it. It used to be
// closed with nothing written: a reset, with a request sent.
func TestMaxConnectionsShutdownAnswers(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	s := NewServer(b, Options{MaxConnections: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := s.Start(ln)
	addr := ln.Addr().String()

	busy := dial(t, addr)
	if _, err := io.WriteString(busy, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil { // no blank line: in a request
		t.Fatal(err)
	}
	waitOpen(t, s, 1)
	waiting := dial(t, addr)
	if _, err := io.WriteString(waiting, "POST /v1/apps/a/methods/M HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, "roam_http_connections_full_total", 1) // accepted, waiting for the slot

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s.Shutdown(ctx) // closes the listener; gives up on the busy connection
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}

	// The reply, then the end of the stream (not a reset): the server
	// closes the connection after it.
	waiting.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(waiting)
	if err != nil {
		t.Fatalf("the waiting client read %q, then %v; want a 503, then EOF (the connection was closed unanswered)", raw, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		t.Fatalf("the waiting client read %q: %v, want a 503", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the 503's body: %v", err)
	}
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Proto != "HTTP/1.1" || !resp.Close ||
		!bytes.Contains(head, []byte("\r\nConnection: close")) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("the waiting client got %q; want HTTP/1.1 503 with Connection: close, JSON", head)
	}
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Code != "Unavailable" || eb.Message == "" {
		t.Errorf("503 body %q: want the JSON error body, code Unavailable", body)
	}
	if err := DecodeError(resp.StatusCode, body); err == nil || err.Error() != eb.Message {
		t.Errorf("DecodeError: %v", err)
	}
}
