package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roam-dev/roam/sdk"
)

func TestLockHolderIn(t *testing.T) {
	const locks = `1: POSIX  ADVISORY  WRITE 300 fd:01:77 0 EOF
2: OFDLCK ADVISORY  WRITE -1 fd:01:77 0 EOF
3: FLOCK  ADVISORY  WRITE 0 fd:01:77 0 EOF
4: FLOCK  ADVISORY  WRITE 400 fd:02:77 0 EOF
5: FLOCK  ADVISORY  WRITE 500 fd:01:78 0 EOF
6: LEASE  ACTIVE    READ 600 fd:01:77 0 EOF
7: FLOCK  ADVISORY  WRITE 1234 fd:01:77 0 EOF
7: -> FLOCK  ADVISORY  WRITE 1240 fd:01:77 0 EOF
`
	for _, c := range []struct {
		name         string
		text         string
		maj, min, in uint64
		pid          int
	}{
		{"flock over posix, waiter, other device or inode, no pid", locks, 0xfd, 1, 77, 1234},
		{"posix when no flock (NFS)", locks[:strings.Index(locks, "2:")], 0xfd, 1, 77, 300},
		{"OFD lock: no pid", "2: OFDLCK ADVISORY  WRITE -1 fd:01:77 0 EOF\n", 0xfd, 1, 77, 0},
		{"other pid namespace", "3: FLOCK  ADVISORY  WRITE 0 fd:01:77 0 EOF\n", 0xfd, 1, 77, 0},
		{"none", "", 0xfd, 1, 77, 0},
		{"large minor", "1: FLOCK  ADVISORY  WRITE 9 103:1ab:123456789 0 EOF\n", 0x103, 0x1ab, 123456789, 9},
	} {
		pid, ok := lockHolderIn(strings.NewReader(c.text), c.maj, c.min, c.in)
		if pid != c.pid || ok != (c.pid != 0) {
			t.Errorf("%s: %d, %v; want %d", c.name, pid, ok, c.pid)
		}
	}
}

const lockChildEnv = "ROAM_EMBEDDED_LOCK_CHILD_DIR"

// TestLockHolderChild is the child half of TestLockHolderNamed: it opens
// app orders of the data dir, says so, and holds it until its input closes.
func TestLockHolderChild(t *testing.T) {
	dir := os.Getenv(lockChildEnv)
	if dir == "" {
		t.Skip("helper process of TestLockHolderNamed")
	}
	b, err := Open(Options{Dir: dir, Logger: quiet})
	if err == nil {
		err = b.OpenApps("orders")
	}
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	fmt.Println("HOLDING")
	bufio.NewReader(os.Stdin).ReadString('\n')
	b.Close()
}

// TestLockHolderNamed: a second host on the data dir of a running one is
// told which process holds the app's file, by pid and name.
func TestLockHolderNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	ch := startChild(t, "TestLockHolderChild", true, lockChildEnv+"="+dir)
	cmd, stdin, stdout := ch.cmd, ch.stdin, ch.stdout
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "HOLDING" {
		t.Fatalf("child: %q", line)
	}
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, Options{Dir: dir, LockTimeout: 100 * time.Millisecond})
	err = b.OpenApps("orders")
	path := filepath.Join(dir, "apps", "orders", "app.db")
	want := fmt.Sprintf("app orders data at %s is locked by another process: it is in use by process %d (%s); stop it or use another --data-dir",
		path, cmd.Process.Pid, strings.TrimSpace(string(comm)))
	if !sdk.IsCode(err, sdk.FailedPrecondition) || err.Error() != want {
		t.Fatalf("open of a file another process holds: %v (code %v), want %q", err, sdk.CodeOf(err), want)
	}
	// Once the holder is gone, the app opens.
	stdin.Close()
	cmd.Wait()
	if err := b.State("orders", "s").Set(context.Background(), "k", []byte("v"), sdk.WriteOptions{}); err != nil {
		t.Fatalf("Set after the holder exited: %v", err)
	}
}
