// Package conformance holds the suites that every Roam host and backend runs
// unchanged: when a new target passes them, it works.
//
// Two kinds live here. Backend suites (package backendtest) check an
// implementation of the backend SPI directly. App-level vectors (this
// package) are data files of request → expected response steps, run through a
// Driver against the shop and the conformance test app on any host: today
// the native host over HTTP; the edge and browser hosts bring drivers of
// their own.
package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// Vectors holds the app-level vector files.
//
//go:embed vectors/*.json
var Vectors embed.FS

// Driver sends one call to an app on the host under test and returns the
// transport's status and body. Status follows the HTTP mapping of codes
// (host.HTTPStatus), whatever the host's real transport is.
type Driver interface {
	Call(ctx context.Context, app, method string, body []byte) (status int, reply []byte, err error)
}

// Vector is one scenario.
type Vector struct {
	Name  string `json:"name"`
	Doc   string `json:"doc"`
	Steps []Step `json:"steps"`
}

// Step is one call and what it must return.
//
// Expected bodies are matched structurally: objects must have exactly the
// expected keys, except that a key whose expected value is "$any" may hold
// anything. A string "$name" captures the actual value on first use and must
// equal it afterwards; "${name}" in a request body is replaced by a capture.
// "${run}" is unique per run, so vectors can be rerun on durable backends.
type Step struct {
	Call string          `json:"call"` // "app.Method"
	Body json.RawMessage `json:"body"`
	// Raw, when set, is sent verbatim instead of Body (for malformed input).
	Raw *string `json:"raw"`
	// RawRepeat repeats Raw this many times (for oversized bodies).
	RawRepeat int `json:"raw_repeat"`
	// RawBase64, when set, is sent decoded instead of Body: bytes that no
	// JSON string of a vector file can hold, such as invalid UTF-8.
	RawBase64 *string         `json:"raw_base64"`
	Status    int             `json:"status"`
	Expect    json.RawMessage `json:"expect"`
	// Eventually retries the step until it matches or 20s pass: for
	// effects of asynchronous event delivery.
	Eventually bool `json:"eventually"`
	// Repeat sends the same call this many times concurrently, each expected
	// to match (for concurrency vectors); Captures are not taken.
	Concurrent int `json:"concurrent"`
}

// LoadVectors reads every vector file, sorted by name.
func LoadVectors() ([]Vector, error) {
	names, err := fs.Glob(Vectors, "vectors/*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Vector
	for _, n := range names {
		b, err := Vectors.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var v Vector
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if v.Name == "" {
			v.Name = strings.TrimSuffix(path.Base(n), ".json")
		}
		out = append(out, v)
	}
	return out, nil
}

// Transcript is what a run saw: each step's status and body, in order. The
// run id and every captured value (ETags, generated ids) are replaced by
// their names, so that transcripts of two hosts compare byte for byte.
type Transcript []string

// RunVectors runs every vector against d as a subtest and returns the
// transcripts by vector name.
func RunVectors(t *testing.T, d Driver) map[string]Transcript {
	t.Helper()
	vs, err := LoadVectors()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Transcript{}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			out[v.Name] = RunVector(t, d, v)
		})
	}
	return out
}

// RunVector runs one vector against d.
func RunVector(t *testing.T, d Driver, v Vector) Transcript {
	t.Helper()
	r := &run{caps: map[string]string{"run": newRunID()}}
	var tr Transcript
	for i, st := range v.Steps {
		app, method, ok := strings.Cut(st.Call, ".")
		if !ok {
			t.Fatalf("step %d: call %q is not app.Method", i, st.Call)
		}
		var body []byte
		switch {
		case st.Raw != nil:
			body = bytes.Repeat([]byte(r.subst(*st.Raw)), max(1, st.RawRepeat))
		case st.RawBase64 != nil:
			b, err := base64.StdEncoding.DecodeString(*st.RawBase64)
			if err != nil {
				t.Fatalf("step %d: raw_base64: %v", i, err)
			}
			body = b
		case len(st.Body) > 0:
			body = []byte(r.subst(string(st.Body)))
		}
		n := max(1, st.Concurrent)
		deadline := time.Now().Add(20 * time.Second)
		for {
			results := make(chan string, n)
			errs := make(chan error, n)
			for j := 0; j < n; j++ {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					status, reply, err := d.Call(ctx, app, method, body)
					if err != nil {
						errs <- err
						return
					}
					if m := r.check(st, status, reply, n == 1); m != "" {
						errs <- fmt.Errorf("%s", m)
						return
					}
					results <- fmt.Sprintf("%d %s", status, reply)
				}()
			}
			var failure error
			var got []string
			for j := 0; j < n; j++ {
				select {
				case err := <-errs:
					failure = err
				case s := <-results:
					got = append(got, s)
				}
			}
			if failure == nil {
				sort.Strings(got)
				for _, g := range got {
					tr = append(tr, r.normalize(g))
				}
				break
			}
			if !st.Eventually || time.Now().After(deadline) {
				t.Fatalf("%s step %d (%s %s): %v", v.Name, i, st.Call, body, failure)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return tr
}

type run struct {
	caps map[string]string
}

var substRE = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}`)

func (r *run) subst(s string) string {
	return substRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := r.caps[name]; ok {
			return v
		}
		return m
	})
}

// check compares a reply with the step's expectations and returns a
// description of the mismatch, or "". Captures are committed only on match.
func (r *run) check(st Step, status int, reply []byte, capture bool) string {
	if st.Status != 0 && status != st.Status {
		return fmt.Sprintf("status %d, want %d; body %s", status, st.Status, reply)
	}
	if len(st.Expect) == 0 {
		return ""
	}
	var want, got any
	if err := json.Unmarshal([]byte(r.subst(string(st.Expect))), &want); err != nil {
		return "bad expectation: " + err.Error()
	}
	if err := json.Unmarshal(reply, &got); err != nil {
		return fmt.Sprintf("reply is not JSON: %q", reply)
	}
	caps := map[string]string{}
	if m := match("$", want, got, r.caps, caps); m != "" {
		return m + "; body " + string(reply)
	}
	if capture {
		for k, v := range caps {
			r.caps[k] = v
		}
	}
	return ""
}

var captureRE = regexp.MustCompile(`^\$([a-zA-Z_][a-zA-Z0-9_]*)$`)

func match(at string, want, got any, known, caps map[string]string) string {
	if s, ok := want.(string); ok {
		if s == "$any" {
			return ""
		}
		if m := captureRE.FindStringSubmatch(s); m != nil {
			gs, ok := got.(string)
			if !ok || gs == "" {
				return fmt.Sprintf("%s: want a non-empty string to capture as %s, got %v", at, s, got)
			}
			name := m[1]
			if v, ok := known[name]; ok && v != gs {
				return fmt.Sprintf("%s: %s was %q, now %q", at, s, v, gs)
			}
			if v, ok := caps[name]; ok && v != gs {
				return fmt.Sprintf("%s: %s was %q, now %q", at, s, v, gs)
			}
			caps[name] = gs
			return ""
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, got %v", at, got)
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				return fmt.Sprintf("%s: missing key %q", at, k)
			}
			if m := match(at+"."+k, wv, gv, known, caps); m != "" {
				return m
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Sprintf("%s: unexpected key %q", at, k)
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: want %d elements, got %v", at, len(w), got)
		}
		for i := range w {
			if m := match(fmt.Sprintf("%s[%d]", at, i), w[i], g[i], known, caps); m != "" {
				return m
			}
		}
		return ""
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Sprintf("%s: want %v, got %v", at, want, got)
	}
	return ""
}

// normalize replaces the run id and each captured JSON string value, alone
// or quoted inside another string, with a placeholder naming it.
func (r *run) normalize(s string) string {
	s = strings.ReplaceAll(s, r.caps["run"], "RUN")
	names := make([]string, 0, len(r.caps))
	for k := range r.caps {
		if k != "run" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		s = strings.ReplaceAll(s, `"`+r.caps[k]+`"`, `"<`+k+`>"`)
		// Also where a message quotes it: "order \"<id>\" changed".
		s = strings.ReplaceAll(s, `\"`+r.caps[k]+`\"`, `\"<`+k+`>\"`)
	}
	return s
}

func newRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
