package native_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// TestSetupPanics: an app whose setup panics is refused with an error
// naming the panic, as one whose setup returns an error is; it printed a
// goroutine dump and took the host down.
func TestSetupPanics(t *testing.T) {
	b := memory.New(memory.Options{})
	defer b.Close()
	a := sdk.NewApp("panicky", func(env sdk.Env, r *sdk.Router) error {
		var m map[string]int
		m["boom"]++ // a nil map: panics
		return nil
	})
	srv := host.NewServer(b, host.Options{})
	_, err := native.Setup(a, b, srv, slog.New(slog.DiscardHandler))
	if err == nil || sdk.CodeOf(err) != sdk.Internal || !strings.Contains(err.Error(), "setup panicked: assignment to entry in nil map") {
		t.Fatalf("Setup: %v, want Internal naming the panic", err)
	}
}
