package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/conformance/backendtest"
	"github.com/roam-dev/roam/sdk"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t *testing.T, o Options) *Backend {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	b, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestState(t *testing.T) {
	backendtest.RunState(t, func(t *testing.T) backend.Backend {
		return open(t, Options{SweepInterval: 200 * time.Millisecond})
	})
}

func TestPubSub(t *testing.T) {
	backendtest.RunPubSub(t, backendtest.PubSubHarness{
		Durable:               true,
		ParksDeadLetterCycles: true,
		IsolatesSubscriptions: true,
		Open: func(t *testing.T, dir string, p backend.RetryPolicy) backend.Backend {
			return open(t, Options{Dir: dir, Retry: p})
		},
	})
}

func TestOpenRequiresDir(t *testing.T) {
	if _, err := Open(Options{}); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Fatalf("Open without Dir: %v", err)
	}
}

func TestLayout(t *testing.T) {
	ctx := context.Background()
	b := open(t, Options{})
	if err := b.State("orders", "statestore").Set(ctx, "k", []byte("v"), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"apps/orders/app.db", "registry"} {
		if _, err := os.Stat(filepath.Join(b.Dir(), p)); err != nil {
			t.Errorf("expected %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(b.Dir(), "apps", "billing")); !os.IsNotExist(err) {
		t.Errorf("an unused app's file was created: %v", err)
	}
	// Invalid app ids never reach the file system.
	if err := b.State("../evil", "statestore").Set(ctx, "k", nil, sdk.WriteOptions{}); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Fatalf("Set for invalid app id: %v", err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b1 := open(t, Options{Dir: dir})
	if err := b1.State("orders", "s").Set(ctx, "k", []byte("1"), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// bbolt's flock is per open file, so a second Backend in this process
	// stands in for a second process.
	b2 := open(t, Options{Dir: dir, LockTimeout: 100 * time.Millisecond})
	_, err := b2.State("orders", "s").Get(ctx, "k")
	want := "app orders data at " + filepath.Join(dir, "apps", "orders", "app.db") + " is locked by another process"
	if runtime.GOOS == "linux" { // the holder is named (lockHolder): this process
		want = "app orders data at " + filepath.Join(dir, "apps", "orders", "app.db") + " is locked by another open of it in this process, " + strconv.Itoa(os.Getpid())
		if comm, err := os.ReadFile("/proc/self/comm"); err == nil {
			want += " (" + strings.TrimSpace(string(comm)) + ")"
		}
	}
	if !sdk.IsCode(err, sdk.FailedPrecondition) || err.Error() != want {
		t.Fatalf("Get on locked app: %v (code %v), want %q", err, sdk.CodeOf(err), want)
	}
	if err := b2.OpenApps("orders"); err == nil {
		t.Fatalf("OpenApps on locked app succeeded")
	}
	// Other apps in the same Dir are fine.
	if err := b2.State("billing", "s").Set(ctx, "k", []byte("2"), sdk.WriteOptions{}); err != nil {
		t.Fatalf("Set on another app: %v", err)
	}
	// Once the holder closes, the app opens.
	b1.Close()
	it, err := b2.State("orders", "s").Get(ctx, "k")
	if err != nil || string(it.Value) != "1" {
		t.Fatalf("Get after holder closed: %q, %v", it.Value, err)
	}
}

func TestPersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := open(t, Options{Dir: dir})
	s := b.State("orders", "s")
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		if err := s.Set(ctx, "k", []byte("v"), sdk.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		it, _ := s.Get(ctx, "k")
		seen[it.ETag] = true
	}
	if err := s.Delete(ctx, "k", sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "kept", []byte("x"), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = open(t, Options{Dir: dir})
	s = b.State("orders", "s")
	it, err := s.Get(ctx, "kept")
	if err != nil || string(it.Value) != "x" {
		t.Fatalf("kept after restart: %q, %v", it.Value, err)
	}
	if err := s.Set(ctx, "k", []byte("again"), sdk.WriteOptions{IfAbsent: true}); err != nil {
		t.Fatal(err)
	}
	it, _ = s.Get(ctx, "k")
	if seen[it.ETag] {
		t.Fatalf("ETag %q repeats after restart", it.ETag)
	}
}

// rawCount returns the number of stored items (expired included) in store,
// and the number of TTL index entries.
func rawCount(t *testing.T, b *Backend, app, store string) (items, index int) {
	t.Helper()
	a, err := b.app(app)
	if err != nil {
		t.Fatal(err)
	}
	a.db.View(func(tx *bolt.Tx) error {
		if sb := tx.Bucket(bucketState).Bucket([]byte(store)); sb != nil {
			items = sb.Stats().KeyN
		}
		index = tx.Bucket(bucketTTL).Stats().KeyN
		return nil
	})
	return items, index
}

func TestSweeper(t *testing.T) {
	ctx := context.Background()
	b := open(t, Options{SweepInterval: 20 * time.Millisecond})
	s := b.State("orders", "s")
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Set(ctx, k, []byte(k), sdk.WriteOptions{TTL: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	// Overwriting without TTL drops the index entry; deleting does too.
	if err := s.Set(ctx, "b", []byte("b2"), sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "d", []byte("d"), sdk.WriteOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "d", sdk.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "e", []byte("e"), sdk.WriteOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		items, index := rawCount(t, b, "orders", "s")
		if items == 2 && index == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %d items and %d index entries, want 2 (b, e) and 1 (e)", items, index)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if it, err := s.Get(ctx, "b"); err != nil || string(it.Value) != "b2" {
		t.Fatalf("b = %q, %v", it.Value, err)
	}
}

func TestConfigSecrets(t *testing.T) {
	ctx := context.Background()
	b := open(t, Options{Config: map[string]string{"greeting": "hi"}, Secrets: map[string]map[string]string{"vault": {"token": "s3cr3t"}}})
	if v, err := b.Config("a").Get(ctx, "greeting"); err != nil || v != "hi" {
		t.Fatalf("Config = %q, %v", v, err)
	}
	if _, err := b.Config("a").Get(ctx, "nope"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Config absent: %v", err)
	}
	if v, err := b.Secrets("a").Get(ctx, "vault", "token"); err != nil || v != "s3cr3t" {
		t.Fatalf("Secret = %q, %v", v, err)
	}
	if _, err := b.Secrets("a").Get(ctx, "vault", "nope"); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Secret absent: %v", err)
	}
	if b.Name() != "embedded" {
		t.Fatalf("Name = %q", b.Name())
	}
}

func TestOnDeliver(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	counts := map[string]int{}
	b := open(t, Options{
		Retry: backend.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond},
		OnDeliver: func(sub backend.Subscription, outcome string) {
			mu.Lock()
			counts[sub.AppID+":"+outcome]++
			mu.Unlock()
		},
	})
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		if sub.AppID == "sub" && string(e.Data) == `"fail"` {
			return sdk.Errorf(sdk.Internal, "no")
		}
		return nil
	}
	err := b.Subscribe([]backend.Subscription{
		{AppID: "sub", PubSub: "ps", Topic: "t"},
		{AppID: "dl", PubSub: "ps", Topic: backend.DefaultDeadLetterTopic},
	}, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{`"fail"`, `"ok"`} {
		if err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"sub:retry": 1, "sub:deadletter": 1, "sub:ok": 1, "dl:ok": 1}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(counts) == len(want)
		for k, v := range want {
			got = got && counts[k] == v
		}
		snapshot := map[string]int{}
		for k, v := range counts {
			snapshot[k] = v
		}
		mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnDeliver counts = %v, want %v", snapshot, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An event that fails on its own dead-letter topic is parked, not looped.
func TestParkedOnOwnDeadLetterTopic(t *testing.T) {
	ctx := context.Background()
	b := open(t, Options{Retry: backend.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond}})
	var mu sync.Mutex
	calls := 0
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return sdk.Errorf(sdk.Internal, "always")
	}
	if err := b.Subscribe([]backend.Subscription{{AppID: "dl", PubSub: "ps", Topic: backend.DefaultDeadLetterTopic}}, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: backend.DefaultDeadLetterTopic, Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	a, _ := b.app("dl")
	name := routeKey{"ps", backend.DefaultDeadLetterTopic}.bucket()
	deadline := time.Now().Add(10 * time.Second)
	for {
		parked, queued := 0, 0
		a.db.View(func(tx *bolt.Tx) error {
			if p := tx.Bucket(bucketParked).Bucket(name); p != nil {
				parked = p.Stats().KeyN
			}
			if q := tx.Bucket(bucketQueues).Bucket(name); q != nil {
				queued = q.Stats().KeyN
			}
			return nil
		})
		if parked == 1 && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked=%d queued=%d, want 1 and 0", parked, queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("handler called %d times, want MaxAttempts=2", calls)
	}
}

// OpenApps routes another app's unrouted events without waiting for that
// app to be used.
func TestOpenAppsDrainsUnrouted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := open(t, Options{Dir: dir})
	if err := b.Publisher("pub").Publish(ctx, sdk.Message{PubSub: "ps", Topic: "t", Data: []byte(`"early"`)}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(t, Options{Dir: dir})
	got := make(chan string, 1)
	err := b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "t"}}, func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error {
		got <- string(e.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.OpenApps("pub"); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d != `"early"` {
			t.Fatalf("got %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("unrouted event not delivered after OpenApps")
	}
}

func TestSubscribeValidation(t *testing.T) {
	b := open(t, Options{})
	d := func(ctx context.Context, sub backend.Subscription, e *sdk.Event) error { return nil }
	s := backend.Subscription{AppID: "a", PubSub: "ps", Topic: "t"}
	if err := b.Subscribe([]backend.Subscription{s}, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe([]backend.Subscription{s}, d); !sdk.IsCode(err, sdk.FailedPrecondition) {
		t.Fatalf("duplicate Subscribe: %v", err)
	}
	if err := b.Subscribe([]backend.Subscription{{AppID: "a", PubSub: "ps"}}, d); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Fatalf("Subscribe without topic: %v", err)
	}
	if err := b.Subscribe([]backend.Subscription{{AppID: "b", PubSub: "ps", Topic: "t"}}, nil); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Fatalf("Subscribe with nil deliverer: %v", err)
	}
	b.Close()
	if err := b.Subscribe([]backend.Subscription{{AppID: "c", PubSub: "ps", Topic: "t"}}, d); !sdk.IsCode(err, sdk.Unavailable) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := b.State("a", "s").Set(context.Background(), "k", nil, sdk.WriteOptions{}); !sdk.IsCode(err, sdk.Unavailable) {
		t.Fatalf("Set after Close: %v", err)
	}
}

// ---- invocation ----

func TestInvoke(t *testing.T) {
	b := open(t, Options{})
	var gotCaller, gotType string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotCaller, gotType = r.Header.Get("X-Roam-Caller"), r.Header.Get("Content-Type")
		mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/v1/apps/orders/methods/Echo":
			w.Write(append([]byte("echo:"), body...))
		case "/v1/apps/orders/methods/Fail":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"code":"Conflict","message":"reserve: out of stock"}`))
		case "/v1/apps/orders/methods/Plain":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/v1/apps/orders/methods/Slow":
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	withdraw, err := b.Announce([]string{"orders", "billing"}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(b.RegistryDir(), "orders.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e RegistryEntry
	if err := json.Unmarshal(raw, &e); err != nil || e.App != "orders" || e.URL != srv.URL || e.PID != os.Getpid() {
		t.Fatalf("registry entry %s: %+v, %v", raw, e, err)
	}

	ctx := context.Background()
	inv := b.Invoker("caller")
	out, err := inv.Invoke(ctx, "orders", "Echo", []byte(`{"n":1}`))
	if err != nil || string(out) != `echo:{"n":1}` {
		t.Fatalf("Echo = %q, %v", out, err)
	}
	mu.Lock()
	if gotCaller != "caller" || gotType != "application/json" {
		t.Fatalf("headers: X-Roam-Caller %q, Content-Type %q", gotCaller, gotType)
	}
	mu.Unlock()

	_, err = inv.Invoke(ctx, "orders", "Fail", nil)
	var se *sdk.Error
	if !errors.As(err, &se) || se.Code != sdk.Conflict || se.Message != "reserve: out of stock" {
		t.Fatalf("Fail: %#v", err)
	}
	if _, err := inv.Invoke(ctx, "orders", "Plain", nil); !sdk.IsCode(err, sdk.Internal) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Plain: %v", err)
	}
	if _, err := inv.Invoke(ctx, "orders", "Missing", nil); !sdk.IsCode(err, sdk.NotFound) {
		t.Fatalf("Missing: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := inv.Invoke(tctx, "orders", "Slow", nil); !sdk.IsCode(err, sdk.DeadlineExceeded) {
		t.Fatalf("Slow: %v (code %v)", err, sdk.CodeOf(err))
	}

	_, err = inv.Invoke(ctx, "nope", "Echo", nil)
	want := "app nope is not running (no entry in " + b.RegistryDir() + ")"
	if !sdk.IsCode(err, sdk.Unavailable) || err.Error() != want {
		t.Fatalf("absent app: %v, want %q", err, want)
	}
	if _, err := inv.Invoke(ctx, "../x", "Echo", nil); !sdk.IsCode(err, sdk.InvalidArgument) {
		t.Fatalf("invalid app id: %v", err)
	}

	withdraw()
	withdraw()
	if _, err := inv.Invoke(ctx, "orders", "Echo", nil); !sdk.IsCode(err, sdk.Unavailable) {
		t.Fatalf("after withdraw: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.RegistryDir(), "billing.json")); !os.IsNotExist(err) {
		t.Fatalf("billing entry not withdrawn: %v", err)
	}
}

func TestInvokeStaleAndUnreachable(t *testing.T) {
	b := open(t, Options{})
	ctx := context.Background()
	write := func(app string, e RegistryEntry) {
		if err := writeFileAtomic(filepath.Join(b.RegistryDir(), app+".json"), e); err != nil {
			t.Fatal(err)
		}
	}
	write("ghost", RegistryEntry{App: "ghost", URL: "http://127.0.0.1:1", PID: 0x7ffffff0})
	_, err := b.Invoker("c").Invoke(ctx, "ghost", "M", nil)
	if !sdk.IsCode(err, sdk.Unavailable) || !strings.Contains(err.Error(), "stale registry entry") {
		t.Fatalf("stale entry: %v", err)
	}

	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	write("gone", RegistryEntry{App: "gone", URL: url, PID: os.Getpid()})
	_, err = b.Invoker("c").Invoke(ctx, "gone", "M", nil)
	if !sdk.IsCode(err, sdk.Unavailable) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("unreachable: %v", err)
	}

	// A withdraw does not remove an entry another process wrote since.
	withdraw, err := b.Announce([]string{"shared"}, "http://127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	write("shared", RegistryEntry{App: "shared", URL: "http://127.0.0.1:3", PID: os.Getpid() + 1})
	withdraw()
	if _, err := os.Stat(filepath.Join(b.RegistryDir(), "shared.json")); err != nil {
		t.Fatalf("withdraw removed another process's entry: %v", err)
	}
}

func TestUnroutedLimit(t *testing.T) {
	b, err := Open(Options{Dir: t.TempDir(), UnroutedLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pub := b.Publisher("pub")
	for i := 0; i < 8; i++ {
		if err := pub.Publish(ctx, sdk.Message{PubSub: "ps", Topic: "nobody", Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.UnroutedDropped(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
	// A subscription that appears later gets the newest five, in order.
	got := make(chan string, 8)
	if err := b.Subscribe([]backend.Subscription{{AppID: "sub", PubSub: "ps", Topic: "nobody"}},
		func(ctx context.Context, _ backend.Subscription, e *sdk.Event) error {
			got <- string(e.Data)
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if err := b.OpenApps("pub", "sub"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3", "4", "5", "6", "7"} {
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got event %s, want %s", g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %s never delivered", want)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}
