package edge

import (
	"context"
	"log/slog"
	"strings"

	"github.com/roam-dev/roam/internal/oci"
)

// resolveOCI turns an oci://REF argument into the file of the wasm module
// that artifact holds, pulled, checked against its digest and cached by it
// (see oci.PullWasm); any other path is returned as it is. A pull that got
// past refused credentials (a stale pull secret listed before a good one)
// is logged: it works today, and stops working once the good one goes.
func resolveOCI(p string, log *slog.Logger) (string, error) {
	if !strings.HasPrefix(p, oci.Scheme) {
		return p, nil
	}
	pulled, err := oci.PullWasm(context.Background(), p, oci.CacheDir())
	if err != nil {
		return "", err
	}
	if len(pulled.Refused) > 0 {
		log.Warn("the registry refused some of the pull credentials before it accepted others; a pull secret may be stale", "module", p, "refused", strings.Join(pulled.Refused, "; "))
	}
	return pulled.Path, nil
}
