package embedded

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

const diskFullChildEnv = "ROAM_EMBEDDED_DISKFULL_CHILD_DIR"

// TestDiskFullPubAudit runs TestDiskFullPubAuditChild in a child process:
// RLIMIT_FSIZE, which stands in for a full disk (writes past it fail with
// EFBIG; Go ignores SIGXFSZ), applies to a whole process.
func TestDiskFullPubAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullPubAuditChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), diskFullChildEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDiskFullPubAuditChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// TestDiskFullPubAuditChild fills the subscriber's file up to a file size
// limit while its handler is held, then lets the handler run, then lifts
// the limit. Every publish must either fail with an error that names the
// cause or be delivered; nothing acknowledged is lost, and the file is
// intact afterwards.
func TestDiskFullPubAuditChild(t *testing.T) {
	dir := os.Getenv(diskFullChildEnv)
	if dir == "" {
		t.Skip("helper process of TestDiskFullPubAudit")
	}
	b, err := Open(Options{Dir: dir, Logger: quiet, Retry: backend.RetryPolicy{MaxAttempts: 1000, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	gate := make(chan struct{})
	var mu sync.Mutex
	delivered := map[string]int{}
	sub := backend.Subscription{AppID: "sink", PubSub: "ps", Topic: "t"}
	err = b.Subscribe([]backend.Subscription{sub}, func(ctx context.Context, s backend.Subscription, e *sdk.Event) error {
		<-gate
		mu.Lock()
		delivered[string(e.Data)]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OpenApps("pub"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "apps", "sink", "app.db"))
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	full := old
	full.Cur = uint64(fi.Size()) + 256<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Skipf("cannot set RLIMIT_FSIZE: %v", err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)

	acked := map[string]bool{}
	publish := func(i, size int) error {
		data := fmt.Sprintf(`"%d-%s"`, i, strings.Repeat("x", size))
		err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(data)})
		if err == nil {
			acked[data] = true
		}
		return err
	}
	var failures int
	var firstErr error
	for i := 0; failures < 20 && i < 10_000; i++ {
		if err := publish(i, 4000); err != nil {
			failures++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr == nil {
		t.Fatalf("10,000 publishes of 4 KB fit under a limit of %d bytes", full.Cur)
	}
	if !sdk.IsCode(firstErr, sdk.Internal) || !strings.Contains(firstErr.Error(), "file too large") {
		t.Fatalf("publish to a full file: %v (code %v), want Internal naming the cause", firstErr, sdk.CodeOf(firstErr))
	}
	t.Logf("full after %d acknowledged publishes: %v", len(acked), firstErr)

	// The handler runs while the file is still full; removals that fail
	// are retried, not redelivered.
	close(gate)
	for wait := time.Now().Add(3 * time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(delivered)
		mu.Unlock()
		if n >= min(5, len(acked)) {
			break
		}
	}
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	for i := 100_000; i < 100_010; i++ {
		if err := publish(i, 10); err != nil {
			t.Fatalf("publish after space returned: %v", err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		missing := 0
		for d := range acked {
			if delivered[d] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events not delivered", missing, len(acked))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	for d, n := range delivered {
		if !acked[d] {
			t.Errorf("delivered an event whose publish failed: %.20s", d)
		}
		if n > 1 {
			t.Errorf("event %.20s delivered %d times", d, n)
		}
	}
	mu.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, "apps", "sink", "app.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
}
