package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/sdk"
)

// TestDiskFullErr: ENOSPC and EDQUOT are Unavailable and say the disk is
// full, however bbolt wraps them (with %w, or with %s, which keeps the text
// only); EFBIG, a file size limit, is still Internal.
func TestDiskFullErr(t *testing.T) {
	b := open(t, Options{Dir: t.TempDir()})
	for _, c := range []struct {
		err  error
		code sdk.Code
		says string
	}{
		{&os.PathError{Op: "write", Path: "app.db", Err: syscall.ENOSPC}, sdk.Unavailable, "(no space left on device)"},
		{fmt.Errorf("tx: %w", &os.PathError{Op: "write", Path: "app.db", Err: syscall.EDQUOT}), sdk.Unavailable, "(disk quota exceeded)"},
		{fmt.Errorf("file sync error: %s", &os.PathError{Op: "sync", Path: "app.db", Err: syscall.ENOSPC}), sdk.Unavailable, "(no space left on device)"},
		{&os.PathError{Op: "write", Path: "app.db", Err: syscall.EFBIG}, sdk.Internal, "file too large"},
		{errors.New("other"), sdk.Internal, "embedded storage: other"},
	} {
		err := b.storageErr(c.err)
		if !sdk.IsCode(err, c.code) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v (code %v), want %v saying %q", c.err, err, sdk.CodeOf(err), c.code, c.says)
		}
		if c.code == sdk.Unavailable && !strings.Contains(err.Error(), "the disk of data dir "+b.Dir()+" is full") {
			t.Errorf("%v: %v does not name the data dir", c.err, err)
		}
	}
}

const diskFullStateChildEnv = "ROAM_EMBEDDED_DISKFULL_STATE_CHILD_DIR"

// TestDiskFullState runs TestDiskFullStateChild in a child process with
// mount (and user) namespaces of its own, where it mounts a small tmpfs:
// a real ENOSPC, which RLIMIT_FSIZE (TestDiskFullPubAudit's full disk)
// cannot give, as it fails writes with EFBIG.
func TestDiskFullState(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	run := func(attr *syscall.SysProcAttr) ([]byte, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullStateChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), diskFullStateChildEnv+"="+dir)
		cmd.SysProcAttr = attr
		return cmd.CombinedOutput()
	}
	out, err := run(&syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	})
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) && os.Getuid() == 0 { // no user namespaces: root needs none
		out, err = run(&syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS})
	}
	if err != nil && !errors.As(err, &exit) {
		t.Skipf("cannot start a child in a mount namespace of its own: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP: TestDiskFullStateChild") {
		t.Skipf("child:\n%s", out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDiskFullStateChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// TestDiskFullStateChild fills a 1 MB tmpfs with state, then checks that
// the Set that found the disk full failed with Unavailable naming the data
// dir, wrote nothing (its key is absent), and that every acknowledged
// value is intact: in the running backend, in a consistency check of the
// file, and after space is freed and the backend opens the file again.
func TestDiskFullStateChild(t *testing.T) {
	mnt := os.Getenv(diskFullStateChildEnv)
	if mnt == "" {
		t.Skip("helper process of TestDiskFullState")
	}
	// Mounts made here stay in this process's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Skipf("making mounts private: %v", err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mounting a tmpfs: %v", err)
	}
	defer syscall.Unmount(mnt, syscall.MNT_DETACH)
	// Space to give back once full, so the file can be opened again
	// (opening writes the format marker).
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 128<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "data")
	b, err := Open(Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := b.State("orders", "s")
	value := func(i int) []byte { return []byte(fmt.Sprintf("%d-%s", i, strings.Repeat("x", 3000))) }
	acked := map[string][]byte{}
	var failed []string
	var firstErr error
	for i := 0; len(failed) < 10 && i < 10_000; i++ {
		key := fmt.Sprintf("k%d", i)
		err := st.Set(ctx, key, value(i), sdk.WriteOptions{})
		if err == nil {
			acked[key] = value(i)
			continue
		}
		failed = append(failed, key)
		if firstErr == nil {
			firstErr = err
		}
		if !sdk.IsCode(err, sdk.Unavailable) {
			t.Fatalf("Set %s on a full disk: %v (code %v), want Unavailable", key, err, sdk.CodeOf(err))
		}
	}
	if firstErr == nil {
		t.Fatal("10,000 Sets of 3 KB fit in a 1 MB tmpfs")
	}
	want := "embedded storage: the disk of data dir " + b.Dir() + " is full (no space left on device): the write was rolled back, and the data written before is intact"
	if !strings.HasPrefix(firstErr.Error(), want) {
		t.Fatalf("Set on a full disk: %q, want it to start with %q", firstErr, want)
	}
	t.Logf("full after %d acknowledged Sets: %v", len(acked), firstErr)
	// A transaction on the full disk is all or nothing too.
	txErr := st.Transact(ctx, []sdk.Op{
		{Kind: sdk.OpSet, Key: "t1", Value: value(-1)},
		{Kind: sdk.OpSet, Key: "t2", Value: value(-2)},
	})
	if txErr != nil && !sdk.IsCode(txErr, sdk.Unavailable) {
		t.Fatalf("Transact on a full disk: %v (code %v)", txErr, sdk.CodeOf(txErr))
	}
	if txErr == nil {
		acked["t1"], acked["t2"] = value(-1), value(-2)
	} else {
		failed = append(failed, "t1", "t2")
	}

	check := func(when string, st sdk.State) {
		t.Helper()
		for k, v := range acked {
			it, err := st.Get(ctx, k)
			if err != nil || string(it.Value) != string(v) {
				t.Fatalf("%s: acknowledged %s reads %.12q, %v", when, k, it.Value, err)
			}
		}
		for _, k := range failed {
			if _, err := st.Get(ctx, k); !sdk.IsCode(err, sdk.NotFound) {
				t.Fatalf("%s: %s, whose write failed, reads %v, want NotFound", when, k, err)
			}
		}
	}
	check("disk still full", st)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "apps", "orders", "app.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	db.Close()

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	b, err = Open(Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st = b.State("orders", "s")
	check("reopened", st)
	if err := st.Set(ctx, failed[0], []byte("now"), sdk.WriteOptions{}); err != nil {
		t.Fatalf("Set once space is freed: %v", err)
	}
}
