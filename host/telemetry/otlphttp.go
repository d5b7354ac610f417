package telemetry

// The OTLP/HTTP exporter (binary protobuf): ExportTraceServiceRequest
// messages POSTed to the collector's /v1/traces. The messages are written
// with protowire, field by field, from opentelemetry-proto's
// collector/trace/v1, trace/v1, resource/v1 and common/v1 (the field
// numbers are cited beside each write). A test decodes what this writes
// with the official generated types, so the two cannot drift apart.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

type httpExporter struct {
	url     string
	headers map[string]string
	gzip    bool
	timeout time.Duration
	client  *http.Client

	mu      sync.Mutex
	buf     []byte
	stopped bool
}

func newHTTPExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	if c.Certificate != "" {
		pem, err := os.ReadFile(c.Certificate)
		if err != nil {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_CERTIFICATE: %s holds no PEM certificate", c.Certificate)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &httpExporter{url: c.Endpoint, headers: c.Headers, gzip: c.Compression == "gzip", timeout: c.Timeout,
		client: &http.Client{Transport: tr}}, nil
}

// ExportSpans sends one batch, retrying what the specification calls
// retryable (429, 502, 503, 504, and connection failures) with backoff
// until the exporter's timeout.
func (e *httpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("otlp exporter is shut down")
	}
	e.buf = appendRequest(e.buf[:0], spans)
	body := e.buf
	if e.gzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(body)
		zw.Close()
		body = zb.Bytes()
	}
	if cap(e.buf) > 4<<20 {
		e.buf = nil // one huge batch does not pin its buffer for ever
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		retry, wait, err := e.post(ctx, body)
		if err == nil || !retry {
			return err
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(2*backoff, 5*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

func (e *httpExporter) post(ctx context.Context, body []byte) (retry bool, wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "roam-otlp-exporter")
	if e.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	err = fmt.Errorf("POST %s: %s: %.200s", e.url, resp.Status, msg)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return true, wait, err
	}
	return false, 0, err
}

func (e *httpExporter) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.client.CloseIdleConnections()
	return nil
}

// ---- encoding ----

// begin starts a length-delimited field; finish writes its length once the
// content is appended, moving the content to make room (a few bytes, once
// per nested message: cheaper than encoding every message twice).
func begin(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return b, len(b)
}

func finish(b []byte, start int) []byte {
	n := len(b) - start
	sz := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, sz)...)
	copy(b[start+sz:], b[start:start+n])
	protowire.AppendVarint(b[:start], uint64(n))
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendFixed32(b []byte, num protowire.Number, v uint32) []byte {
	b = protowire.AppendTag(b, num, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

type scopeKey struct{ name, version, schemaURL string }

type group struct {
	res    *resource.Resource
	scopes []scopeKey
	spans  map[scopeKey][]sdktrace.ReadOnlySpan
}

// appendRequest writes an ExportTraceServiceRequest of spans, grouped by
// resource and instrumentation scope.
func appendRequest(b []byte, spans []sdktrace.ReadOnlySpan) []byte {
	var groups []*group
	byRes := map[*resource.Resource]*group{}
	for _, s := range spans {
		g := byRes[s.Resource()]
		if g == nil {
			g = &group{res: s.Resource(), spans: map[scopeKey][]sdktrace.ReadOnlySpan{}}
			byRes[s.Resource()] = g
			groups = append(groups, g)
		}
		sc := s.InstrumentationScope()
		k := scopeKey{sc.Name, sc.Version, sc.SchemaURL}
		if _, ok := g.spans[k]; !ok {
			g.scopes = append(g.scopes, k)
		}
		g.spans[k] = append(g.spans[k], s)
	}
	for _, g := range groups {
		var rs int
		b, rs = begin(b, 1) // ExportTraceServiceRequest.resource_spans
		if g.res != nil {
			var r int
			b, r = begin(b, 1) // ResourceSpans.resource
			for _, kv := range g.res.Attributes() {
				b = appendKeyValue(b, 1, kv) // Resource.attributes
			}
			b = finish(b, r)
		}
		for _, k := range g.scopes {
			var ss int
			b, ss = begin(b, 2) // ResourceSpans.scope_spans
			var sc int
			b, sc = begin(b, 1)               // ScopeSpans.scope
			b = appendString(b, 1, k.name)    // InstrumentationScope.name
			b = appendString(b, 2, k.version) // InstrumentationScope.version
			b = finish(b, sc)
			for _, s := range g.spans[k] {
				b = appendSpan(b, s)
			}
			b = appendString(b, 3, k.schemaURL) // ScopeSpans.schema_url
			b = finish(b, ss)
		}
		if g.res != nil {
			b = appendString(b, 3, g.res.SchemaURL()) // ResourceSpans.schema_url
		}
		b = finish(b, rs)
	}
	return b
}

// Span flags (trace/v1 SpanFlags): the W3C flags, and whether the parent
// is remote.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	var sp int
	b, sp = begin(b, 2) // ScopeSpans.spans
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytes(b, 1, tid[:])                    // Span.trace_id
	b = appendBytes(b, 2, sid[:])                    // Span.span_id
	b = appendString(b, 3, sc.TraceState().String()) // Span.trace_state
	flags := uint32(sc.TraceFlags()) | flagHasIsRemote
	if p := s.Parent(); p.IsValid() {
		pid := p.SpanID()
		b = appendBytes(b, 4, pid[:]) // Span.parent_span_id
		if p.IsRemote() {
			flags |= flagIsRemote
		}
	}
	b = appendString(b, 5, s.Name())                       // Span.name
	b = appendVarint(b, 6, uint64(spanKind(s.SpanKind()))) // Span.kind
	b = appendFixed64(b, 7, unixNano(s.StartTime()))       // Span.start_time_unix_nano
	b = appendFixed64(b, 8, unixNano(s.EndTime()))         // Span.end_time_unix_nano
	for _, kv := range s.Attributes() {
		b = appendKeyValue(b, 9, kv) // Span.attributes
	}
	b = appendVarint(b, 10, uint64(s.DroppedAttributes())) // Span.dropped_attributes_count
	for _, ev := range s.Events() {
		var e int
		b, e = begin(b, 11)                        // Span.events
		b = appendFixed64(b, 1, unixNano(ev.Time)) // Event.time_unix_nano
		b = appendString(b, 2, ev.Name)            // Event.name
		for _, kv := range ev.Attributes {
			b = appendKeyValue(b, 3, kv) // Event.attributes
		}
		b = appendVarint(b, 4, uint64(ev.DroppedAttributeCount))
		b = finish(b, e)
	}
	b = appendVarint(b, 12, uint64(s.DroppedEvents())) // Span.dropped_events_count
	for _, l := range s.Links() {
		var lk int
		b, lk = begin(b, 13) // Span.links
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		b = appendBytes(b, 1, ltid[:])                              // Link.trace_id
		b = appendBytes(b, 2, lsid[:])                              // Link.span_id
		b = appendString(b, 3, l.SpanContext.TraceState().String()) // Link.trace_state
		for _, kv := range l.Attributes {
			b = appendKeyValue(b, 4, kv) // Link.attributes
		}
		b = appendVarint(b, 5, uint64(l.DroppedAttributeCount))
		lflags := uint32(l.SpanContext.TraceFlags()) | flagHasIsRemote
		if l.SpanContext.IsRemote() {
			lflags |= flagIsRemote
		}
		b = appendFixed32(b, 6, lflags) // Link.flags
		b = finish(b, lk)
	}
	b = appendVarint(b, 14, uint64(s.DroppedLinks())) // Span.dropped_links_count
	if st := s.Status(); st.Code != codes.Unset {
		var stp int
		b, stp = begin(b, 15)                  // Span.status
		b = appendString(b, 2, st.Description) // Status.message
		code := uint64(1)                      // STATUS_CODE_OK
		if st.Code == codes.Error {
			code = 2 // STATUS_CODE_ERROR
		}
		b = appendVarint(b, 3, code) // Status.code
		b = finish(b, stp)
	}
	b = appendFixed32(b, 16, flags) // Span.flags
	return finish(b, sp)
}

// spanKind maps the API's kinds onto trace/v1 Span.SpanKind, which numbers
// them the same way.
func spanKind(k trace.SpanKind) int {
	if k < trace.SpanKindInternal || k > trace.SpanKindConsumer {
		return int(trace.SpanKindInternal)
	}
	return int(k)
}

// appendKeyValue writes a common/v1 KeyValue as field num.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	var p int
	b, p = begin(b, num)
	b = appendString(b, 1, string(kv.Key)) // KeyValue.key
	var v int
	b, v = begin(b, 2) // KeyValue.value
	b = appendAnyValue(b, kv.Value)
	b = finish(b, v)
	return finish(b, p)
}

// appendAnyValue writes the fields of a common/v1 AnyValue.
func appendAnyValue(b []byte, v attribute.Value) []byte {
	array := func(n int, each func(b []byte, i int) []byte) []byte {
		var a int
		b, a = begin(b, 5) // AnyValue.array_value
		for i := 0; i < n; i++ {
			var e int
			b, e = begin(b, 1) // ArrayValue.values
			b = each(b, i)
			b = finish(b, e)
		}
		return finish(b, a)
	}
	switch v.Type() {
	case attribute.BOOL:
		b = protowire.AppendTag(b, 2, protowire.VarintType) // AnyValue.bool_value
		return protowire.AppendVarint(b, protowire.EncodeBool(v.AsBool()))
	case attribute.INT64:
		b = protowire.AppendTag(b, 3, protowire.VarintType) // AnyValue.int_value
		return protowire.AppendVarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return appendFixed64(b, 4, math.Float64bits(v.AsFloat64())) // AnyValue.double_value
	case attribute.STRING:
		b = protowire.AppendTag(b, 1, protowire.BytesType) // AnyValue.string_value
		return protowire.AppendString(b, v.AsString())
	case attribute.BOOLSLICE:
		s := v.AsBoolSlice()
		return array(len(s), func(b []byte, i int) []byte { return appendAnyValue(b, attribute.BoolValue(s[i])) })
	case attribute.INT64SLICE:
		s := v.AsInt64Slice()
		return array(len(s), func(b []byte, i int) []byte { return appendAnyValue(b, attribute.Int64Value(s[i])) })
	case attribute.FLOAT64SLICE:
		s := v.AsFloat64Slice()
		return array(len(s), func(b []byte, i int) []byte { return appendAnyValue(b, attribute.Float64Value(s[i])) })
	case attribute.STRINGSLICE:
		s := v.AsStringSlice()
		return array(len(s), func(b []byte, i int) []byte { return appendAnyValue(b, attribute.StringValue(s[i])) })
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendString(b, v.Emit())
}
