package main

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/dist"
)

// newDistCmd is `roam dist`: everything to ship, in one directory. It is a
// command of its own rather than a `roam build --dist` flag because it
// makes a directory of many artifacts (binaries per platform, modules, the
// browser bundle, images, checksums) with options of its own (--platforms,
// --push, --images), where roam build makes one file.
func newDistCmd(stdout, stderr io.Writer) *cobra.Command {
	var out, platforms, backendList, push, tag, ver string
	var noEdge, noOperator, noImages bool
	var edgeRuntime string
	var jobs int
	c := &cobra.Command{
		Use:   "dist [packages or directories]",
		Short: "Build everything to ship: static binaries per platform, wasm modules, the browser bundle, OCI images and SHA256SUMS",
		Long: `dist builds, into one directory (-o, default dist/):

  OS_ARCH/APP        each app's static native binary, per platform
  OS_ARCH/roam-edge  the edge host (roam edge alone), per platform
  OS_ARCH/roam-operator  the Kubernetes operator (roam operator install), per platform
  wasm/APP.wasm      each app's wasip1 module
  web/               the browser page and bundle beside the apps (web/)
  oci/APP            a multi-arch image index per app (OCI layout)
  oci/roam-edge      the edge host's multi-arch image
  oci/roam-operator  the operator's multi-arch image
  oci/APP-wasm       each module as a wasm OCI artifact
  SHA256SUMS

Images are built without Docker: the static binary on an empty base with
CA certificates, running as user 65532 in /data. The outputs are
reproducible: the same tree gives the same bytes (times come from
SOURCE_DATE_EPOCH, else the last commit). With --push REPO each image goes
to REPO/NAME:TAG, with credentials from docker's config and credential
helpers.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			if jobs < 0 {
				return fmt.Errorf("--jobs %d: use 1 or more, or 0 for the number of CPUs", jobs)
			}
			var plats []build.Target
			for _, p := range strings.Split(platforms, ",") {
				goos, goarch, ok := strings.Cut(strings.TrimSpace(p), "/")
				if !ok || goos == "" || goarch == "" {
					return fmt.Errorf("--platforms %q: use GOOS/GOARCH pairs such as linux/amd64,linux/arm64", platforms)
				}
				plats = append(plats, build.Target{GOOS: goos, GOARCH: goarch})
			}
			backends, err := build.ParseBackends(backendList)
			if err != nil {
				return err
			}
			if ver == "" {
				ver = versionString()
			}
			live := dist.IsTerminal(stderr)
			res, err := dist.Build(cmd.Context(), dist.Options{
				Patterns: args, Out: out, Platforms: plats, Version: ver, Backends: backends,
				NoEdge: noEdge, EdgeRuntime: edgeRuntime, NoOperator: noOperator, NoImages: noImages, Jobs: jobs, Progress: stderr, Live: live,
			})
			if err != nil {
				return err
			}
			rel := func(p string) string {
				if r, err := filepath.Rel(".", p); err == nil && !strings.HasPrefix(r, "..") {
					return r
				}
				return p
			}
			fmt.Fprintf(stdout, "built %s: %d files, listed in %s\n", rel(res.Dir), len(res.Files), rel(filepath.Join(res.Dir, "SHA256SUMS")))
			for _, img := range res.Images {
				var sizes []string
				for k, n := range img.Sizes {
					sizes = append(sizes, fmt.Sprintf("%s %.2f MB", k, float64(n)/1e6))
				}
				sort.Strings(sizes)
				fmt.Fprintf(stdout, "  oci:%s  %s  (%s compressed)\n", rel(img.Layout), img.Digest, strings.Join(sizes, ", "))
			}
			if push == "" {
				return nil
			}
			if tag == "" {
				tag = dist.Tag(ver)
			}
			pushed, err := dist.Push(cmd.Context(), res, push, tag, stderr, live)
			for _, p := range pushed {
				if p.Ref != "" && p.Digest.Hex != "" {
					fmt.Fprintf(stdout, "pushed %s@%s\n", p.Ref, p.Digest)
				}
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVarP(&out, "output", "o", "dist", "the dist directory (its entries that dist writes are replaced; others are left)")
	f.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "GOOS/GOARCH pairs of the native binaries and images")
	f.StringVar(&backendList, "backends", "embedded,dapr", "backends the native binaries link (see roam build)")
	f.StringVar(&ver, "version", "", "version stamped into binaries and image labels (default: roam's)")
	f.StringVar(&push, "push", "", "push the images to this repository prefix, e.g. ghcr.io/acme/shop (REPO/APP:TAG, REPO/roam-edge:TAG, REPO/roam-operator:TAG, REPO/APP-wasm:TAG)")
	f.StringVar(&tag, "tag", "", "tag of pushed images (default: the version)")
	f.BoolVar(&noEdge, "no-edge", false, "leave out the edge host binary and image")
	f.StringVar(&edgeRuntime, "edge-runtime", "wazero", "WebAssembly runtime of the edge host: wazero, or wazy (a wazero fork with its own compiler, faster per call and to start; see RATIONALE.md)")
	f.BoolVar(&noOperator, "no-operator", false, "leave out the operator binary and image")
	f.BoolVar(&noImages, "no-images", false, "leave out the OCI images")
	f.IntVar(&jobs, "jobs", 0, "builds at once (0: the number of CPUs)")
	return c
}
