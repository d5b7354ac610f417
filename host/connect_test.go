package host

import (
	"bufio"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/syncbuf"
)

// TestConnectOverConnection sends CONNECTs over a real connection, where
// net/http's recovery would hide a panic by closing it: every CONNECT is
// refused with the JSON error, the server logs no panic, and the
// connection stays usable. Before refuseConnect, CONNECT
// /v1/apps//methods/Get panicked in r.PathValue.
func TestConnectOverConnection(t *testing.T) {
	s := newRouteServer(t, nil)
	ts := httptest.NewUnstartedServer(s.Handler())
	var logged syncbuf.Buffer
	ts.Config.ErrorLog = log.New(&logged, "", 0)
	ts.Start()
	defer ts.Close()

	targets := append([]string{
		"/v1/apps//methods/Get",
		"example.com:443", // the authority form, as a proxy client sends it
		"/v1/apps//methods/Nope",
		"/v1/apps//state/statestore/bulk",
		"/v1/apps//publish/ps/topic",
		"//Get",
		"//",
	}, routeTargets...)
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	roundTrip := func(verb, target string) *http.Response {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, verb+" "+target+" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
			t.Fatalf("%s %q: %v", verb, target, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			first, _, _ := strings.Cut(logged.String(), "\n")
			t.Fatalf("%s %q: %v (the connection was closed: a panic? server log: %q)", verb, target, err, first)
		}
		return resp
	}
	for _, target := range targets {
		if strings.ContainsAny(target, "#") || strings.HasPrefix(target, "http://") {
			continue // not a request target the client sends as is
		}
		resp := roundTrip(http.MethodConnect, target)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := connectRefusal(resp.StatusCode, resp.Header, body); err != nil {
			t.Fatalf("CONNECT %q: %v", target, err)
		}
		// The same connection still serves.
		resp = roundTrip(http.MethodGet, "/healthz")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz after CONNECT %q: %d", target, resp.StatusCode)
		}
	}
	if strings.Contains(logged.String(), "panic") {
		t.Fatalf("the server logged a panic:\n%s", logged.String())
	}
}
