// Package oci builds Roam's container images and wasm artifacts without
// Docker, writes them as OCI image layouts, pushes them to registries and
// pulls wasm modules back for the edge host. Everything it writes is a
// function of its inputs and one fixed time (SOURCE_DATE_EPOCH style), so
// two builds of the same tree give the same digests.
package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user and group images run as: distroless's "nonroot".
const NonRoot = 65532

// DataDir is the image's working directory, owned by NonRoot: the native
// host's default --data-dir (.roam) lands below it. Mount a volume here.
const DataDir = "/data"

// ImageConfig describes one image of an index: the same configuration for
// every platform, with a binary per platform.
type ImageConfig struct {
	// Name is the binary's name in the image, at /Name.
	Name string
	// Entrypoint follows /Name, e.g. ["edge"] for the edge host.
	Args []string
	// Cmd is the default arguments after the entrypoint.
	Cmd []string
	// Labels become the config's labels and the index's annotations:
	// org.opencontainers.image.* keys.
	Labels map[string]string
	// Created is the fixed time stamped everywhere a time goes.
	Created time.Time
	// Port is exposed (0: none).
	Port int
}

// Platform is one os/arch of an index and the binary that runs there.
type Platform struct {
	OS, Arch, Variant string
	Binary            string // path of the static executable
}

// Index builds a multi-platform image index: for each platform, an image of
// the base layer (CA certificates, /etc/passwd, /tmp, /data) and a layer
// holding the binary.
func Index(c ImageConfig, platforms []Platform) (v1.ImageIndex, error) {
	base, err := baseLayer(c.Created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := image(c, p, base)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant},
		}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	if len(c.Labels) > 0 {
		idx = mutate.Annotations(idx, c.Labels).(v1.ImageIndex)
	}
	return idx, nil
}

func image(c ImageConfig, p Platform, base v1.Layer) (v1.Image, error) {
	bin, err := os.ReadFile(p.Binary)
	if err != nil {
		return nil, err
	}
	binLayer, err := layer(c.Created, []entry{{name: c.Name, mode: 0o755, body: bin}})
	if err != nil {
		return nil, err
	}
	cfg := &v1.ConfigFile{
		Architecture: p.Arch, OS: p.OS, Variant: p.Variant,
		Created: v1.Time{Time: c.Created},
		Config: v1.Config{
			Entrypoint: append([]string{"/" + c.Name}, c.Args...),
			Cmd:        c.Cmd,
			User:       fmt.Sprintf("%d:%d", NonRoot, NonRoot),
			WorkingDir: DataDir,
			Env:        []string{"PATH=/", "HOME=" + DataDir, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
			Labels:     c.Labels,
		},
	}
	if c.Port > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", c.Port): {}}
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	hist := func(by string) v1.History { return v1.History{Created: v1.Time{Time: c.Created}, CreatedBy: by} }
	return mutate.Append(img,
		mutate.Addendum{Layer: base, History: hist("roam dist: CA certificates, passwd, /tmp, " + DataDir), MediaType: types.OCILayer},
		mutate.Addendum{Layer: binLayer, History: hist("roam dist: /" + c.Name), MediaType: types.OCILayer},
	)
}

// baseLayer is the same for every image and platform, so a registry holds
// it once.
func baseLayer(created time.Time) (v1.Layer, error) {
	certs, err := CACertificates()
	if err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", NonRoot, NonRoot, DataDir)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRoot)
	return layer(created, []entry{
		{name: "etc/", dir: true, mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/", dir: true, mode: 0o755},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: certs},
		{name: "tmp/", dir: true, mode: 0o1777},
		{name: strings.TrimPrefix(DataDir, "/") + "/", dir: true, mode: 0o755, owner: NonRoot},
	})
}

type entry struct {
	name  string
	dir   bool
	mode  int64
	owner int
	body  []byte
}

// layer writes entries as a gzipped tar (gzip's default level: -9 saves
// under 1% on a Go binary and takes three times as long) with fixed times, owners and
// order, and no compression header time: the same entries give the same
// bytes.
func layer(created time.Time, entries []entry) (v1.Layer, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.owner, Gid: e.owner, ModTime: created.UTC(),
			Typeflag: tar.TypeReg, Size: int64(len(e.body)), Format: tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if _, err := zw.Write(tb.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// Labels returns the org.opencontainers.image.* labels of an image.
func Labels(title, description, version, revision, source string, created time.Time) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":   title,
		"org.opencontainers.image.version": version,
		"org.opencontainers.image.created": created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.vendor":  "roam",
	}
	if description != "" {
		l["org.opencontainers.image.description"] = description
	}
	if revision != "" {
		l["org.opencontainers.image.revision"] = revision
	}
	if source != "" {
		l["org.opencontainers.image.source"] = source
	}
	return l
}

// SafeName is name reduced to what a binary, tag or repository path may
// hold.
func SafeName(name string) string {
	name = strings.ToLower(path.Base(name))
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-.")
}
