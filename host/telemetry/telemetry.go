// Package telemetry configures a host's tracing from the standard OTEL_*
// environment variables: the OpenTelemetry SDK, a sampler, a resource per
// app, and an OTLP exporter. Importing it links tracing into a binary (it
// registers itself with host.RegisterTracing, which host.TracingFromEnv
// calls at start); package host only starts spans (host.Tracing), on the
// OpenTelemetry API. `roam build` links it with --backends …,otlp (and with
// Dapr); a lean binary does without, because the SDK alone takes its idle
// RSS past its 12 MB budget.
//
// Tracing is off unless the environment asks for it, and off costs nothing:
// FromEnv returns a nil *host.Tracing, no tracer provider exists, and no
// request path does more than a nil check. It is on when
// OTEL_TRACES_EXPORTER=otlp, or when an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and
// OTEL_TRACES_EXPORTER is not "none"; OTEL_SDK_DISABLED=true turns it off.
//
// The variables read (the _TRACES_ form of each OTLP variable wins):
//
//	OTEL_TRACES_EXPORTER                   otlp or none
//	OTEL_EXPORTER_OTLP_PROTOCOL            http/protobuf (the default) or grpc
//	OTEL_EXPORTER_OTLP_ENDPOINT            base URL; http/protobuf adds /v1/traces
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT     the URL, used as it is
//	OTEL_EXPORTER_OTLP_HEADERS             k=v,k2=v2 (values URL-encoded)
//	OTEL_EXPORTER_OTLP_TIMEOUT             milliseconds (default 10000)
//	OTEL_EXPORTER_OTLP_COMPRESSION         gzip or none
//	OTEL_EXPORTER_OTLP_CERTIFICATE         PEM file of the CAs to trust
//	OTEL_EXPORTER_OTLP_INSECURE            grpc without a scheme: plaintext
//	OTEL_TRACES_SAMPLER, _ARG              always_on, always_off, traceidratio,
//	                                       parentbased_* (default parentbased_always_on)
//	OTEL_SERVICE_NAME                      service.name of every app (default: the app id)
//	OTEL_RESOURCE_ATTRIBUTES               k=v,... added to every app's resource
//	OTEL_BSP_*                             the batch span processor (read by the SDK)
//
// The http/protobuf exporter is this package's own (otlphttp.go): the
// official one imports OTLP's generated gRPC service, and with it gRPC,
// which would take a lean binary from 12.3 to 16 MB. The grpc protocol uses
// the official exporter, linked by package telemetry/otlpgrpc, which
// binaries that link the Dapr backend (and so gRPC) import.
package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdk "go.opentelemetry.io/otel/sdk"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/roam-dev/roam/host"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL.
const (
	HTTPProtobuf = "http/protobuf"
	GRPC         = "grpc"
)

// Config is a resolved tracing configuration.
type Config struct {
	// Protocol is HTTPProtobuf or GRPC.
	Protocol string
	// Endpoint is, for http/protobuf, the full URL spans are posted to;
	// for grpc, a URL (http:// is plaintext) or host:port.
	Endpoint string
	// Insecure, for a grpc endpoint without a scheme, means plaintext.
	Insecure    bool
	Headers     map[string]string
	Timeout     time.Duration
	Compression string // "gzip" or ""
	Certificate string // a PEM file of CAs; empty: the system's
	Sampler     sdktrace.Sampler
	// ServiceName is every app's service.name; empty means the app id.
	ServiceName string
	// Resource are more attributes of every app's resource.
	Resource []attribute.KeyValue
	// Logger receives export failures, at most one record a minute.
	Logger *slog.Logger
}

// ExporterFunc makes the span exporter of one protocol.
type ExporterFunc func(ctx context.Context, c Config) (sdktrace.SpanExporter, error)

var exporters = struct {
	sync.Mutex
	m map[string]ExporterFunc
}{m: map[string]ExporterFunc{HTTPProtobuf: newHTTPExporter}}

// RegisterExporter makes an exporter available for protocol. Call it from
// init; package otlpgrpc registers GRPC.
func RegisterExporter(protocol string, f ExporterFunc) {
	exporters.Lock()
	defer exporters.Unlock()
	exporters.m[protocol] = f
}

func init() {
	host.RegisterTracing(FromEnv)
}

func exporterFor(protocol string) (ExporterFunc, bool) {
	exporters.Lock()
	defer exporters.Unlock()
	f, ok := exporters.m[protocol]
	return f, ok
}

// FromEnv returns the tracing the environment configures, or nil when it
// configures none (see the package doc). getenv nil means os.Getenv. log
// receives export failures. The caller shuts the result down at exit, which
// flushes the spans still buffered.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (host.Tracer, error) {
	c, on, err := ConfigFromEnv(getenv)
	if err != nil || !on {
		return nil, err
	}
	c.Logger = log
	t, err := New(ctx, c)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ConfigFromEnv resolves the OTEL_* variables; on reports whether they turn
// tracing on. Settings this host cannot honour are errors, so that a
// misconfigured host fails at start instead of losing its spans.
func ConfigFromEnv(getenv func(string) string) (c Config, on bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	otlp := func(suffix string) string { // the _TRACES_ form wins
		if v := get("OTEL_EXPORTER_OTLP_TRACES_" + suffix); v != "" {
			return v
		}
		return get("OTEL_EXPORTER_OTLP_" + suffix)
	}
	if !host.TracingRequested(getenv) {
		return c, false, nil
	}
	if exp := get("OTEL_TRACES_EXPORTER"); exp != "" {
		for _, e := range strings.Split(exp, ",") {
			if e = strings.TrimSpace(e); e != "otlp" {
				return c, false, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: this host exports spans over OTLP only; use otlp (or none)", exp)
			}
		}
	}

	c.Protocol = otlp("PROTOCOL")
	if c.Protocol == "" {
		c.Protocol = HTTPProtobuf
	}
	switch c.Protocol {
	case HTTPProtobuf:
		if c.Endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); c.Endpoint == "" {
			base := get("OTEL_EXPORTER_OTLP_ENDPOINT")
			if base == "" {
				base = "http://localhost:4318"
			}
			c.Endpoint = strings.TrimRight(base, "/") + "/v1/traces"
		}
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, false, fmt.Errorf("OTLP endpoint %q: want an http:// or https:// URL", c.Endpoint)
		}
	case GRPC:
		if c.Endpoint = otlp("ENDPOINT"); c.Endpoint == "" {
			c.Endpoint = "http://localhost:4317"
		}
		c.Insecure = strings.EqualFold(otlp("INSECURE"), "true")
	default:
		return c, false, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: use %s or %s", c.Protocol, HTTPProtobuf, GRPC)
	}

	if c.Headers, err = parseList(otlp("HEADERS")); err != nil {
		return c, false, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %v", err)
	}
	c.Timeout = 10 * time.Second
	if v := otlp("TIMEOUT"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms <= 0 {
			return c, false, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT=%s: want a positive number of milliseconds", v)
		}
		c.Timeout = time.Duration(ms) * time.Millisecond
	}
	switch v := otlp("COMPRESSION"); v {
	case "", "none":
	case "gzip":
		c.Compression = "gzip"
	default:
		return c, false, fmt.Errorf("OTEL_EXPORTER_OTLP_COMPRESSION=%s: use gzip or none", v)
	}
	c.Certificate = otlp("CERTIFICATE")

	if c.Sampler, err = sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		return c, false, err
	}
	attrs, err := parseList(get("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return c, false, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %v", err)
	}
	c.ServiceName = get("OTEL_SERVICE_NAME")
	if c.ServiceName == "" {
		c.ServiceName = attrs["service.name"]
	}
	delete(attrs, "service.name")
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.Resource = append(c.Resource, attribute.String(k, attrs[k]))
	}
	return c, true, nil
}

// sampler is the OTEL_TRACES_SAMPLER of the specification.
func sampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%s: want a ratio from 0 to 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER=%s: use always_on, always_off, traceidratio or parentbased_(always_on|always_off|traceidratio)", name)
}

// parseList reads the k=v,k2=v2 form of OTEL_EXPORTER_OTLP_HEADERS and
// OTEL_RESOURCE_ATTRIBUTES, whose values are URL-encoded.
func parseList(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", item)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q: %v", item, err)
		}
		out[k] = dv
	}
	return out, nil
}

// New starts tracing as c says: one tracer provider per app (each app is a
// service of its own, unless c.ServiceName names one for all), all feeding
// one batch span processor and one exporter.
func New(ctx context.Context, c Config) (*Tracer, error) {
	f, ok := exporterFor(c.Protocol)
	if !ok {
		if c.Protocol == GRPC {
			return nil, errors.New("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: this binary was built without gRPC; use http/protobuf (the default), or rebuild with `roam build --backends embedded,dapr`, which links gRPC and its OTLP exporter")
		}
		return nil, fmt.Errorf("no OTLP exporter for protocol %q", c.Protocol)
	}
	exp, err := f(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter (%s to %s): %w", c.Protocol, c.Endpoint, err)
	}
	if c.Logger != nil {
		exp = &loggingExporter{SpanExporter: exp, log: c.Logger, what: c.Protocol + " " + c.Endpoint}
	}
	if c.Sampler == nil {
		c.Sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	bsp := sdktrace.NewBatchSpanProcessor(exp)
	instance := newInstanceID()
	return &Tracer{
		tracerFor: func(app string) trace.Tracer {
			name := c.ServiceName
			if name == "" {
				name = app
			}
			attrs := append([]attribute.KeyValue{
				attribute.String("service.name", name),
				attribute.String("service.instance.id", instance),
				attribute.String("telemetry.sdk.name", "opentelemetry"),
				attribute.String("telemetry.sdk.language", "go"),
				attribute.String("telemetry.sdk.version", sdk.Version()),
				attribute.String("roam.app", app),
			}, c.Resource...)
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithSampler(c.Sampler),
				sdktrace.WithSpanProcessor(bsp),
				sdktrace.WithResource(resource.NewSchemaless(attrs...)),
			)
			return tp.Tracer(TracerScope)
		},
		flush:    bsp.ForceFlush,
		shutdown: bsp.Shutdown,
	}, nil
}

func newInstanceID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// loggingExporter reports export failures to the host's log, at most once a
// minute, instead of OpenTelemetry's global error handler (stderr).
type loggingExporter struct {
	sdktrace.SpanExporter
	log  *slog.Logger
	what string

	mu      sync.Mutex
	last    time.Time
	dropped int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	e.dropped += len(spans)
	if time.Since(e.last) >= time.Minute {
		e.log.Warn("tracing: exporting spans failed; they are dropped", "exporter", e.what, "spans", e.dropped, "err", err)
		e.last, e.dropped = time.Now(), 0
	}
	e.mu.Unlock()
	return nil // reported; the batch processor would only print it again
}
