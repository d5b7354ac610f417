package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The media types of a wasm module stored as an OCI artifact, per the CNCF
// TAG Runtime "Wasm OCI Artifact" layout that wasmCloud, wkg, Spin and
// runwasi's wasm-oci support read: an ordinary OCI image manifest whose
// config is application/vnd.wasm.config.v0+json and whose one layer is the
// module itself, application/wasm.
const (
	WasmConfigMediaType types.MediaType = "application/vnd.wasm.config.v0+json"
	WasmLayerMediaType  types.MediaType = "application/wasm"
)

// WasmConfig is the artifact's config blob. Os is wasip1 for a core module
// (Roam's), wasip2 for a component.
type WasmConfig struct {
	Created      string   `json:"created"`
	Author       string   `json:"author,omitempty"`
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	LayerDigests []string `json:"layerDigests"`
}

// WasmArtifact wraps a wasip1 module as an OCI artifact. name is the
// layer's org.opencontainers.image.title (the module's file name when
// pulled); annotations go on the manifest.
func WasmArtifact(wasm []byte, name string, created time.Time, annotations map[string]string) (v1.Image, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("not a wasm module")
	}
	ld := digestOf(wasm)
	cfg, err := json.Marshal(WasmConfig{
		Created: created.UTC().Format(time.RFC3339), Architecture: "wasm", OS: "wasip1",
		LayerDigests: []string{ld.String()},
	})
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: WasmConfigMediaType, Size: int64(len(cfg)), Digest: digestOf(cfg)},
		Layers: []v1.Descriptor{{MediaType: WasmLayerMediaType, Size: int64(len(wasm)), Digest: ld,
			Annotations: map[string]string{"org.opencontainers.image.title": name}}},
		Annotations: annotations,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&wasmCore{manifest: raw, config: cfg, wasm: wasm, digest: ld})
}

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", s)}
}

// wasmCore is the artifact as partial.CompressedImageCore: its blobs are
// stored as they are, without compression.
type wasmCore struct {
	manifest, config, wasm []byte
	digest                 v1.Hash
}

func (w *wasmCore) RawConfigFile() ([]byte, error)      { return w.config, nil }
func (w *wasmCore) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (w *wasmCore) RawManifest() ([]byte, error)        { return w.manifest, nil }

func (w *wasmCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h != w.digest {
		return nil, fmt.Errorf("wasm artifact has no layer %s", h)
	}
	return &wasmLayer{w}, nil
}

type wasmLayer struct{ w *wasmCore }

func (l *wasmLayer) Digest() (v1.Hash, error) { return l.w.digest, nil }
func (l *wasmLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.w.wasm)), nil
}
func (l *wasmLayer) Size() (int64, error)                { return int64(len(l.w.wasm)), nil }
func (l *wasmLayer) MediaType() (types.MediaType, error) { return WasmLayerMediaType, nil }
