package edge

import (
	"context"
	"strings"

	"github.com/roam-dev/roam/internal/oci"
)

// resolveOCI turns an oci://REF argument into the file of the wasm module
// that artifact holds, pulled, checked against its digest and cached by it
// (see oci.PullWasm); any other path is returned as it is.
func resolveOCI(p string) (string, error) {
	if !strings.HasPrefix(p, oci.Scheme) {
		return p, nil
	}
	pulled, err := oci.PullWasm(context.Background(), p, oci.CacheDir())
	if err != nil {
		return "", err
	}
	return pulled.Path, nil
}
