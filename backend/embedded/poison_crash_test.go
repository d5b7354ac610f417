package embedded

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// A poison event whose handler takes the whole process down (os.Exit, a
// SIGKILL, a Go fatal error: nothing a recover sees) used to be delivered
// again after every restart with a fresh budget, for ever, holding back the
// events behind it. These tests run the test binary again as a child that
// subscribes and dies in the poison event's handler, restart it, and check
// that after MaxAttempts deaths the event is dead-lettered (or parked) and
// the events behind it are delivered, in order, none lost.

const (
	poisonChildEnv = "ROAM_EMBEDDED_POISON_CHILD_DIR"
	poisonModeEnv  = "ROAM_EMBEDDED_POISON_MODE" // exit, kill or fatal
	poisonDLEnv    = "ROAM_EMBEDDED_POISON_DL"   // the work subscription's dead-letter topic
	poisonEvent    = 3                           // data of the event that kills the child
	poisonMax      = 3
)

var poisonOpts = Options{Logger: quiet, Retry: backend.RetryPolicy{MaxAttempts: poisonMax, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}}

func poisonSubs(dl string) []backend.Subscription {
	subs := []backend.Subscription{
		{AppID: "sink", PubSub: "pubsub", Topic: "work", DeadLetterTopic: dl},
		{AppID: "sink", PubSub: "pubsub", Topic: "slow"},
	}
	if dl != "work" {
		subs = append(subs, backend.Subscription{AppID: "sink", PubSub: "pubsub", Topic: dl})
	}
	return subs
}

// poisonPublish publishes data on topic from app src, with nobody
// subscribed: the events wait in src's unrouted log for the child.
func poisonPublish(t *testing.T, dir string, topic string, data ...string) {
	t.Helper()
	o := poisonOpts
	o.Dir = dir
	b := open(t, o)
	for _, d := range data {
		if err := b.Publisher("src").Publish(context.Background(), sdk.Message{PubSub: "pubsub", Topic: topic, Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPoisonCrashChild is the child half of the tests below.
func TestPoisonCrashChild(t *testing.T) {
	dir := os.Getenv(poisonChildEnv)
	if dir == "" {
		t.Skip("helper process of TestPoisonCrash*")
	}
	b, line := openInChild(poisonOpts, dir)
	dl := os.Getenv(poisonDLEnv)
	err := b.Subscribe(poisonSubs(dl), func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		switch {
		case sub.Topic == "work" && string(e.Data) == strconv.Itoa(poisonEvent):
			line("CRASH %s", e.Data)
			// Work a while first, so that the slow event of another
			// subscription is in flight at each death unless the
			// backend keeps it out of the way.
			time.Sleep(200 * time.Millisecond)
			switch os.Getenv(poisonModeEnv) {
			case "kill":
				p, _ := os.FindProcess(os.Getpid())
				p.Kill()
				time.Sleep(time.Minute)
			case "fatal":
				var mu sync.Mutex
				mu.Unlock() // fatal error: sync: unlock of unlocked mutex (not a panic)
			default:
				os.Exit(2)
			}
		case sub.Topic == "slow":
			time.Sleep(700 * time.Millisecond)
		}
		line("GOT %s %s", sub.Topic, e.Data)
		return nil
	})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	if err := b.OpenApps("src"); err != nil { // routes the waiting events
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	// The parent closes stdin when it has seen what it waits for.
	io.Copy(io.Discard, os.Stdin)
	if err := b.Close(); err != nil {
		fmt.Println("ERR close", err)
		os.Exit(2)
	}
	os.Exit(0)
}

// poisonRun runs the child once, until it dies or done (given the lines so
// far) says so. It returns the child's lines and whether it died.
func poisonRun(t *testing.T, dir, mode, dl string, done func(lines []string) bool) (lines []string, crashed bool) {
	t.Helper()
	ch := startChild(t, "TestPoisonCrashChild", true, poisonChildEnv+"="+dir, poisonModeEnv+"="+mode, poisonDLEnv+"="+dl)
	cmd, stdin, stdout, stderr := ch.cmd, ch.stdin, ch.stdout, &ch.stderr
	timer := time.AfterFunc(15*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	closed := false
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "ERR") {
			t.Errorf("child: %s", l)
		}
		if strings.HasPrefix(l, "GOT ") || strings.HasPrefix(l, "CRASH ") {
			lines = append(lines, l)
		}
		if !closed && done(lines) {
			closed = true
			stdin.Close()
		}
	}
	if !closed {
		stdin.Close()
	}
	werr := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("child (%s) timed out; lines %q\nstderr:\n%s", mode, lines, stderr.String())
	}
	crashed = werr != nil
	if crashed && !strings.HasPrefix(lastOf(lines), "CRASH") {
		t.Fatalf("child (%s) ended with %v but not in the poison handler; lines %q\nstderr:\n%s", mode, werr, lines, stderr.String())
	}
	if mode == "fatal" && crashed && !strings.Contains(stderr.String(), "fatal error: sync: unlock of unlocked mutex") {
		t.Errorf("child (fatal) did not die of a fatal error: %v\nstderr:\n%s", werr, stderr.String())
	}
	return lines, crashed
}

func lastOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

func TestPoisonCrashDeadLettered(t *testing.T) {
	poisonCrash(t, "work.dead")
}

// With the subscription's own topic as its dead-letter topic the event is
// parked instead, as one whose handler failed MaxAttempts times.
func TestPoisonCrashParked(t *testing.T) {
	poisonCrash(t, "work")
}

func poisonCrash(t *testing.T, dl string) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	const events = 10
	var work []string
	for i := range events {
		work = append(work, strconv.Itoa(i))
	}
	poisonPublish(t, dir, "work", work...)
	// An innocent slow event of another subscription, in flight when the
	// first death comes: it must not be dead-lettered with the poison one.
	poisonPublish(t, dir, "slow", "s")

	var want []string // the work events, in order, without the poison one
	for i := range events {
		if i != poisonEvent {
			want = append(want, "GOT work "+strconv.Itoa(i))
		}
	}
	var all []string
	seen := func(lines []string, l string) bool {
		for _, x := range lines {
			if x == l {
				return true
			}
		}
		return false
	}
	done := func(lines []string) bool {
		got := append(append([]string(nil), all...), lines...)
		if !seen(got, lastOf(want)) || !seen(got, "GOT slow s") {
			return false
		}
		return dl == "work" || seen(got, "GOT "+dl+" "+strconv.Itoa(poisonEvent))
	}
	modes := []string{"exit", "kill", "fatal"}
	crashes := 0
	for run := 0; run < poisonMax+2; run++ {
		mode := modes[run%len(modes)]
		lines, crashed := poisonRun(t, dir, mode, dl, done)
		t.Logf("run %d (%s): crashed=%v lines=%q", run+1, mode, crashed, lines)
		all = append(all, lines...)
		if crashed {
			crashes++
			continue
		}
		break
	}
	if crashes != poisonMax {
		t.Fatalf("the child died %d times in the poison handler, want MaxAttempts=%d then a dead letter", crashes, poisonMax)
	}
	if !done(nil) {
		t.Fatalf("not everything was delivered after %d deaths: %q", crashes, all)
	}

	var gotWork, gotDead, gotSlow []string
	for _, l := range all {
		switch {
		case strings.HasPrefix(l, "GOT work "):
			gotWork = append(gotWork, l)
		case strings.HasPrefix(l, "GOT "+dl+" "):
			gotDead = append(gotDead, l)
		case l == "GOT slow s":
			gotSlow = append(gotSlow, l)
		}
	}
	if strings.Join(gotWork, ",") != strings.Join(want, ",") {
		t.Errorf("work events delivered %q, want each once, in order: %q", gotWork, want)
	}
	if dl != "work" && (len(gotDead) != 1 || gotDead[0] != "GOT "+dl+" "+strconv.Itoa(poisonEvent)) {
		t.Errorf("dead-letter topic received %q, want the poison event once", gotDead)
	}
	if len(gotSlow) == 0 {
		t.Errorf("the slow event was never delivered")
	}

	// What is left in the file: nothing queued; with dl == "work" the
	// poison event parked; nothing dead-lettered for nobody (the slow
	// event's default dead-letter topic has no subscriber).
	db, err := bolt.Open(dir+"/apps/sink/app.db", 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		tx.Bucket(bucketQueues).ForEachBucket(func(name []byte) error {
			if n := tx.Bucket(bucketQueues).Bucket(name).Stats().KeyN; n != 0 {
				t.Errorf("queue %q still holds %d events", name, n)
			}
			return nil
		})
		if n := txBucketLen(tx, bucketUnrouted, routeKey{"pubsub", backend.DefaultDeadLetterTopic}); n != 0 {
			t.Errorf("%d events dead-lettered to %s, want none (the slow one is innocent)", n, backend.DefaultDeadLetterTopic)
		}
		parked := txBucketLen(tx, bucketParked, routeKey{"pubsub", "work"})
		if dl == "work" && parked != 1 {
			t.Errorf("%d events parked, want the poison one", parked)
		}
		if dl != "work" && parked != 0 {
			t.Errorf("%d events parked, want none", parked)
		}
		return nil
	})
}

func txBucketLen(tx *bolt.Tx, top []byte, rk routeKey) int {
	b := tx.Bucket(top).Bucket(rk.bucket())
	if b == nil {
		return 0
	}
	return b.Stats().KeyN
}

// A delivery that Close cancels is not a failed attempt: a clean shutdown
// is not the handler's fault. Run 1: the child dies in the handler (1 failed
// attempt of 2). Run 2, in this process: Close cancels the second attempt.
// Run 3: the handler fails, which is attempt 2 of 2: one call, then the dead
// letter. (The old code called it twice in run 3; counting the Close would
// have dead-lettered it with no call.)
func TestPoisonCrashCloseNotCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	poisonPublish(t, dir, "work", strconv.Itoa(poisonEvent))
	o := poisonOpts
	o.Dir = dir
	o.Retry.MaxAttempts = 2
	o.CloseGrace = 50 * time.Millisecond

	// The child runs poisonOpts (MaxAttempts 3): the count is kept in
	// attempts, not in the limit, so the runs below apply theirs.
	if _, crashed := poisonRun(t, dir, "exit", "work.dead", func([]string) bool { return false }); !crashed {
		t.Fatal("the child did not die in the poison handler")
	}

	subs := poisonSubs("work.dead")
	// Run 2: the handler waits for its cancellation.
	b := open(t, o)
	started := make(chan struct{}, 10)
	err := b.Subscribe(subs, func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		if sub.Topic == "work" {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("run 2: the event was not delivered (dead-lettered already?)")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Run 3: the handler fails.
	b = open(t, o)
	var mu sync.Mutex
	calls, dead := 0, 0
	err = b.Subscribe(subs, func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if sub.Topic == "work.dead" {
			dead++
			return nil
		}
		calls++
		return sdk.Errorf(sdk.Internal, "fails")
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		c, d := calls, dead
		mu.Unlock()
		if d > 0 {
			if c != 1 {
				t.Fatalf("run 3: handler called %d times before the dead letter, want 1 (attempt 2 of 2; the cancelled one not counted)", c)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run 3: not dead-lettered after %d calls", c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The same without a crash before: an event whose only attempt Close
// cancelled gets its whole budget at the next start.
func TestCloseDuringDeliveryKeepsBudget(t *testing.T) {
	dir := t.TempDir()
	poisonPublish(t, dir, "work", "1")
	o := poisonOpts
	o.Dir = dir
	o.Retry.MaxAttempts = 1
	o.CloseGrace = 50 * time.Millisecond
	subs := poisonSubs("work.dead")
	for run := 1; run <= 2; run++ {
		b := open(t, o)
		b.OpenApps("src")
		got := make(chan string, 10)
		err := b.Subscribe(subs, func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
			got <- sub.Topic
			if run == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case topic := <-got:
			if topic != "work" {
				t.Fatalf("run %d: delivered on %s, want work (the cancelled attempt must not count)", run, topic)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: nothing delivered", run)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
