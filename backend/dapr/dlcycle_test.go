package dapr_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/internal/daprtest"
	"github.com/roam-dev/roam/sdk"
)

// cycApp subscribes to cyc.a and cyc.b, whose dead-letter topics name each
// other's topics, and to cyc.c, whose dead-letter topic is cyc.a (an entry
// into the cycle); every handler fails, with a retryable error.
var cycApp = sdk.NewApp("cyc", func(env sdk.Env, r *sdk.Router) error {
	for topic, dl := range map[string]string{"cyc.a": "cyc.b", "cyc.b": "cyc.a", "cyc.c": "cyc.a"} {
		sdk.Subscribe(r, "pubsub", topic, func(ctx context.Context, e *sdk.Event) error {
			var v struct{ K string }
			json.Unmarshal(e.Data, &v)
			cyc.Lock()
			cyc.calls[v.K+" "+e.Topic]++
			cyc.ids[v.K] = e.ID
			cyc.Unlock()
			return sdk.NewError(sdk.Internal, "fails everywhere")
		}, sdk.DeadLetter(dl))
	}
	return nil
})

var cyc struct {
	sync.Mutex
	calls map[string]int    // "label topic" -> deliveries
	ids   map[string]string // label -> CloudEvent id
}

// A cycle of dead-letter topics on Dapr, over both app channels: an event
// that fails everywhere is delivered as often as the Resiliency policy
// allows on each topic of the cycle, then parked on the parked topic of the
// last one it failed on, once, rather than passed round for ever (before,
// Dapr dead-lettered it from one topic to the other with no end). One that
// enters the cycle from another topic goes round it once too. The
// streaming subscriptions run backendtest's DeadLetterCycleParked
// (TestPubSub).
func TestDeadLetterCycleParks(t *testing.T) {
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			cyc.Lock() // a clean record for each run
			cyc.calls, cyc.ids = map[string]int{}, map[string]string{}
			cyc.Unlock()
			r := daprtest.StartRedis(t)
			const attempts = 3
			res := daprtest.WriteResources(t, r, daprtest.ResourceOptions{MaxAttempts: attempts, RetryInterval: 20 * time.Millisecond})
			h := startHost(t, hostOptions{appID: "cyc", appProtocol: proto, res: res}, cycApp)
			pub := h.Backend.Publisher("cyc")
			for label, topic := range map[string]string{"poison": "cyc.a", "entry": "cyc.c"} {
				if err := pub.Publish(ctxT(t), sdk.Message{PubSub: "pubsub", Topic: topic, Data: []byte(`{"k":"` + label + `"}`)}); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(30 * time.Second)
			for xlen(t, r, "cyc.b.parked") < 2 {
				cyc.Lock()
				n := cyc.calls["poison cyc.a"]
				cyc.Unlock()
				if n > attempts {
					t.Fatalf("poison delivered %d times on cyc.a, and not parked: it goes round the cycle", n)
				}
				if time.Now().After(deadline) {
					cyc.Lock()
					t.Fatalf("timed out: %d events parked; deliveries %v", xlen(t, r, "cyc.b.parked"), cyc.calls)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Once no stream has anything pending, Dapr delivers nothing more.
			for _, topic := range []string{"cyc.a", "cyc.b", "cyc.c"} {
				for {
					n, err := unacked(r, topic, "cyc")
					if err == nil && n == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s still has %d entries unacknowledged (%v)", topic, n, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			cyc.Lock()
			defer cyc.Unlock()
			want := map[string]int{"poison cyc.a": attempts, "poison cyc.b": attempts, "entry cyc.c": attempts, "entry cyc.a": attempts, "entry cyc.b": attempts}
			for k, n := range want {
				if cyc.calls[k] != n {
					t.Errorf("%s: %d deliveries, want %d (all: %v)", k, cyc.calls[k], n, cyc.calls)
				}
			}
			if n := xlen(t, r, "cyc.b.parked"); n != 2 {
				t.Errorf("%d events parked, want 2", n)
			}
			rep, err := r.Do("XRANGE", "cyc.b.parked", "-", "+")
			if err != nil {
				t.Fatal(err)
			}
			for _, label := range []string{"poison", "entry"} {
				if !strings.Contains(rep, cyc.ids[label]) || !strings.Contains(rep, `\"k\":\"`+label+`\"`) && !strings.Contains(rep, `"k":"`+label+`"`) {
					t.Errorf("the parked %s (%s) is not on cyc.b.parked with its data: %q", label, cyc.ids[label], rep)
				}
			}
		})
	}
}
