package webtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/roam-dev/roam/backend/embedded"
	"github.com/roam-dev/roam/backend/memory"
	"github.com/roam-dev/roam/conformance"
	"github.com/roam-dev/roam/conformance/backendtest"
	"github.com/roam-dev/roam/conformance/testapp"
	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/host/native"
	"github.com/roam-dev/roam/sdk"
)

// TestKeyEchoParity: a message that names a state key names its first 128
// bytes, cut between characters, and its length (sdk.QuoteKey), and the
// browser host prints the same bytes as the Go hosts (wire.js's quoteKey,
// over goQuote, which is strconv.Quote). It compares the two on the same
// inputs: the quoting functions, on chosen and random strings and every
// code point; the store's messages against the memory and embedded
// backends'; and the replies of a page and of the native host to calls
// whose errors name a 16 KiB key.
func TestKeyEchoParity(t *testing.T) {
	needBrowser(t)
	t.Run("quote", keyEchoQuote)
	t.Run("store", keyEchoStore)
	t.Run("hosts", keyEchoHosts)
}

// nodeEval runs script (an ES module in web/, which reads its input as
// JSON from the variable input) with in on stdin, and decodes its JSON
// output into out.
func nodeEval(t *testing.T, script string, in, out any) {
	t.Helper()
	arg, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "--input-type=module", "-e", `
let s = '';
process.stdin.setEncoding('utf8'); // a chunk may end inside a character
process.stdin.on('data', (d) => { s += d; });
process.stdin.on('end', async () => {
  const input = JSON.parse(s);
  process.stdout.write(JSON.stringify(await (async () => {`+script+`})()));
});`)
	cmd.Dir = filepath.Join(repoRoot, "web")
	cmd.Stdin = strings.NewReader(string(arg))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("node's output %.300s: %v", b, err)
	}
}

// keyEchoAlphabet has what a cut or a quote can go wrong on: characters of
// 1 to 4 bytes (and of two UTF-16 units), escapes, characters Go does not
// print (C1 controls, spaces, format characters, private use, a character
// assigned after Go's Unicode 15.0), and U+FFFD, which Go prints as is.
var keyEchoAlphabet = []rune("ab\"\\\n\t\x00\x07\x7féß€😀\u0301\u0085\u00a0\u00ad\u2028\ufeff\ue000\ufffd\U000e0001\U0010fffd\U0001fae9\u0378")

func keyEchoQuote(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	in := []string{
		"", "k", a(64), a(65), a(63) + "é", a(62) + "é" + a(9), a(62) + "€" + a(20), "\"" + a(70),
		a(128), a(129), a(127) + "é", a(126) + "é" + a(9), a(125) + "😀", a(124) + "😀b",
		strings.Repeat("\x00", 16<<10), strings.Repeat("€", (16<<10)/3) + "k",
	}
	r := rand.New(rand.NewPCG(7, 11))
	for range 3000 {
		n := r.IntN(80)
		rs := make([]rune, n)
		for i := range rs {
			rs[i] = keyEchoAlphabet[r.IntN(len(keyEchoAlphabet))]
		}
		if r.IntN(2) == 0 {
			in = append(in, a(r.IntN(130))+string(rs)) // cuts near byte 128
		} else {
			in = append(in, string(rs))
		}
	}
	// Invalid UTF-8 reaches the browser host only as a guest's bytes, which
	// it decodes as TextDecoder does (each invalid byte or truncated
	// sequence to U+FFFD): it holds, and names, another key than a Go host
	// would. It must name that key as a Go host names it.
	raw := []string{a(127) + "\xff\xfe", a(125) + "\xff", "\xe2\x82" + a(130), a(126) + "\xf0\x9f\x98", "\xc0\xaf" + a(200)}
	var rawB64 []string
	for _, s := range raw {
		rawB64 = append(rawB64, base64.StdEncoding.EncodeToString([]byte(s)))
	}
	var got struct {
		Name, Key, Quote []string
		Raw              [][2]string
		Literal          [][2]int
	}
	nodeEval(t, `
const { quoteName, quoteKey, goQuote, fromUTF8 } = await import('./src/wire.js');
const literal = [];
for (let c = 0x80; c <= 0x10ffff; c++) {
  if (c >= 0xd800 && c <= 0xdfff) continue;
  const ch = String.fromCodePoint(c);
  if (goQuote(ch) !== '"' + ch + '"') continue;
  const last = literal[literal.length - 1];
  if (last && last[1] === c - 1) last[1] = c;
  else literal.push([c, c]);
}
return {
  Name: input.in.map(quoteName), Key: input.in.map(quoteKey), Quote: input.in.map(goQuote),
  Raw: input.raw.map((b) => { const k = fromUTF8(Buffer.from(b, 'base64')); return [k, quoteKey(k)]; }),
  Literal: literal,
};`, map[string]any{"in": in, "raw": rawB64}, &got)
	if len(got.Name) != len(in) || len(got.Key) != len(in) || len(got.Quote) != len(in) || len(got.Raw) != len(raw) {
		t.Fatalf("node answered %d, %d, %d and %d strings", len(got.Name), len(got.Key), len(got.Quote), len(got.Raw))
	}
	bad := 0
	for i, s := range in {
		for _, c := range []struct{ what, js, goes string }{
			{"quoteName", got.Name[i], sdk.QuoteName(s)},
			{"quoteKey", got.Key[i], sdk.QuoteKey(s)},
			{"goQuote", got.Quote[i], strconv.Quote(s)},
		} {
			if c.js != c.goes && bad < 20 {
				bad++
				t.Errorf("%s(%.300q):\n browser: %.300s\n Go:      %.300s", c.what, s, c.js, c.goes)
			}
		}
		if n := len(sdk.QuoteKey(s)); n > 4*128+len("…(16384 bytes)")+2 {
			t.Errorf("QuoteKey of %d bytes is %d bytes", len(s), n)
		}
	}
	for i, s := range raw {
		k, js := got.Raw[i][0], got.Raw[i][1]
		if !utf8.ValidString(k) || !strings.Contains(k, "\ufffd") {
			t.Errorf("bytes %q decode to %q, with no U+FFFD", s, k)
		}
		if goes := sdk.QuoteKey(k); js != goes {
			t.Errorf("bytes %q, held as %q:\n browser: %s\n Go:      %s", s, k, js, goes)
		}
	}
	// Every code point goQuote prints as itself, and only those, Go prints
	// as itself. When they part, Go has moved to a newer Unicode edition
	// (or the engine has): wire.js's newerThanGo is to change.
	var want [][2]int
	for c := rune(0x80); c <= utf8.MaxRune; c++ {
		if c >= 0xd800 && c <= 0xdfff || !strconv.IsPrint(c) {
			continue
		}
		if n := len(want); n > 0 && want[n-1][1] == int(c)-1 {
			want[n-1][1] = int(c)
		} else {
			want = append(want, [2]int{int(c), int(c)})
		}
	}
	if jsOnly, goOnly := rangeDiff(got.Literal, want), rangeDiff(want, got.Literal); len(jsOnly)+len(goOnly) > 0 {
		t.Errorf("goQuote prints as themselves code points that Go escapes: %s;\nand escapes code points that Go prints as themselves: %s\n(unicode.Version is %s)",
			rangeList(jsOnly), rangeList(goOnly), unicode.Version)
	}
}

// rangeDiff is the code points of the ranges a that b does not hold.
func rangeDiff(a, b [][2]int) [][2]int {
	in := func(c int) bool {
		for _, r := range b {
			if r[0] <= c && c <= r[1] {
				return true
			}
		}
		return false
	}
	var out [][2]int
	for _, r := range a {
		for c := r[0]; c <= r[1]; c++ {
			if in(c) {
				continue
			}
			if n := len(out); n > 0 && out[n-1][1] == c-1 {
				out[n-1][1] = c
			} else {
				out = append(out, [2]int{c, c})
			}
		}
	}
	return out
}

func rangeList(rs [][2]int) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "0x%x, 0x%x, ", r[0], r[1])
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// keyEchoKeys are the keys whose messages the store and hosts subtests
// compare: short, at and past the cut, 16 KiB, and ones Go quotes with
// escapes or prints as is where JavaScript might not.
var keyEchoKeys = []string{
	"k", strings.Repeat("a", 128), strings.Repeat("a", 128) + "b", strings.Repeat("€", (16<<10)/3) + "k",
	"\ufffd", "nb\u00a0sp", "e\u0301", "\U0001fae9", "\U0001f600" + strings.Repeat("é", 70), "tab\tquote\"",
}

func keyEchoStore(t *testing.T) {
	ctx := context.Background()
	emb, err := embedded.Open(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	mem := memory.New(memory.Options{})
	defer mem.Close()
	var got [][]string
	nodeEval(t, `
const { Store } = await import('./src/store.js');
const { keyEchoSteps } = await import('./test/keyecho.mjs');
const s = new Store({ name: 'unused' }); // nothing is flushed
return input.map((key) => keyEchoSteps(s, key));`, keyEchoKeys, &got)
	if len(got) != len(keyEchoKeys) {
		t.Fatalf("node answered for %d keys, want %d", len(got), len(keyEchoKeys))
	}
	for i, key := range keyEchoKeys {
		for name, st := range map[string]sdk.State{"memory": mem.State("a", "st"), "embedded": emb.State("a", "st")} {
			errs := backendtest.KeyEchoSteps(ctx, st, key)
			if len(got[i]) != len(errs) {
				t.Fatalf("node answered %d steps, want %d", len(got[i]), len(errs))
			}
			for j, err := range errs {
				goes := "OK"
				if err != nil {
					goes = sdk.CodeOf(err).String() + ": " + err.Error()
				}
				if got[i][j] != goes {
					t.Errorf("key %.40q, step %d:\n browser: %.300s\n %s: %.300s", key, j, got[i][j], name, goes)
				}
				if len(goes) > 600 {
					t.Errorf("key of %d bytes, step %d: a message of %d bytes", len(key), j, len(goes))
				}
			}
		}
	}
}

// keyEchoHosts makes the same calls, whose errors name a key, of a page
// and of the native host, through the conformance app: the browser host's
// replies must equal the native host's byte for byte, and stay short.
func keyEchoHosts(t *testing.T) {
	b := startBrowser(t)
	ts := serveAssets(t, nil)
	if e := b.openPage(pageURL(ts.URL, []string{"conformance"}, `{"db":"keyecho-`+runID()+`"}`)); e != "" {
		t.Fatalf("loading modules: %s\n%s", e, b.logs())
	}
	emb, err := embedded.Open(embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	srv, err := native.NewServer(emb, []*sdk.App{testapp.App}, host.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	drivers := []struct {
		name string
		d    conformance.Driver
	}{{"browser", pageDriver{b}}, {"native", conformance.HTTPDriver{BaseURL: hs.URL}}}

	ctx := context.Background()
	// The last key is sent as a lone surrogate escape, which the guest
	// decodes to U+FFFD.
	for _, key := range append(keyEchoKeys, "lone\ufffd") {
		k, _ := json.Marshal(key)
		if key == "lone\ufffd" {
			k = []byte(`"lone\ud800"`)
		}
		steps := []struct{ method, body string }{
			{"Get", `{"key":K}`},
			{"Put", `{"key":K,"value":1,"etag":"999"}`},
			{"Put", `{"key":K,"value":1}`},
			{"Put", `{"key":K,"value":2,"if_absent":true}`},
			{"Put", `{"key":K,"value":2,"etag":"999"}`},
			{"Delete", `{"key":K,"etag":"999"}`},
			{"Transact", `{"ops":[{"op":"set","key":K,"value":3,"if_absent":true}]}`},
			{"Transact", `{"ops":[{"op":"delete","key":K,"if_absent":true}]}`},
			{"Put", `{"key":K,"value":4,"etag":"1","if_absent":true}`},
			{"Put", `{"key":K,"value":4,"ttl_ms":-5}`},
		}
		for j, s := range steps {
			body := []byte(strings.ReplaceAll(s.body, "K", string(k)))
			var replies [2]string
			for i, d := range drivers {
				status, reply, err := d.d.Call(ctx, "conformance", s.method, body)
				if err != nil {
					t.Fatalf("%s: %s: %v\n%s", d.name, s.method, err, b.logs())
				}
				replies[i] = fmt.Sprintf("%d %s", status, reply)
				if j != 2 && (status < 400 || len(reply) > 600) {
					t.Errorf("%s, key of %d bytes, step %d: %d, a reply of %d bytes: %.300s", d.name, len(key), j, status, len(reply), reply)
				}
			}
			if replies[0] != replies[1] {
				t.Errorf("key %.40q, step %d (%s %.60s):\n browser: %.300s\n native:  %.300s", key, j, s.method, body, replies[0], replies[1])
			}
		}
	}
}
