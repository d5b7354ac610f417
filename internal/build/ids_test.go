package build

import (
	"context"
	"slices"
	"testing"
)

// TestFindAppIDs: app ids are read from literals, from constants of the
// app's package and of packages it imports (renamed or not, summed), and
// an id computed at run time is left unknown.
func TestFindAppIDs(t *testing.T) {
	pkgs, _, err := FindApps(context.Background(), ".", []string{"./testdata/ids/..."})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, p := range pkgs {
		got[p.ImportPath[len("github.com/roam-dev/roam/internal/build/testdata/ids/"):]] = p.AppIDs
	}
	want := map[string][]string{"lit": {"literal"}, "local": {"local"}, "remote": {"ship-orders"}, "dynamic": nil}
	if len(got) != len(want) {
		t.Fatalf("apps %v, want %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !slices.Equal(g, w) {
			t.Errorf("%s: ids %q, want %q", k, g, w)
		}
	}
	// The shop's apps take their ids from the contract's constants.
	shop, _, err := FindApps(context.Background(), "../..", []string{"./examples/shop"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range shop {
		ids = append(ids, p.AppIDs...)
	}
	if !slices.Equal(ids, []string{"inventory", "orders"}) {
		t.Errorf("shop ids %q", ids)
	}
}
