package host

import (
	"flag"
	"io"
	"reflect"
	"strings"
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
	if def.Addr != "127.0.0.1" || def.Port != 8080 || def.Backend != "auto" || def.RequestTimeout != 30*time.Second || def.MaxConnections != 0 {
		t.Fatalf("defaults: %+v", def)
	}
	want := Flags{Addr: "0.0.0.0", Port: 0, DataDir: "/d", LogLevel: "debug", LogFormat: "json", Pprof: true,
		MaxBodyBytes: 12, RequestTimeout: time.Second, ShutdownGrace: 2 * time.Second,
		CORSOrigins: "http://a, http://b", StateAPI: true, Backend: "embedded", MaxConnections: 4}
	if got := parse(want.Args()); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got := want.Origins(); !reflect.DeepEqual(got, []string{"http://a", "http://b"}) {
		t.Fatalf("Origins = %q", got)
	}
}

// TestFlagsMaxConnections: --max-connections takes 0 (the default) and
// more, and refuses a negative number or no number, naming the flag.
func TestFlagsMaxConnections(t *testing.T) {
	parse := func(args ...string) (Flags, error) {
		var f Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.Register(fs)
		return f, fs.Parse(args)
	}
	for arg, want := range map[string]int{"0": 0, "4": 4, "0x10": 16, "100000": 100000} {
		if f, err := parse("--max-connections", arg); err != nil || f.MaxConnections != want {
			t.Errorf("--max-connections %s: %d, %v; want %d", arg, f.MaxConnections, err, want)
		}
	}
	for arg, msg := range map[string]string{"-1": "must not be negative", "-100": "must not be negative", "many": "not a whole number", "1.5": "not a whole number", "1" + strings.Repeat("0", 30): "out of range"} {
		_, err := parse("--max-connections", arg)
		if err == nil || !strings.Contains(err.Error(), "-max-connections") || !strings.Contains(err.Error(), msg) {
			t.Errorf("--max-connections %s: %v; want an error naming the flag and saying %q", arg, err, msg)
		}
	}
}
