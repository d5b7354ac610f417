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

// The kill -9 test runs the test binary again as a child that writes and
// publishes as fast as it can, printing a line after each acknowledged
// operation. The parent SIGKILLs it mid-stream, reopens the data directory
// and checks that everything acknowledged survived: acknowledged means
// durable, whatever the moment of death.

const killChildEnv = "ROAM_EMBEDDED_KILL_CHILD_DIR"

var killSub = backend.Subscription{AppID: "sink", PubSub: "pubsub", Topic: "events"}

// TestKillChild is the child half of TestKill9; it does nothing on its own.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	b, err := Open(Options{Dir: dir, Logger: quiet})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	// Registered before publishing, so events are routed to its queue. It
	// never acknowledges: every event must still be queued after the kill.
	err = b.Subscribe([]backend.Subscription{killSub}, func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	ctx := context.Background()
	var out sync.Mutex
	ack := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // one write per line
		out.Unlock()
	}
	const workers = 4
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := b.State("writer", "statestore")
			pub := b.Publisher("writer")
			for i := w; ; i += workers {
				key := "k" + strconv.Itoa(i)
				if err := st.Set(ctx, key, []byte(strconv.Itoa(i)), sdk.WriteOptions{}); err != nil {
					ack("ERR set %v", err)
					return
				}
				ack("SET %s %d", key, i)
				m := sdk.Message{PubSub: killSub.PubSub, Topic: killSub.Topic, Data: []byte(strconv.Itoa(i))}
				if err := pub.Publish(ctx, m); err != nil {
					ack("ERR publish %v", err)
					return
				}
				ack("PUB %d", i)
			}
		}()
	}
	wg.Wait()
	os.Exit(1)
}

func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	ch := startChild(t, "TestKillChild", false, killChildEnv+"="+dir)
	cmd, stdout, stderr := ch.cmd, ch.stdout, &ch.stderr

	const target = 600 // acknowledgements before the kill
	sets := map[string]string{}
	pubs := map[string]bool{}
	acks, killed := 0, false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Kill() // SIGKILL: no deferred code, no flush, no Close
		}
	}
	timer := time.AfterFunc(6*time.Second, kill)
	defer timer.Stop()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "SET":
			sets[f[1]] = f[2]
		case len(f) == 2 && f[0] == "PUB":
			pubs[f[1]] = true
		case len(f) > 0 && f[0] == "ERR":
			t.Errorf("child: %s", sc.Text())
		default:
			continue
		}
		acks++
		if acks == target {
			timer.Stop()
			kill()
		}
	}
	timer.Stop()
	kill()
	werr := cmd.Wait()
	if acks < 50 {
		t.Fatalf("child acknowledged only %d operations (exit: %v)\nstderr:\n%s", acks, werr, stderr.String())
	}
	t.Logf("child acknowledged %d sets and %d publishes before SIGKILL (exit: %v)", len(sets), len(pubs), werr)

	b := open(t, Options{Dir: dir})
	ctx := context.Background()
	st := b.State("writer", "statestore")
	for k, v := range sets {
		it, err := st.Get(ctx, k)
		if err != nil || string(it.Value) != v {
			t.Fatalf("acknowledged Set %s=%s lost after kill -9: got %q, %v", k, v, it.Value, err)
		}
	}

	var mu sync.Mutex
	seen := map[string]bool{}
	err := b.Subscribe([]backend.Subscription{killSub}, func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		seen[string(e.Data)] = true
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		missing := []string{}
		for i := range pubs {
			if !seen[i] {
				missing = append(missing, i)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events never delivered after kill -9, e.g. %v", len(missing), len(pubs), missing[:min(5, len(missing))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
