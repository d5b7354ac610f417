package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/sdk"
)

// TestKill9 covers publishing: its child never acknowledges. This pair
// covers consuming: the child publishes, delivers, acknowledges and
// dead-letters at once, and is killed in the middle of it, so that the
// kill lands in acknowledgements, dead-letter moves and handlers. After the
// restart every acknowledged publish must have been handled: on its topic,
// or, for the poison ones, on the dead-letter topic.

const killConsumeChildEnv = "ROAM_EMBEDDED_KILL_CONSUME_CHILD_DIR"

var (
	killConsumeSub  = backend.Subscription{AppID: "sink", PubSub: "pubsub", Topic: "work", DeadLetterTopic: "work.dead"}
	killConsumeDead = backend.Subscription{AppID: "sink", PubSub: "pubsub", Topic: "work.dead"}
	killConsumeOpts = Options{Logger: quiet, Retry: backend.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}}
)

// poison events (every fifth) always fail on their topic.
func killConsumePoison(i int) bool { return i%5 == 0 }

// killConsumeHandler records each handled event with report, before it
// acknowledges it.
func killConsumeHandler(report func(topic string, i int)) backend.Deliverer {
	return func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		i, err := strconv.Atoi(string(e.Data))
		if err != nil {
			return sdk.Errorf(sdk.InvalidArgument, "bad data %q", e.Data)
		}
		if sub.Topic == killConsumeSub.Topic && killConsumePoison(i) {
			return sdk.Errorf(sdk.Internal, "poison %d", i)
		}
		report(sub.Topic, i)
		return nil
	}
}

// TestKillConsumePubAuditChild is the child half of TestKillConsumePubAudit.
func TestKillConsumePubAuditChild(t *testing.T) {
	dir := os.Getenv(killConsumeChildEnv)
	if dir == "" {
		t.Skip("helper process of TestKillConsumePubAudit")
	}
	b, line := openInChild(killConsumeOpts, dir)
	err := b.Subscribe([]backend.Subscription{killConsumeSub, killConsumeDead}, killConsumeHandler(func(topic string, i int) {
		line("GOT %s %d", topic, i)
	}))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; ; i += 2 {
				m := sdk.Message{PubSub: killConsumeSub.PubSub, Topic: killConsumeSub.Topic, Data: []byte(strconv.Itoa(i))}
				if err := b.Publisher("src").Publish(ctx, m); err != nil {
					line("ERR publish %v", err)
					return
				}
				line("PUB %d", i)
				// Publish at about the pace of delivery, so that the kill
				// finds deliveries, not only a backlog.
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	os.Exit(1)
}

func TestKillConsumePubAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	for round := range 3 {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) { killConsumeRound(t, 300+200*round) })
	}
}

func killConsumeRound(t *testing.T, target int) {
	dir := t.TempDir()
	ch := startChild(t, "TestKillConsumePubAuditChild", false, killConsumeChildEnv+"="+dir)
	cmd, stdout, stderr := ch.cmd, ch.stdout, &ch.stderr
	pubs := map[int]bool{}
	handled := map[string]bool{} // "topic i", handled before the kill
	got, killed := 0, false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Kill() // SIGKILL
		}
	}
	timer := time.AfterFunc(time.Minute, kill)
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "PUB":
			i, _ := strconv.Atoi(f[1])
			pubs[i] = true
		case len(f) == 3 && f[0] == "GOT":
			handled[f[1]+" "+f[2]] = true
			got++
			if got == target {
				kill()
			}
		case len(f) > 0 && f[0] == "ERR":
			t.Errorf("child: %s", sc.Text())
		}
	}
	kill()
	werr := cmd.Wait()
	if got < target {
		t.Fatalf("child handled only %d events before it ended (%v)\nstderr:\n%s", got, werr, stderr.String())
	}

	// What the handler must still see: every acknowledged publish not
	// handled where it belongs before the kill.
	where := func(i int) string {
		if killConsumePoison(i) {
			return killConsumeDead.Topic + " " + strconv.Itoa(i)
		}
		return killConsumeSub.Topic + " " + strconv.Itoa(i)
	}
	want := map[string]bool{}
	for i := range pubs {
		if !handled[where(i)] {
			want[where(i)] = true
		}
	}
	t.Logf("killed after %d handled, %d published; %d left to deliver", got, len(pubs), len(want))

	o := killConsumeOpts
	o.Dir = dir
	b := open(t, o)
	var mu sync.Mutex
	after := map[string]bool{}
	err := b.Subscribe([]backend.Subscription{killConsumeSub, killConsumeDead}, killConsumeHandler(func(topic string, i int) {
		mu.Lock()
		after[topic+" "+strconv.Itoa(i)] = true
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		var missing []string
		for k := range want {
			if !after[k] {
				missing = append(missing, k)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged events never handled after kill -9, e.g. %q", len(missing), missing[:min(5, len(missing))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
