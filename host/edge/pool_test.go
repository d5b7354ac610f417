package edge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/roam-dev/roam/backend/memory"
)

// TestPoolFillsInBackground: Load returns with the first instance ready
// and the rest of the pool arrives in the background; calls made meanwhile
// queue and succeed; closing the module while the pool fills leaves no
// instance behind.
func TestPoolFillsInBackground(t *testing.T) {
	ctx := context.Background()
	be := memory.New(memory.Options{})
	defer be.Close()
	rt := newRuntime(t, nil)
	m, err := rt.Load(ctx, confWasm, ModuleOptions{PoolSize: 4}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	// Calls right away, more of them than instances may be ready.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := m.Call(ctx, "Echo", []byte(`"x"`)); err != nil || string(out) != `"x"` {
				t.Errorf("Echo = %q, %v", out, err)
			}
		}()
	}
	wg.Wait()
	waitFilled(t, m)
	if s := m.Stats(); s.Idle != 4 || s.Instantiations != 4 {
		t.Errorf("filled pool: %+v, want 4 idle instances, 4 instantiations", s)
	}

	// Closed while filling: the fill stops, and the pool closes once it has.
	m2, err := newRuntime(t, nil).Load(ctx, confWasm, ModuleOptions{PoolSize: 12}, Binding{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m2.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if n := m2.Stats().Instantiations; n >= 12 {
		t.Logf("the pool filled before Close (%d instances): nothing stopped early", n)
	}
}
