package embedded

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// child is this test binary run again as a helper process: only the test
// named run, with env added to its environment (the tests' children read
// their settings, a data dir first, from there).
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // nil unless asked for
	stdout io.ReadCloser
	stderr bytes.Buffer
}

// startChild starts the child; withStdin gives it a pipe the parent closes
// to tell it to stop.
func startChild(t *testing.T, run string, withStdin bool, env ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stderr = &c.stderr
	var err error
	if withStdin {
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if c.stdout, err = c.cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// openInChild opens the backend of o in dir, in a child, exiting 2 with
// "ERR ..." on stdout if it cannot. line writes a line to stdout, whole
// and unbuffered, so that the parent reads it even if the child dies next.
func openInChild(o Options, dir string) (*Backend, func(format string, args ...any)) {
	o.Dir = dir
	b, err := Open(o)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	var out sync.Mutex
	return b, func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}
}
