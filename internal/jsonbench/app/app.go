// Package app is jsonbench as an app, to run it inside a wasm guest.
package app

import (
	"context"

	"github.com/roam-dev/roam/internal/jsonbench"
	"github.com/roam-dev/roam/sdk"
)

//go:generate go run github.com/roam-dev/roam/cmd/roam-jsongen -type runReq,runReply

// App registers the jsonbench app.
var App = sdk.NewApp("jsonbench", func(env sdk.Env, r *sdk.Router) error {
	sdk.Handle(r, "Run", run)
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
