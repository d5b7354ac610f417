// Package app is jsonbench as an app, to run it inside a wasm guest.
package app

import (
	"context"
	"runtime"
	"strconv"

	"github.com/roam-dev/roam/examples/shop/contract"
	"github.com/roam-dev/roam/internal/jsonbench"
	"github.com/roam-dev/roam/sdk"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type runReq,runReply

// App registers the jsonbench app.
var App = sdk.NewApp("jsonbench", func(env sdk.Env, r *sdk.Router) error {
	sdk.Handle(r, "Run", run)
	// Get is orders.Get's path through the SDK (a typed handler, a state
	// read decoded by GetJSON), and Mallocs the guest's allocation count, so
	// that a host test pins the allocations of a call in the guest.
	st := env.State(contract.Store)
	sdk.Handle(r, "Get", func(ctx context.Context, req contract.OrderRef) (contract.OrderReply, error) {
		o, etag, err := sdk.GetJSON[contract.Order](ctx, st, "order/"+req.ID)
		if err != nil {
			return contract.OrderReply{}, err
		}
		return contract.OrderReply{Order: o, ETag: etag}, nil
	})
	r.HandleRaw("Mallocs", func(ctx context.Context, _ []byte) ([]byte, error) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return strconv.AppendUint(nil, ms.Mallocs, 10), nil
	})
	return nil
})

type runReq struct {
	Op    string `json:"op"`
	Codec string `json:"codec"`
	N     int    `json:"n"`
}

type runReply struct {
	NsPerOp int64 `json:"ns_per_op"`
}

func run(ctx context.Context, r runReq) (runReply, error) {
	d, err := jsonbench.Run(r.Op, r.Codec, r.N)
	if err != nil {
		return runReply{}, sdk.NewError(sdk.InvalidArgument, err.Error())
	}
	return runReply{NsPerOp: d.Nanoseconds()}, nil
}
