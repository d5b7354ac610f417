// Package otlpgrpc links the OTLP/gRPC span exporter into a host binary:
// importing it (for its side effect) registers the "grpc" protocol of
// OTEL_EXPORTER_OTLP_PROTOCOL with package telemetry. It is the official
// exporter, and it needs gRPC, so only binaries that link gRPC anyway (the
// Dapr backend: `roam build --backends embedded,dapr`, `roam dist`, the roam
// CLI's edge host) import it; a lean binary exports over http/protobuf.
package otlpgrpc

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc/credentials"

	"github.com/roam-dev/roam/host/telemetry"
)

func init() {
	telemetry.RegisterExporter(telemetry.GRPC, newExporter)
}

func newExporter(ctx context.Context, c telemetry.Config) (sdktrace.SpanExporter, error) {
	opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(c.Timeout)}
	if len(c.Headers) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(c.Headers))
	}
	if strings.Contains(c.Endpoint, "://") {
		opts = append(opts, otlptracegrpc.WithEndpointURL(c.Endpoint))
	} else {
		opts = append(opts, otlptracegrpc.WithEndpoint(c.Endpoint))
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
	}
	if c.Compression == "gzip" {
		opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
	}
	if c.Certificate != "" {
		creds, err := credentials.NewClientTLSFromFile(c.Certificate, "")
		if err != nil {
			return nil, err
		}
		opts = append(opts, otlptracegrpc.WithTLSCredentials(creds))
	}
	return otlptracegrpc.New(ctx, opts...)
}
