package dapr

import (
	"context"
	"time"

	daprc "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	runtimev1pb "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/roam-dev/roam/sdk"
)

// sidecar is the part of the sidecar's API the backend uses, over gRPC
// (go-sdk) or over HTTP (hand-written: go-sdk has no HTTP client). Keys are
// the store's keys as Dapr sees them (Dapr adds its own app-id prefix).
// Errors are already *sdk.Error.
type sidecar interface {
	protocol() string
	get(ctx context.Context, store, key string) (stored, error)
	bulkGet(ctx context.Context, store string, keys []string) (map[string]stored, error)
	write(ctx context.Context, store string, op writeOp) error
	transact(ctx context.Context, store string, ops []writeOp) error
	publish(ctx context.Context, pubsub, topic string, data []byte, contentType string, md map[string]string) error
	secret(ctx context.Context, store, key string) (map[string]string, error)
	config(ctx context.Context, store, key string) (value string, found bool, err error)
	metadata(ctx context.Context) (sidecarInfo, error)
	close() error
}

// stored is an item as the sidecar returns it.
type stored struct {
	value   []byte
	version string // Dapr's ETag
	found   bool
}

// writeOp is one save or delete.
type writeOp struct {
	del   bool
	key   string
	value []byte
	// etag, when set, makes the write conditional on Dapr's ETag (with
	// concurrency left unspecified: Redis's store then honours the ETag
	// without marking the item first-write).
	etag string
	// firstWrite asks for first-write concurrency without an ETag: Dapr's
	// "insert only" on stores other than Redis.
	firstWrite bool
	md         map[string]string
}

// sidecarInfo is what the backend needs from the metadata API.
type sidecarInfo struct {
	appID      string
	appPort    int
	appProto   string
	components map[string]string // name → type ("state.redis")
}

// ---- gRPC, through go-sdk ----

type grpcSidecar struct {
	b    *Backend
	conn *grpc.ClientConn
	c    *daprc.GRPCClient
	raw  runtimev1pb.DaprClient
}

// dialGRPC returns a client of addr without waiting for a connection: calls
// fail fast while the sidecar is down, and the connection is re-established
// within a second of it coming back.
func dialGRPC(addr, token string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
		grpc.WithUserAgent("roam-dapr-backend"),
		// Nothing is retried by the transport: a write must not be sent twice.
		grpc.WithDisableRetry(),
	}
	// The token, and the trace context of the host's span when there is
	// one: the sidecar reads traceparent metadata and parents its spans.
	outgoing := func(ctx context.Context) context.Context {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, apiTokenHeader, token)
		}
		if tc := sdk.Trace(ctx); tc.TraceParent != "" {
			kv := []string{"traceparent", tc.TraceParent}
			if tc.TraceState != "" {
				kv = append(kv, "tracestate", tc.TraceState)
			}
			ctx = metadata.AppendToOutgoingContext(ctx, kv...)
		}
		return ctx
	}
	opts = append(opts,
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return inv(outgoing(ctx), method, req, reply, cc, o...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, s grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return s(outgoing(ctx), desc, cc, method, o...)
		}))
	return grpc.NewClient("passthrough:///"+addr, opts...)
}

func newGRPCSidecar(b *Backend, conn *grpc.ClientConn) *grpcSidecar {
	c := daprc.NewClientWithConnection(conn).(*daprc.GRPCClient)
	return &grpcSidecar{b: b, conn: conn, c: c, raw: c.GrpcClient()}
}

func (g *grpcSidecar) protocol() string { return "grpc" }
func (g *grpcSidecar) close() error     { return g.conn.Close() }

func (g *grpcSidecar) get(ctx context.Context, store, key string) (stored, error) {
	it, err := g.c.GetState(ctx, store, key, nil)
	if err != nil {
		return stored{}, g.b.grpcErr(ctx, "state get "+store+"/"+keyInMessage(key), err)
	}
	return stored{value: it.Value, version: it.Etag, found: it.Etag != "" || it.Value != nil}, nil
}

func (g *grpcSidecar) bulkGet(ctx context.Context, store string, keys []string) (map[string]stored, error) {
	items, err := g.c.GetBulkState(ctx, store, keys, nil, int32(min(len(keys), 16)))
	if err != nil {
		return nil, g.b.grpcErr(ctx, "state bulk get "+store, err)
	}
	out := make(map[string]stored, len(items))
	for _, it := range items {
		if it.Error != "" {
			return nil, g.b.classify("state bulk get "+store+"/"+keyInMessage(it.Key), sdk.Internal, it.Error)
		}
		out[it.Key] = stored{value: it.Value, version: it.Etag, found: it.Etag != "" || it.Value != nil}
	}
	return out, nil
}

func setItem(op writeOp) *daprc.SetStateItem {
	it := &daprc.SetStateItem{Key: op.key, Value: op.value, Metadata: op.md, Options: &daprc.StateOptions{}}
	switch {
	case op.etag != "":
		it.Etag = &daprc.ETag{Value: op.etag}
	case op.firstWrite:
		it.Options.Concurrency = daprc.StateConcurrencyFirstWrite
	default:
		it.Options.Concurrency = daprc.StateConcurrencyLastWrite
	}
	return it
}

func (g *grpcSidecar) write(ctx context.Context, store string, op writeOp) error {
	var err error
	what := "state save " + store + "/" + keyInMessage(op.key)
	if op.del {
		what = "state delete " + store + "/" + keyInMessage(op.key)
		it := setItem(op)
		err = g.c.DeleteStateWithETag(ctx, store, op.key, it.Etag, op.md, it.Options)
	} else {
		err = g.c.SaveBulkState(ctx, store, setItem(op))
	}
	return g.b.grpcErr(ctx, what, err)
}

func (g *grpcSidecar) transact(ctx context.Context, store string, ops []writeOp) error {
	tx := make([]*daprc.StateOperation, len(ops))
	for i, op := range ops {
		t := daprc.StateOperationTypeUpsert
		if op.del {
			t = daprc.StateOperationTypeDelete
		}
		tx[i] = &daprc.StateOperation{Type: t, Item: setItem(op)}
	}
	return g.b.grpcErr(ctx, "state transaction "+store, g.c.ExecuteStateTransaction(ctx, store, nil, tx))
}

func (g *grpcSidecar) publish(ctx context.Context, pubsub, topic string, data []byte, ct string, md map[string]string) error {
	opts := []daprc.PublishEventOption{daprc.PublishEventWithContentType(ct)}
	if len(md) > 0 {
		opts = append(opts, daprc.PublishEventWithMetadata(md))
	}
	return g.b.grpcErr(ctx, "publish "+pubsub+"/"+topic, g.c.PublishEvent(ctx, pubsub, topic, data, opts...))
}

func (g *grpcSidecar) secret(ctx context.Context, store, key string) (map[string]string, error) {
	m, err := g.c.GetSecret(ctx, store, key, nil)
	if err != nil {
		return nil, g.b.grpcErr(ctx, "secret "+store+"/"+key, err)
	}
	return m, nil
}

func (g *grpcSidecar) config(ctx context.Context, store, key string) (string, bool, error) {
	it, err := g.c.GetConfigurationItem(ctx, store, key)
	if err != nil {
		return "", false, g.b.grpcErr(ctx, "configuration "+store+"/"+key, err)
	}
	if it == nil {
		return "", false, nil
	}
	return it.Value, true, nil
}

func (g *grpcSidecar) metadata(ctx context.Context) (sidecarInfo, error) {
	m, err := g.raw.GetMetadata(ctx, &runtimev1pb.GetMetadataRequest{})
	if err != nil {
		return sidecarInfo{}, g.b.grpcErr(ctx, "metadata", err)
	}
	info := sidecarInfo{appID: m.GetId(), components: map[string]string{}}
	if p := m.GetAppConnectionProperties(); p != nil {
		info.appPort = int(p.GetPort())
		info.appProto = p.GetProtocol()
	}
	for _, c := range m.GetRegisteredComponents() {
		info.components[c.GetName()] = c.GetType()
	}
	return info, nil
}

// apiTokenHeader carries DAPR_API_TOKEN to the sidecar and APP_API_TOKEN
// from it, on gRPC as metadata and on HTTP as a header.
const apiTokenHeader = "dapr-api-token"
