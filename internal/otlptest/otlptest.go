// Package otlptest is an in-process OTLP trace receiver for tests: it
// implements the collector's TraceService over gRPC and the OTLP/HTTP
// /v1/traces endpoint (binary protobuf, optionally gzipped), on loopback
// ports, and keeps every span it receives. Decoding uses the generated
// types of opentelemetry-proto, so a span that arrives here was encoded as
// any collector would read it.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is a received span, flattened for assertions.
type Span struct {
	Service  string            // the resource's service.name
	Resource map[string]string // the resource's attributes
	Scope    string            // the instrumentation scope's name
	TraceID  string            // hex
	SpanID   string            // hex
	ParentID string            // hex; "" for a root
	Name     string
	Kind     tracepb.Span_SpanKind
	Attrs    map[string]string
	Links    []Link
	Status   tracepb.Status_StatusCode
	Message  string // the status message
	Flags    uint32
}

// Link is a span link.
type Link struct{ TraceID, SpanID string }

// Attr returns the attribute k, or "".
func (s Span) Attr(k string) string { return s.Attrs[k] }

func (s Span) String() string {
	kind := strings.ToLower(strings.TrimPrefix(s.Kind.String(), "SPAN_KIND_"))
	out := fmt.Sprintf("%s [%s] %s span=%s", s.Name, kind, s.Service, s.SpanID)
	if s.Status == tracepb.Status_STATUS_CODE_ERROR {
		out += " ERROR " + s.Message
	}
	for _, l := range s.Links {
		out += " link=" + l.TraceID + "/" + l.SpanID
	}
	return out
}

// Receiver collects spans.
type Receiver struct {
	// GRPCAddr is host:port of the gRPC TraceService.
	GRPCAddr string
	// URL is the base URL of the HTTP receiver: spans are posted to
	// URL+"/v1/traces".
	URL string

	mu       sync.Mutex
	spans    []Span
	requests int
	changed  chan struct{}
}

// Start starts a receiver on loopback ports; it stops when t ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{changed: make(chan struct{})}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, traceService{r: r})
	go gs.Serve(gl)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.serveHTTP)
	hs := &http.Server{Handler: mux}
	go hs.Serve(hl)
	t.Cleanup(func() {
		gs.Stop()
		hs.Close()
	})
	r.GRPCAddr = gl.Addr().String()
	r.URL = "http://" + hl.Addr().String()
	return r
}

// Env returns the OTEL_* environment of a host exporting to r over
// protocol ("http/protobuf" or "grpc"), plus extra name=value pairs, as a
// getenv function.
func (r *Receiver) Env(protocol string, extra ...string) func(string) string {
	env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
	if protocol == "grpc" {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://" + r.GRPCAddr
	} else {
		env["OTEL_EXPORTER_OTLP_ENDPOINT"] = r.URL
	}
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return func(k string) string { return env[k] }
}

type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, "not an ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *Receiver) add(req *coltracepb.ExportTraceServiceRequest) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					Service: res["service.name"], Resource: res, Scope: ss.GetScope().GetName(),
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					Name: sp.GetName(), Kind: sp.GetKind(), Attrs: attrs(sp.GetAttributes()),
					Status: sp.GetStatus().GetCode(), Message: sp.GetStatus().GetMessage(), Flags: sp.GetFlags(),
				}
				if p := sp.GetParentSpanId(); len(p) > 0 {
					s.ParentID = hex.EncodeToString(p)
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, Link{hex.EncodeToString(l.GetTraceId()), hex.EncodeToString(l.GetSpanId())})
				}
				got = append(got, s)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.requests++
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, value(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return ""
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Requests returns how many export requests arrived.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Reset forgets the spans received so far.
func (r *Receiver) Reset() {
	r.mu.Lock()
	r.spans = nil
	r.mu.Unlock()
}

// Wait returns the spans once cond holds for them, failing t when it does
// not within d (spans an exporter batches arrive when it flushes; this
// waits for them, it does not time anything).
func (r *Receiver) Wait(t testing.TB, what string, d time.Duration, cond func([]Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("waited %v for %s; received %d spans:\n%s", d, what, len(spans), Tree(spans))
			return nil
		}
	}
}

// Find returns the spans named name (and, when service is not "", of that
// service).
func Find(spans []Span, service, name string) []Span {
	var out []Span
	for _, s := range spans {
		if s.Name == name && (service == "" || s.Service == service) {
			out = append(out, s)
		}
	}
	return out
}

// ByID indexes spans by span id.
func ByID(spans []Span) map[string]Span {
	m := make(map[string]Span, len(spans))
	for _, s := range spans {
		m[s.SpanID] = s
	}
	return m
}

// Trace returns the spans of one trace.
func Trace(spans []Span, traceID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Tree renders spans as one indented tree per trace, children under their
// parent, for failure messages.
func Tree(spans []Span) string {
	byTrace := map[string][]Span{}
	var traces []string
	for _, s := range spans {
		if _, ok := byTrace[s.TraceID]; !ok {
			traces = append(traces, s.TraceID)
		}
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	var b strings.Builder
	for _, tid := range traces {
		ss := byTrace[tid]
		ids := ByID(ss)
		children := map[string][]Span{}
		var roots []Span
		for _, s := range ss {
			if _, ok := ids[s.ParentID]; ok {
				children[s.ParentID] = append(children[s.ParentID], s)
			} else {
				roots = append(roots, s)
			}
		}
		fmt.Fprintf(&b, "trace %s\n", tid)
		var walk func(s Span, depth int)
		walk = func(s Span, depth int) {
			parent := ""
			if depth == 0 && s.ParentID != "" {
				parent = " (parent " + s.ParentID + " not received)"
			}
			fmt.Fprintf(&b, "%s%s%s\n", strings.Repeat("  ", depth+1), s, parent)
			cs := children[s.SpanID]
			sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
			for _, c := range cs {
				walk(c, depth+1)
			}
		}
		for _, r := range roots {
			walk(r, 0)
		}
	}
	return b.String()
}

// Ancestors returns the chain of spans from s up to its trace's root, s
// first, as far as the parents were received.
func Ancestors(spans []Span, s Span) []Span {
	ids := ByID(spans)
	out := []Span{s}
	for s.ParentID != "" {
		p, ok := ids[s.ParentID]
		if !ok || len(out) > len(spans) {
			break
		}
		out = append(out, p)
		s = p
	}
	return out
}
