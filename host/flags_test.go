package host

import (
	"flag"
	"io"
	"reflect"
	"testing"
	"time"
)

// TestFlagsRoundTrip: what Args writes, Register parses back to the same
// settings (roam run relies on it to pass its flags to the host it builds).
func TestFlagsRoundTrip(t *testing.T) {
	parse := func(args []string) Flags {
		var f Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.Register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f
	}
	def := parse(nil)
	if def.Addr != "127.0.0.1" || def.Port != 8080 || def.Backend != "auto" || def.RequestTimeout != 30*time.Second {
		t.Fatalf("defaults: %+v", def)
	}
	want := Flags{Addr: "0.0.0.0", Port: 0, DataDir: "/d", LogLevel: "debug", LogFormat: "json", Pprof: true,
		MaxBodyBytes: 12, RequestTimeout: time.Second, ShutdownGrace: 2 * time.Second,
		CORSOrigins: "http://a, http://b", StateAPI: true, Backend: "embedded"}
	if got := parse(want.Args()); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got := want.Origins(); !reflect.DeepEqual(got, []string{"http://a", "http://b"}) {
		t.Fatalf("Origins = %q", got)
	}
}
