package oci

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RefName is the annotation that names a manifest in an OCI layout's
// index.json (skopeo's oci:DIR:NAME).
const RefName = "org.opencontainers.image.ref.name"

// WriteLayout writes an image index or an image as a fresh OCI image
// layout at dir, named tag, replacing whatever dir held.
func WriteLayout(dir, tag string, x any) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	opt := layout.WithAnnotations(map[string]string{RefName: tag})
	switch v := x.(type) {
	case v1.ImageIndex:
		return p.AppendIndex(v, opt)
	case v1.Image:
		return p.AppendImage(v, opt)
	}
	return fmt.Errorf("cannot write %T as an OCI layout", x)
}

// ReadLayout returns the one index or image an OCI layout at dir holds.
func ReadLayout(dir string) (v1.ImageIndex, v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, nil, err
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, nil, fmt.Errorf("%s holds %d manifests, want 1", dir, len(m.Manifests))
	}
	d := m.Manifests[0]
	if d.MediaType.IsIndex() {
		idx, err := top.ImageIndex(d.Digest)
		return idx, nil, err
	}
	img, err := top.Image(d.Digest)
	return nil, img, err
}

// RemoteOptions are the options of a registry call that sends one set of
// credentials, as a push does: the first for the registry in the
// config.json files of $ROAM_DOCKER_CONFIGS (EnvDockerConfigs) when it is
// set, else those of the standard keychain (docker's config.json,
// credential helpers, $REGISTRY_AUTH_FILE...). PullWasm tries each of
// $ROAM_DOCKER_CONFIGS' in turn instead (see pullAuth).
func RemoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain())}
}

// Push writes an index or an image to ref and returns its digest.
func Push(ctx context.Context, ref string, x any) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	switch v := x.(type) {
	case v1.ImageIndex:
		if err := remote.WriteIndex(r, v, RemoteOptions(ctx)...); err != nil {
			return v1.Hash{}, pushAuthError(r, err)
		}
		return v.Digest()
	case v1.Image:
		if err := remote.Write(r, v, RemoteOptions(ctx)...); err != nil {
			return v1.Hash{}, pushAuthError(r, err)
		}
		return v.Digest()
	}
	return v1.Hash{}, fmt.Errorf("cannot push %T", x)
}
