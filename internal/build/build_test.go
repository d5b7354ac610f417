package build

import (
	"strings"
	"testing"
)

// TestLinks: a lean build links no backend but the embedded one and no
// tracing; --backends otlp links tracing; a development build links it when
// the environment asks for it; unknown names are refused.
func TestLinks(t *testing.T) {
	pkgs := []Package{{ImportPath: "example.com/m/orders"}}
	for _, tc := range []struct {
		backends []string
		tracing  bool
		want     []string
		not      []string
	}{
		{[]string{"embedded"}, false, nil, []string{BackendPackages["dapr"], TracingPackage}},
		{[]string{"embedded", "otlp"}, false, []string{TracingPackage}, []string{BackendPackages["dapr"]}},
		{[]string{"embedded"}, true, []string{TracingPackage}, nil},
		{[]string{"embedded", "otlp", "dapr"}, true, []string{TracingPackage, BackendPackages["dapr"]}, nil},
	} {
		src, err := nativeMain(pkgs, tc.backends, tc.tracing)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if strings.Count(string(src), `"`+w+`"`) != 1 {
				t.Errorf("%v (tracing %v): %s not imported once:\n%s", tc.backends, tc.tracing, w, src)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(string(src), `"`+n+`"`) {
				t.Errorf("%v (tracing %v): %s imported:\n%s", tc.backends, tc.tracing, n, src)
			}
		}
	}
	if _, err := ParseBackends("embedded,otlp,dapr"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseBackends("embedded,zipkin"); err == nil || !strings.Contains(err.Error(), "otlp") {
		t.Fatalf("unknown backend: %v", err)
	}
}
