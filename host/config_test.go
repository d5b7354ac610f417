package host

import (
	"context"
	"testing"

	"github.com/roam-dev/roam/sdk"
)

type mapConfig map[string]string

func (m mapConfig) Get(_ context.Context, key string) (string, error) {
	if v, ok := m[key]; ok {
		return v, nil
	}
	return "", sdk.Errorf(sdk.NotFound, "no %q", key)
}

func TestEnvConfig(t *testing.T) {
	if got := ConfigEnvName("inventory-app-id"); got != "ROAM_CONFIG_INVENTORY_APP_ID" {
		t.Fatalf("ConfigEnvName = %q", got)
	}
	if got := ConfigEnvName("a.b/C9"); got != "ROAM_CONFIG_A_B_C9" {
		t.Fatalf("ConfigEnvName = %q", got)
	}
	env := map[string]string{"ROAM_CONFIG_INVENTORY_APP_ID": "inventory.shop", "ROAM_CONFIG_EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c := EnvConfig(mapConfig{"inventory-app-id": "inventory", "other": "x"}, lookup)
	ctx := context.Background()
	for key, want := range map[string]string{"inventory-app-id": "inventory.shop", "other": "x", "empty": ""} {
		got, err := c.Get(ctx, key)
		if err != nil || got != want {
			t.Errorf("Get(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	if _, err := c.Get(ctx, "missing"); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("Get(missing): %v, want NotFound", err)
	}
	if _, err := EnvConfig(nil, lookup).Get(ctx, "missing"); sdk.CodeOf(err) != sdk.NotFound {
		t.Errorf("nil next: %v, want NotFound", err)
	}
}
