package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/roam-dev/roam/internal/wasmopt"
)

// Scheme prefixes a module reference on roam edge's command line:
// oci://ghcr.io/acme/orders:v1 or oci://ghcr.io/acme/orders@sha256:...
const Scheme = "oci://"

// CacheDir is where pulled modules are kept: the roam cache directory's oci/.
func CacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "roam", "oci")
}

// wasmLayerTypes are the layer media types taken for a module: the TAG
// Runtime artifact's, and the older wasm-to-oci one.
var wasmLayerTypes = map[types.MediaType]bool{
	WasmLayerMediaType:                                  true,
	"application/vnd.wasm.content.layer.v1+wasm":        true,
	"application/vnd.module.wasm.content.layer.v1+wasm": true,
}

// Pulled is a module fetched from a registry.
type Pulled struct {
	Path     string  // the cached module file
	Manifest v1.Hash // digest of the artifact's manifest
	Layer    v1.Hash // digest of the module, which keys the cache
	Cached   bool    // the module was already in the cache
	// Refused names the credentials the registry refused before it
	// accepted others (their files and its status): a pull secret gone
	// stale, which the pull got past and its host should say.
	Refused []string
}

// PullWasm fetches the wasm module an artifact at ref holds (ref with or
// without the oci:// prefix), checks its digest against the manifest and
// caches it under cacheDir keyed by that digest. A reference by digest
// whose manifest and module are cached needs no network; a tag is resolved
// at the registry each time, and only a module not yet cached is
// downloaded.
//
// Credentials come, on Kubernetes, from the edge host's mounted pull
// secrets (the config.json of $DOCKER_CONFIG for one, of each directory in
// $ROAM_DOCKER_CONFIGS for several, each of those with credentials for the
// registry tried in turn until one is accepted, as the kubelet tries them:
// see pullAuth); elsewhere from ~/.docker/config.json. When the registry
// refuses the pull, the error says which registry, whether credentials for
// it were found and in which files, how many were refused, and where to
// put them.
func PullWasm(ctx context.Context, ref, cacheDir string) (Pulled, error) {
	ref = strings.TrimPrefix(ref, Scheme)
	r, err := name.ParseReference(ref)
	if err != nil {
		return Pulled{}, err
	}
	auth := &pullAuth{ctx: ctx, ref: r}
	var raw []byte
	var mdig v1.Hash
	if d, ok := r.(name.Digest); ok {
		mdig, err = v1.NewHash(d.DigestStr())
		if err != nil {
			return Pulled{}, err
		}
		if b, err := os.ReadFile(blobPath(cacheDir, "manifests", mdig)); err == nil && digestOf(b) == mdig {
			raw = b
		}
	}
	if raw == nil {
		var desc *remote.Descriptor
		err := auth.do(func(opts ...remote.Option) (err error) {
			desc, err = remote.Get(r, opts...)
			return err
		})
		if err != nil {
			return Pulled{}, fmt.Errorf("%s%s: %w", Scheme, ref, err)
		}
		if desc.MediaType.IsIndex() {
			return Pulled{}, fmt.Errorf("%s%s is an image index; want a wasm artifact (roam dist writes one per app)", Scheme, ref)
		}
		raw, mdig = desc.Manifest, desc.Digest
		if digestOf(raw) != mdig {
			return Pulled{}, fmt.Errorf("%s%s: manifest digest mismatch", Scheme, ref)
		}
		if err := writeAtomic(blobPath(cacheDir, "manifests", mdig), raw); err != nil {
			return Pulled{}, err
		}
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Pulled{}, fmt.Errorf("%s%s: manifest: %w", Scheme, ref, err)
	}
	var layer *v1.Descriptor
	for i, l := range m.Layers {
		if wasmLayerTypes[l.MediaType] {
			if layer != nil {
				return Pulled{}, fmt.Errorf("%s%s holds more than one wasm module", Scheme, ref)
			}
			layer = &m.Layers[i]
		}
	}
	if layer == nil {
		return Pulled{}, fmt.Errorf("%s%s holds no wasm module (a layer of type %s); config type %s", Scheme, ref, WasmLayerMediaType, m.Config.MediaType)
	}
	// The module is read whole, so its size is checked first: a manifest
	// may name any size.
	if layer.Size < 0 || layer.Size > wasmopt.MaxModuleBytes {
		return Pulled{}, fmt.Errorf("%s%s: the module is %d bytes; a wasm module is at most %d", Scheme, ref, layer.Size, wasmopt.MaxModuleBytes)
	}
	file := SafeName(layer.Annotations["org.opencontainers.image.title"])
	if file == "" || !strings.HasSuffix(file, ".wasm") {
		file = SafeName(r.Context().RepositoryStr()) + ".wasm"
	}
	// The module is named by its title, in a directory named by its digest:
	// the edge host calls a module by its file name.
	path := filepath.Join(filepath.Dir(blobPath(cacheDir, "modules", layer.Digest)), layer.Digest.Hex, file)
	out := Pulled{Path: path, Manifest: mdig, Layer: layer.Digest}
	if b, err := os.ReadFile(path); err == nil && digestOf(b) == layer.Digest {
		out.Cached, out.Refused = true, auth.refusals()
		return out, nil
	}
	var body io.ReadCloser
	err = auth.do(func(opts ...remote.Option) error {
		rl, err := remote.Layer(r.Context().Digest(layer.Digest.String()), opts...)
		if err == nil {
			body, err = rl.Compressed()
		}
		return err
	})
	if err != nil {
		return Pulled{}, fmt.Errorf("%s%s: module %s: %w", Scheme, ref, layer.Digest, err)
	}
	defer body.Close()
	h := sha256.New()
	b, err := io.ReadAll(io.TeeReader(io.LimitReader(body, layer.Size+1), h))
	if err != nil {
		return Pulled{}, fmt.Errorf("%s%s: module %s: %w", Scheme, ref, layer.Digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); int64(len(b)) != layer.Size || got != layer.Digest.String() {
		return Pulled{}, fmt.Errorf("%s%s: module digest mismatch: the manifest says %s (%d bytes), the registry sent %s (%d bytes)", Scheme, ref, layer.Digest, layer.Size, got, len(b))
	}
	out.Refused = auth.refusals()
	return out, writeAtomic(path, b)
}

func blobPath(cacheDir, kind string, h v1.Hash) string {
	return filepath.Join(cacheDir, kind, h.Algorithm, h.Hex)
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".pull-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
