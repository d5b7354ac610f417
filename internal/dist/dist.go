// Package dist builds everything needed to ship Roam apps into one
// directory: static native binaries per platform, each app's wasip1
// module, the browser bundle, the edge host, OCI images of the binaries
// (multi-arch indexes) and of the modules (wasm artifacts), and
// SHA256SUMS. The outputs are a function of the source tree: no
// timestamps, paths or build ids, so two builds give the same bytes.
package dist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/roam-dev/roam/internal/build"
	"github.com/roam-dev/roam/internal/oci"
)

// DefaultPlatforms are the native platforms built when none are named.
var DefaultPlatforms = []build.Target{{GOOS: "linux", GOARCH: "amd64"}, {GOOS: "linux", GOARCH: "arm64"}}

// EdgeRuntimeTags returns the build tags that put the edge host on the
// named WebAssembly runtime (internal/wasmrt).
func EdgeRuntimeTags(name string) (string, error) {
	switch name {
	case "", "wazero":
		return "", nil
	case "wazy":
		return "roam_wazy", nil
	}
	return "", fmt.Errorf("unknown edge runtime %q: wazero (the default) or wazy", name)
}

// EdgeName is the edge host's name: its binary and its image.
const EdgeName = "roam-edge"

// EdgeCmd is the package of the edge host's binary: `roam edge` without
// the rest of the roam command.
const EdgeCmd = "github.com/roam-dev/roam/cmd/roam-edge"

// OperatorName is the Kubernetes operator's binary and image name.
const OperatorName = "roam-operator"

// OperatorCmd is the package of the Kubernetes operator, which reconciles
// RoamApp resources (roam operator install deploys its image).
const OperatorCmd = "github.com/roam-dev/roam/cmd/roam-operator"

// Options describe a distribution build.
type Options struct {
	Dir       string   // where Patterns are resolved; default "."
	Patterns  []string // packages or directories holding apps
	Out       string   // the dist directory
	Platforms []build.Target
	Version   string
	Commit    string    // default: git rev-parse HEAD in the apps' module root, if any
	Created   time.Time // stamped in images; default: SourceDate of the apps' module root
	Backends  []string  // backends the native binaries link
	NoEdge    bool      // leave out the edge host binary and image
	// EdgeRuntime is the WebAssembly runtime the edge host is built on:
	// "wazero" (the default) or "wazy" (internal/wasmrt).
	EdgeRuntime string
	NoImages    bool      // leave out the OCI images
	Jobs        int       // builds at once; default: the number of CPUs
	Progress    io.Writer // where progress goes (nil: nowhere)
	Live        bool      // draw live lines (Progress is a terminal)

	// NoOperator leaves out the Kubernetes operator's binary and image.
	NoOperator bool
}

// App is one app package and what was built of it.
type App struct {
	Name    string // binary, module and image name
	Package build.Package
	Wasm    string // dist-relative path of its module ("" when it has none)
}

// Image is an OCI image or artifact written under dist/oci.
type Image struct {
	Name   string // repository name: the app, roam-edge, roam-operator or APP-wasm
	Layout string // the OCI layout's directory
	Digest v1.Hash
	Index  v1.ImageIndex // multi-arch images
	Wasm   v1.Image      // wasm artifacts
	// Sizes is each platform's compressed size: manifest, config and
	// layers, as a registry stores and a client pulls them.
	Sizes map[string]int64
}

// Result is what a build produced.
type Result struct {
	Dir    string
	Apps   []App
	Images []*Image
	Files  []string // dist-relative, sorted, as listed in SHA256SUMS
}

// managed are the entries of the dist directory a build replaces; anything
// else there is left alone.
func managed(o Options) []string {
	m := []string{"wasm", "web", "oci", "SHA256SUMS"}
	for _, p := range o.Platforms {
		m = append(m, p.GOOS+"_"+p.GOARCH)
	}
	return m
}

// Build builds the distribution. Targets run in parallel, at most Jobs go
// builds at a time.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Out == "" {
		return nil, errors.New("no dist directory")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	dir := o.Dir
	if dir == "" {
		dir = "."
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	edgeTags, err := EdgeRuntimeTags(o.EdgeRuntime)
	if err != nil {
		return nil, err
	}
	pkgs, modRoot, err := build.FindApps(ctx, dir, o.Patterns)
	if err != nil {
		return nil, err
	}
	// The commit and the time stamped are those of the apps' source, not
	// of the working directory's repository (if any): cd /tmp && roam
	// dist ~/src/shop stamps the shop's commit.
	src := modRoot
	if src == "" {
		src = dir
	}
	if o.Commit == "" {
		o.Commit = gitOutput(src, "rev-parse", "HEAD")
	}
	if o.Created.IsZero() {
		o.Created = SourceDate(src)
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	for _, m := range managed(o) {
		if err := os.RemoveAll(filepath.Join(out, m)); err != nil {
			return nil, err
		}
	}
	res := &Result{Dir: out}
	rep := newReporter(o.Progress, o.Live)
	g := &graph{sem: make(chan struct{}, o.Jobs), rep: rep}
	seen := map[string]bool{}
	for _, p := range pkgs {
		app := App{Name: AppName(p), Package: p}
		if app.Name == OperatorName && !o.NoOperator {
			return nil, fmt.Errorf("app package %s is named %s, like the operator's binary and image: rename it", p.ImportPath, OperatorName)
		}
		if seen[app.Name] {
			return nil, fmt.Errorf("two app packages are named %s (%s and another): rename one", app.Name, p.ImportPath)
		}
		seen[app.Name] = true
		// Each app builds in its own package's directory, by import path:
		// go then runs in the app's module (or the workspace around it),
		// as FindApps's go list did, whatever the working directory. Dir
		// (the working directory by default) may be in no module at all,
		// or in another (cd /tmp && roam dist ~/src/shop). Not p.Dir as a
		// pattern: a directory means every package below it, and a
		// subpackage may hold another app.
		var natives []*task
		var plats []oci.Platform
		for _, t := range o.Platforms {
			rel := filepath.Join(t.GOOS+"_"+t.GOARCH, app.Name)
			path := filepath.Join(out, rel)
			natives = append(natives, g.add(t.GOOS+"/"+t.GOARCH+" "+app.Name, nil, func() (string, error) {
				_, err := build.Native(ctx, build.Options{Dir: p.Dir, Patterns: []string{p.ImportPath}, Out: path, Release: true,
					Target: t, Version: o.Version, Commit: o.Commit, Backends: o.Backends, Stdout: io.Discard})
				return sizeOf(path), err
			}))
			plats = append(plats, platform(t, path))
		}
		if len(p.AppIDs) <= 1 { // a module holds exactly one app
			app.Wasm = filepath.Join("wasm", app.Name+".wasm")
			path := filepath.Join(out, app.Wasm)
			wt := g.add("wasm "+app.Name, nil, func() (string, error) {
				_, err := build.Wasm(ctx, build.Options{Dir: p.Dir, Patterns: []string{p.ImportPath}, Out: path, Release: true, Stdout: io.Discard})
				return sizeOf(path), err
			})
			if !o.NoImages {
				img := &Image{Name: app.Name + "-wasm", Layout: filepath.Join(out, "oci", app.Name+"-wasm")}
				res.Images = append(res.Images, img)
				g.add("oci "+img.Name, []*task{wt}, func() (string, error) {
					return wasmImage(img, path, app.Name, o)
				})
			}
		}
		if !o.NoImages {
			img := &Image{Name: app.Name, Layout: filepath.Join(out, "oci", app.Name)}
			res.Images = append(res.Images, img)
			g.add("oci "+img.Name, natives, func() (string, error) {
				return indexImage(img, oci.ImageConfig{
					Name: app.Name, Args: []string{"--addr=0.0.0.0"}, Port: 8080, Created: o.Created,
					Labels: oci.Labels(app.Name, "Roam app "+p.ImportPath+" on the native host", o.Version, o.Commit, "", o.Created),
				}, plats)
			})
		}
		res.Apps = append(res.Apps, app)
	}
	if !o.NoEdge {
		var edges []*task
		var plats []oci.Platform
		for _, t := range o.Platforms {
			path := filepath.Join(out, t.GOOS+"_"+t.GOARCH, EdgeName)
			edges = append(edges, g.add(t.GOOS+"/"+t.GOARCH+" "+EdgeName+" (edge host)", nil, func() (string, error) {
				err := goBuildCommand(ctx, modRoot, EdgeCmd, path, t, o.Version, edgeTags)
				return sizeOf(path), err
			}))
			plats = append(plats, platform(t, path))
		}
		if !o.NoImages {
			img := &Image{Name: EdgeName, Layout: filepath.Join(out, "oci", EdgeName)}
			res.Images = append(res.Images, img)
			g.add("oci "+img.Name, edges, func() (string, error) {
				return indexImage(img, oci.ImageConfig{
					Name: EdgeName, Args: []string{"--addr=0.0.0.0"}, Cmd: []string{oci.DataDir + "/modules"}, Port: 8080, Created: o.Created,
					Labels: oci.Labels(EdgeName, "Roam edge host: runs wasip1 app modules (roam-edge, the same as roam edge)", o.Version, o.Commit, "", o.Created),
				}, plats)
			})
		}
	}
	if !o.NoOperator {
		// The operator is a binary of its own (it links client-go and
		// controller-runtime, which the roam binary, the edge host, must
		// not carry), in an image like the others: static, user 65532.
		var ops []*task
		var plats []oci.Platform
		for _, t := range o.Platforms {
			path := filepath.Join(out, t.GOOS+"_"+t.GOARCH, OperatorName)
			ops = append(ops, g.add(t.GOOS+"/"+t.GOARCH+" "+OperatorName, nil, func() (string, error) {
				err := goBuildCommand(ctx, modRoot, OperatorCmd, path, t, o.Version, "")
				return sizeOf(path), err
			}))
			plats = append(plats, platform(t, path))
		}
		if !o.NoImages {
			img := &Image{Name: OperatorName, Layout: filepath.Join(out, "oci", OperatorName)}
			res.Images = append(res.Images, img)
			g.add("oci "+img.Name, ops, func() (string, error) {
				return indexImage(img, oci.ImageConfig{
					Name: OperatorName, Port: 8080, Created: o.Created, // 8080: /metrics
					Labels: oci.Labels(OperatorName, "Roam's Kubernetes operator: reconciles RoamApp resources (roam operator install)", o.Version, o.Commit, "", o.Created),
				}, plats)
			})
		}
	}
	if web := webDir(o.Patterns, dir); web != "" {
		g.add("web bundle", nil, func() (string, error) {
			n, err := copyTree(web, filepath.Join(out, "web"))
			return fmt.Sprintf("%d files", n), err
		})
	}
	if err := g.run(); err != nil {
		rep.wait()
		return nil, err
	}
	sums := rep.add("SHA256SUMS")
	sums.begin()
	res.Files, err = writeSums(out, managed(o))
	sums.finish(fmt.Sprintf("%d files", len(res.Files)), err)
	rep.wait()
	if err != nil {
		return nil, err
	}
	sort.Slice(res.Images, func(i, j int) bool { return res.Images[i].Name < res.Images[j].Name })
	return res, nil
}

func platform(t build.Target, bin string) oci.Platform {
	p := oci.Platform{OS: t.GOOS, Arch: t.GOARCH, Binary: bin}
	if t.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// AppName is the name of an app's binary, module and image: its id when
// the source gives it as a literal, else its package directory's name (the
// shop's ids are constants named like their directories). roam manifests
// names the app's RoamApp, and its app id, the same.
func AppName(p build.Package) string {
	if len(p.AppIDs) == 1 {
		if n := oci.SafeName(p.AppIDs[0]); n != "" {
			return n
		}
	}
	return oci.SafeName(filepath.Base(p.Dir))
}

func indexImage(img *Image, c oci.ImageConfig, plats []oci.Platform) (string, error) {
	idx, err := oci.Index(c, plats)
	if err != nil {
		return "", err
	}
	if err := oci.WriteLayout(img.Layout, "latest", idx); err != nil {
		return "", err
	}
	img.Index = idx
	if img.Digest, err = idx.Digest(); err != nil {
		return "", err
	}
	img.Sizes = map[string]int64{}
	m, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	var parts []string
	for _, d := range m.Manifests {
		im, err := idx.Image(d.Digest)
		if err != nil {
			return "", err
		}
		n, err := compressedSize(im)
		if err != nil {
			return "", err
		}
		key := d.Platform.OS + "/" + d.Platform.Architecture
		img.Sizes[key] = n
		parts = append(parts, fmt.Sprintf("%s %.1f MB", d.Platform.Architecture, float64(n)/1e6))
	}
	return strings.Join(parts, ", ") + " compressed", nil
}

func wasmImage(img *Image, path, name string, o Options) (string, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	a, err := oci.WasmArtifact(wasm, name+".wasm", o.Created, oci.Labels(name, "Roam app module (wasip1) for roam edge and browsers", o.Version, o.Commit, "", o.Created))
	if err != nil {
		return "", err
	}
	if err := oci.WriteLayout(img.Layout, "latest", a); err != nil {
		return "", err
	}
	img.Wasm = a
	if img.Digest, err = a.Digest(); err != nil {
		return "", err
	}
	n, err := compressedSize(a)
	img.Sizes = map[string]int64{"wasip1/wasm": n}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6), err
}

// CompressedSize is what pulling img transfers: manifest, config, layers.
func compressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// goBuildCommand builds one of Roam's commands (roam, roam-operator) for t,
// stamping main.version, with the flags build.Options.Release uses.
func goBuildCommand(ctx context.Context, modRoot, pkg, out string, t build.Target, version, tags string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-tags="+tags,
		"-ldflags=-s -w -buildid= -X main.version="+version, "-o", out, pkg)
	cmd.Dir = modRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.GOOS, "GOARCH="+t.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, stderr.String())
	}
	return nil
}

// webDir is the first web/ directory with an index.html beside the apps
// named by patterns, as roam run serves it.
func webDir(patterns []string, dir string) string {
	for _, p := range patterns {
		p = strings.TrimSuffix(p, "/...")
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if _, err := os.Stat(filepath.Join(p, "web", "index.html")); err == nil {
			return filepath.Join(p, "web")
		}
	}
	return ""
}

// copyTree copies the regular files below src, but hidden ones and
// node_modules, to dst.
func copyTree(src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != src && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(src, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		n++
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	return n, err
}

// writeSums writes SHA256SUMS (sha256sum -c format) over every file below
// the managed entries of dir and returns their paths.
func writeSums(dir string, entries []string) ([]string, error) {
	var files []string
	for _, e := range entries {
		root := filepath.Join(dir, e)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				rel, _ := filepath.Rel(dir, path)
				files = append(files, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		h, err := FileDigest(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", h, f)
	}
	return files, os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}

// FileDigest is the hex SHA-256 of a file.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sizeOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/1e6)
}

// SourceDate is the time stamped in images: $SOURCE_DATE_EPOCH when set
// (reproducible-builds.org), else the last commit's time, else the epoch.
func SourceDate(dir string) time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	if s := gitOutput(dir, "log", "-1", "--format=%ct"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

func gitOutput(dir string, args ...string) string {
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	b, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// graph runs tasks once the tasks they need are done; go builds hold one
// of a bounded number of slots.
type graph struct {
	sem   chan struct{}
	rep   *reporter
	tasks []*task
}

type task struct {
	t     *tracker
	needs []*task
	fn    func() (string, error)
	done  chan struct{}
	err   error
}

func (g *graph) add(name string, needs []*task, fn func() (string, error)) *task {
	t := &task{t: g.rep.add(name), needs: needs, fn: fn, done: make(chan struct{})}
	g.tasks = append(g.tasks, t)
	return t
}

func (g *graph) run() error {
	var wg sync.WaitGroup
	for _, t := range g.tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(t.done)
			for _, n := range t.needs {
				<-n.done
				if n.err != nil {
					t.err = errSkipped
					t.t.skip()
					return
				}
			}
			// Every task takes a slot: image layers are gzipped at the
			// highest level, which is CPU work too.
			g.sem <- struct{}{}
			defer func() { <-g.sem }()
			t.t.begin()
			var res string
			res, t.err = t.fn()
			t.t.finish(res, t.err)
		}()
	}
	wg.Wait()
	var errs []error
	for _, t := range g.tasks {
		if t.err != nil && t.err != errSkipped {
			errs = append(errs, fmt.Errorf("%s: %w", t.t.name, t.err))
		}
	}
	return errors.Join(errs...)
}

var errSkipped = errors.New("skipped")

// Pushed is an image pushed to a registry.
type Pushed struct {
	Ref    string
	Digest v1.Hash
}

// Push pushes every image of res to REPO/NAME:tag, with credentials from
// the standard keychain.
func Push(ctx context.Context, res *Result, repo, tag string, progress io.Writer, live bool) ([]Pushed, error) {
	rep := newReporter(progress, live)
	out := make([]Pushed, len(res.Images))
	var wg sync.WaitGroup
	errs := make([]error, len(res.Images))
	for i, img := range res.Images {
		ref := strings.TrimSuffix(repo, "/") + "/" + img.Name + ":" + tag
		t := rep.add("push " + ref)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.begin()
			var x any = img.Index
			if img.Wasm != nil {
				x = img.Wasm
			}
			d, err := oci.Push(ctx, ref, x)
			if err == nil && d != img.Digest {
				err = fmt.Errorf("pushed digest %s, built %s", d, img.Digest)
			}
			out[i], errs[i] = Pushed{Ref: ref, Digest: d}, err
			t.finish(d.String(), err)
		}()
	}
	wg.Wait()
	rep.wait()
	return out, errors.Join(errs...)
}

// Tag turns a version into an image tag.
func Tag(version string) string {
	var b strings.Builder
	for i, r := range version {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || (i > 0 && (r == '.' || r == '-')) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "latest"
	}
	s := b.String()
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}
