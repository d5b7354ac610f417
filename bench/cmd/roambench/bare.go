package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The bare server is the baseline of the HTTP figures: plain net/http with a
// ServeMux, routing the shop's two paths to handlers that read the request
// body and write fixed reply bytes, the very bytes the shop returned for the
// same requests. It does everything an HTTP service must and nothing Roam
// adds (request ids, JSON validation, deadlines, metrics, app logic, state).
//
// roambench runs it in a child process of its own (itself, re-executed with
// -bare-server), so that the baseline, like the shop, competes with the load
// generator for the CPU from another process.

const (
	getPath    = "/v1/apps/orders/methods/Get"
	createPath = "/v1/apps/orders/methods/Create"
)

// bareHandler serves getReply and createReply.
func bareHandler(getReply, createReply []byte) http.Handler {
	fixed := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+getPath, fixed(getReply))
	mux.Handle("POST "+createPath, fixed(createReply))
	return mux
}

// serveBare is the child process: it serves the replies in dir (get.json,
// create.json) on 127.0.0.1, prints "listening on ADDR" and runs until ctx
// is done.
func serveBare(ctx context.Context, dir string, stdout io.Writer) error {
	getReply, err1 := os.ReadFile(filepath.Join(dir, "get.json"))
	createReply, err2 := os.ReadFile(filepath.Join(dir, "create.json"))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bareHandler(getReply, createReply), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// bare is a running bare-server child.
type bare struct {
	cmd  *exec.Cmd
	URL  string
	done chan struct{}
}

// startBare re-executes this program as a bare server for the replies,
// through prefix when it is not empty (see startShop).
func startBare(prefix []string, dir string, getReply, createReply []byte) (*bare, error) {
	if err := errors.Join(
		os.WriteFile(filepath.Join(dir, "get.json"), getReply, 0o644),
		os.WriteFile(filepath.Join(dir, "create.json"), createReply, 0o644),
	); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append(append([]string(nil), prefix...), self, "-bare-server", dir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &bare{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(b.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		b.URL = "http://" + a
		return b, nil
	case <-b.done:
		cmd.Wait()
		return nil, errors.New("bare server exited before listening")
	case <-time.After(10 * time.Second):
		b.Stop()
		return nil, errors.New("bare server did not listen within 10s")
	}
}

// Pid returns the bare server's process id.
func (b *bare) Pid() int { return b.cmd.Process.Pid }

// Stop ends the bare server.
func (b *bare) Stop() {
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
	}
	b.cmd.Wait()
}
