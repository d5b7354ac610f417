// Package wasmrt is the WebAssembly runtime under the edge host, chosen at
// build time: wazero (github.com/tetratelabs/wazero, the default) or, with
// the build tag roam_wazy, wazy (github.com/samyfodil/wazy), a fork of
// wazero with the same API whose compiled code checks for interruption
// inline instead of calling back into Go at every loop iteration, and which
// loads cached modules without validating them again (see RATIONALE.md,
// "The edge runtime"). The edge host uses the runtime only through the
// names below, so both builds run the same host code and the same tests:
//
//	go test ./host/edge/...                  # wazero
//	go test -tags roam_wazy ./host/edge/...  # wazy
//
// Interrupted calls are told apart portably: the error of a call stopped at
// its deadline satisfies errors.Is(err, context.DeadlineExceeded), one
// canceled errors.Is(err, context.Canceled), on both runtimes.
package wasmrt

import "runtime/debug"

// Version is the version of the runtime's module this binary was built
// with, as go.mod resolved it ("unknown" when the binary carries no module
// information).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == ModulePath {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}
