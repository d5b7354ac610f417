// Package hostbackend chooses and opens the backend of a host process, for
// the native and the edge host alike.
//
// Backends register themselves by name. The embedded backend is always
// there; others are linked in only when the binary imports their
// registering package (the Dapr backend: backend/dapr/register), because
// they cost binary size: go-sdk, gRPC and Dapr's protos add about 5 MB to
// a stripped binary. `roam build` links Dapr unless told --backends
// embedded; `roam run` links it when --backend dapr is given or a sidecar's
// variables are set.
//
// The choice: --backend embedded or dapr forces it; otherwise (auto) a
// sidecar in the environment (DAPR_GRPC_PORT, DAPR_HTTP_PORT) means dapr,
// and its absence means embedded. Open logs the choice and its reason.
package hostbackend

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/roam-dev/roam/backend"
	"github.com/roam-dev/roam/backend/embedded"
)

// Config is what an opener gets from the host.
type Config struct {
	// Backend is the --backend flag: "", "auto", "embedded", "dapr", ...
	Backend string
	// DataDir is the host's data directory (embedded).
	DataDir string
	// Config and Secrets are the data directory's config.json and
	// secrets.json (embedded).
	Config  map[string]string
	Secrets map[string]map[string]string
	// AppIDs are the apps the host runs.
	AppIDs []string
	Logger *slog.Logger
	// OnDeliver receives delivery outcomes ("ok", "retry", "deadletter")
	// and, from the embedded backend, the events of its unrouted logs
	// ("unrouted", "unrouted-routed", "unrouted-dropped", with sub naming
	// the publishing app; see embedded.Options.OnDeliver).
	OnDeliver func(sub backend.Subscription, outcome string)
	// Tracing says the host traces: a backend whose engine calls into the
	// host (Dapr) then reads the trace context of its deliveries.
	Tracing bool
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Opener opens one kind of backend. It returns the backend and a line that
// describes it for the start-up log.
type Opener func(ctx context.Context, c Config) (b backend.Backend, describe string, err error)

var registry = struct {
	sync.Mutex
	m map[string]Opener
}{m: map[string]Opener{}}

// Register makes a backend available under name. Call it from init.
func Register(name string, open Opener) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		panic("hostbackend: backend " + name + " registered twice")
	}
	registry.m[name] = open
}

// Registered returns the names of the backends linked into this binary.
func Registered() []string {
	registry.Lock()
	defer registry.Unlock()
	out := make([]string, 0, len(registry.m))
	for n := range registry.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookup(name string) (Opener, bool) {
	registry.Lock()
	defer registry.Unlock()
	o, ok := registry.m[name]
	return o, ok
}

// SidecarEnv lists the variables whose presence means a Dapr sidecar.
var SidecarEnv = []string{"DAPR_GRPC_PORT", "DAPR_HTTP_PORT"}

// Choose returns the backend to open and why.
func Choose(flag string, getenv func(string) string) (name, why string, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	switch flag {
	case "", "auto":
		for _, k := range SidecarEnv {
			if v := getenv(k); v != "" {
				return "dapr", k + "=" + v + " is set, so a Dapr sidecar is present", nil
			}
		}
		return "embedded", "no Dapr sidecar in the environment: " + strings.Join(SidecarEnv, " and ") + " are unset", nil
	case "embedded", "dapr":
		return flag, "--backend " + flag, nil
	}
	if _, ok := lookup(flag); ok {
		return flag, "--backend " + flag, nil
	}
	return "", "", fmt.Errorf("--backend %q: use auto, embedded or dapr", flag)
}

// Open chooses the backend, opens it and logs the choice.
func Open(ctx context.Context, c Config) (backend.Backend, error) {
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	name, why, err := Choose(c.Backend, c.Getenv)
	if err != nil {
		return nil, err
	}
	open, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("backend %s was chosen (%s), but this binary was built without it: rebuild with `roam build --backends embedded,%s` (roam run links it when given --backend %s), or pass --backend embedded",
			name, why, name, name)
	}
	b, describe, err := open(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("backend %s (%s): %w", name, why, err)
	}
	c.Logger.Info("backend selected", "backend", name, "reason", why, "detail", describe)
	return b, nil
}

func init() {
	Register("embedded", openEmbedded)
}

func openEmbedded(ctx context.Context, c Config) (backend.Backend, string, error) {
	b, err := embedded.Open(embedded.Options{
		Dir: c.DataDir, Config: c.Config, Secrets: c.Secrets, Logger: c.Logger, OnDeliver: c.OnDeliver,
	})
	if err != nil {
		return nil, "", err
	}
	// Open (and lock) the apps' data files now: a second host of the same
	// app on this data directory must fail here, not report ready and
	// then fail every call on the lock.
	if err := b.OpenApps(c.AppIDs...); err != nil {
		b.Close()
		return nil, "", err
	}
	return b, "data in " + b.Dir(), nil
}
