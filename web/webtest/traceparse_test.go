package webtest

import (
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/roam-dev/roam/internal/tracectx"
)

// TestTraceContextParse: the browser host accepts exactly the trace
// contexts the Go hosts accept. wire.js's traceContext and the Go parsers
// (internal/tracectx for traceparent, OpenTelemetry's ParseTraceState for
// tracestate, which tracectx.Parse keeps only up to 1024 characters) judge
// the same inputs: W3C's examples, edge cases, and random mutations of both.
func TestTraceContextParse(t *testing.T) {
	needBrowser(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tps := []string{
		tp, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-ever",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		strings.ToUpper(tp), " " + tp, tp + " ", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
	}
	tss := []string{
		"", "roam=t61rcWkgMzE", "roam=t61rcWkgMzE, congo=ucfJifl5GOE", "a=1,,b=2", " a=1 ", "a=1,a=2", "Bad=1", "k=", "=v", "k",
		"k=v=w", "k=v,", ",k=v", "t@s=1", "0t@s=1", "t@S=1", "t@sys-too-long-x=1", "t@sys-too-long-xy=1", "k=a b", "k= b", "k=b ", "k=\x7f", "k=\u00e9",
		"k=v\tx", "k=v ,l=w", "a*b/c_d-e=1", strings.Repeat("k", 256) + "=1", strings.Repeat("k", 257) + "=1",
		"k=" + strings.Repeat("v", 256), "k=" + strings.Repeat("v", 257),
	}
	var many []string
	for i := range 33 {
		many = append(many, string(rune('a'+i%26))+strings.Repeat("x", i/26)+"=1")
	}
	tss = append(tss, strings.Join(many[:32], ","), strings.Join(many, ","), strings.Repeat("k=v,", 300)[:1023]+"x")
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789abcdefABF-_x =,@*/\t"
	mutate := func(s string) string {
		b := []byte(s)
		for n := 1 + r.IntN(2); n > 0 && len(b) > 0; n-- {
			switch i := r.IntN(len(b)); r.IntN(4) {
			case 0:
				b = b[:i]
			case 1:
				b = append(b[:i:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
			default:
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		return string(b)
	}
	// Each traceparent with a valid tracestate, each tracestate with a
	// valid traceparent, and mutations of both together.
	var in [][2]string
	for _, p := range tps {
		in = append(in, [2]string{p, "k=v"})
	}
	for _, s := range tss {
		in = append(in, [2]string{tp, s})
	}
	for range 1000 {
		in = append(in, [2]string{mutate(tp), mutate("roam=t61rcWkgMzE,vendor@sys=a-b_c")})
	}

	type verdict struct {
		TP bool `json:"tp"`
		TS bool `json:"ts"`
	}
	var want []verdict
	for _, c := range in {
		p, s := c[0], c[1]
		_, err := trace.ParseTraceState(s)
		valid := tracectx.Valid(p)
		want = append(want, verdict{valid, valid && s != "" && len(s) <= 1024 && err == nil})
	}
	var tpOK, tsOK, tsBad int
	for _, v := range want {
		switch {
		case v.TS:
			tsOK++
		case v.TP:
			tsBad++
		}
		if v.TP {
			tpOK++
		}
	}
	if tpOK < 100 || tpOK > len(want)-100 || tsOK < 50 || tsBad < 50 {
		t.Fatalf("the vectors are lopsided: %d of %d traceparents valid; of those, %d tracestates valid, %d not", tpOK, len(want), tsOK, tsBad)
	}
	arg, _ := json.Marshal(in)
	cmd := exec.Command("node", "--input-type=module", "-e", `
import { traceContext } from './src/wire.js';
let s = '';
process.stdin.on('data', (d) => { s += d; });
process.stdin.on('end', () => {
  const out = JSON.parse(s).map(([tp, ts]) => {
    const c = traceContext(tp, ts);
    return { tp: c !== null, ts: c !== null && c.tracestate === ts && ts !== '' };
  });
  process.stdout.write(JSON.stringify(out));
});`)
	cmd.Dir = filepath.Join(repoRoot, "web")
	cmd.Stdin = strings.NewReader(string(arg))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var got []verdict
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(want) {
		t.Fatalf("node answered %d verdicts (%v), want %d", len(got), err, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("traceparent %q tracestate %q: browser host %+v, Go %+v", in[i][0], in[i][1], got[i], want[i])
		}
	}
}
