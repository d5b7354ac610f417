// Package build finds Roam apps in Go packages and builds them for a target
// with the stock Go toolchain. App packages hold no main of their own: for
// each build this package generates one, handed to `go build` through an
// -overlay so nothing is written into the user's tree.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roam-dev/roam/host"
	"github.com/roam-dev/roam/internal/wasmopt"
)

// SDKPath is the import path of the app-facing SDK.
const SDKPath = "github.com/roam-dev/roam/sdk"

// NativeMain is the import path of the native host's runner.
const NativeMain = "github.com/roam-dev/roam/host/native"

// Package is a Go package that declares one or more Roam apps.
type Package struct {
	ImportPath string
	Dir        string
	// AppIDs are the ids passed to sdk.NewApp that could be read from the
	// source: string literals and constants, of the package or of one it
	// imports (see idResolver); an id computed at run time is missing.
	AppIDs []string
	// initIDs are those of AppIDs given in package-level variable
	// declarations, whose calls are sure to run at init.
	initIDs []string
}

type listed struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	Imports    []string
	Module     *struct{ Dir, Path string }
	Error      *struct{ Err string }
}

// FindApps lists the packages matched by patterns (relative to dir) and keeps
// those that declare an app with sdk.NewApp. It returns them and the root of
// their module. A pattern that names a directory means every package below
// it, and the go command runs in the module of the first directory named
// (see resolvePatterns).
func FindApps(ctx context.Context, dir string, patterns []string) ([]Package, string, error) {
	goDir, args, shown, err := resolvePatterns(ctx, dir, patterns)
	if err != nil {
		return nil, "", err
	}
	args = append([]string{"list", "-e", "-json=ImportPath,Dir,Name,GoFiles,Imports,Module,Error"}, args...)
	cmd := goCommand(ctx, goDir, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", stopped(ctx)
		}
		return nil, "", fmt.Errorf("go list %s: %v\n%s", strings.Join(patterns, " "), err, stderr.String())
	}
	var pkgs []Package
	modRoot := ""
	res := newIDResolver(ctx, goDir)
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, "", err
		}
		if p.Error != nil {
			return nil, "", listError(p, shown)
		}
		if p.Module != nil && modRoot == "" {
			modRoot = p.Module.Dir
		}
		if p.Name == "main" || !contains(p.Imports, SDKPath) {
			continue
		}
		ids, inits, declares, err := scanApps(res, p.ImportPath, p.Dir, p.GoFiles)
		if err != nil {
			return nil, "", err
		}
		if declares {
			pkgs = append(pkgs, Package{ImportPath: p.ImportPath, Dir: p.Dir, AppIDs: ids, initIDs: inits})
		}
	}
	if ctx.Err() != nil { // the resolver's go list calls were cut short
		return nil, "", stopped(ctx)
	}
	if len(pkgs) == 0 {
		return nil, "", fmt.Errorf("no Roam apps in %s: an app is a package that declares one with `var App = sdk.NewApp(\"id\", setup)`", strings.Join(patterns, " "))
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].ImportPath < pkgs[j].ImportPath })
	if err := checkIDs(pkgs); err != nil {
		return nil, "", err
	}
	return pkgs, modRoot, nil
}

// scanApps reports whether the files call sdk.NewApp, and with which ids,
// where r can read them from source: all of them, and those of the calls
// in package-level variable declarations (inits), which are sure to run.
func scanApps(r *idResolver, importPath, dir string, files []string) (ids, inits []string, declares bool, err error) {
	var parsed []*ast.File
	for _, f := range files {
		af, err := parser.ParseFile(r.fset, filepath.Join(dir, f), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, nil, false, err
		}
		parsed = append(parsed, af)
	}
	r.addConsts(importPath, parsed)
	for _, af := range parsed {
		imps := fileImports(af)
		sdkName := ""
		for name, path := range imps {
			if path == SDKPath {
				sdkName = name
			}
		}
		if sdkName == "" {
			continue
		}
		// newApp returns the id of n's call of sdk.NewApp, if it is one.
		newApp := func(n ast.Node) (id string, isCall, known bool) {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return "", false, false
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "NewApp" {
				return "", false, false
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != sdkName {
				return "", false, false
			}
			if len(call.Args) == 0 {
				return "", true, false
			}
			id, ok = r.eval(importPath, cexpr{call.Args[0], imps}, 0)
			return id, true, ok
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if id, isCall, known := newApp(n); isCall {
				declares = true
				if known {
					ids = append(ids, id)
				}
			}
			return true
		})
		for _, d := range af.Decls {
			if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.VAR {
				ast.Inspect(gd, func(n ast.Node) bool {
					if _, ok := n.(*ast.FuncLit); ok {
						return false // a setup function runs later, if at all
					}
					if id, isCall, known := newApp(n); isCall && known {
						inits = append(inits, id)
					}
					return true
				})
			}
		}
	}
	return ids, inits, declares, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Target is what to build for.
type Target struct {
	GOOS, GOARCH string
}

// Options describe one build.
type Options struct {
	Dir      string   // where patterns are resolved; default "."
	Patterns []string // packages or directories holding apps
	Out      string   // output file
	Target   Target   // default: the host platform
	Release  bool     // static, stripped, trimmed, reproducible
	Version  string   // stamped into the binary when set
	Commit   string
	Stdout   io.Writer
	Stderr   io.Writer
	// Backends lists the backends a native binary links; the embedded
	// backend is always there, "dapr" adds the Dapr backend (go-sdk and
	// gRPC: about 5 MB stripped). Empty means embedded only.
	Backends []string
}

// BackendPackages are the packages whose import links a backend into a
// native binary, by backend name. "otlp" is not a backend but rides the
// same mechanism: it links tracing (the OpenTelemetry SDK and the OTLP/HTTP
// exporter, about 1.1 MB), which the OTEL_* variables then turn on. Dapr
// links it too (with the OTLP/gRPC exporter, since it links gRPC anyway).
var BackendPackages = map[string]string{
	"embedded": "",
	"dapr":     "github.com/roam-dev/roam/backend/dapr/register",
	"otlp":     TracingPackage,
}

// TracingPackage links tracing into a native binary (see BackendPackages).
const TracingPackage = "github.com/roam-dev/roam/host/telemetry"

const knownBackends = "embedded, dapr; and otlp, which links tracing"

// ParseBackends splits a --backends list and checks its names.
func ParseBackends(list string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(list, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, ok := BackendPackages[b]; !ok {
			return nil, fmt.Errorf("--backends: unknown backend %q (known: %s)", b, knownBackends)
		}
		out = append(out, b)
	}
	return out, nil
}

// Native builds the apps matched by o.Patterns, with the native host, into
// one executable at o.Out.
func Native(ctx context.Context, o Options) ([]Package, error) {
	pkgs, modRoot, err := FindApps(ctx, dirOr(o.Dir), o.Patterns)
	if err != nil {
		return nil, err
	}
	src, err := nativeMain(pkgs, o.Backends, !o.Release && host.TracingRequested(os.Getenv))
	if err != nil {
		return nil, err
	}
	gen := genParent(modRoot, pkgs)
	if err := checkInternal(pkgs, gen); err != nil {
		return nil, err
	}
	return pkgs, goBuild(ctx, o, modRoot, gen, src, nil)
}

// nativeMain generates the main package of a native binary: the native
// host, the apps, and the packages that link the backends asked for. A
// development build (roam run) also links tracing when the environment it
// will run in asks for it (tracing), as roam run links Dapr beside a
// sidecar.
func nativeMain(pkgs []Package, backends []string, tracing bool) ([]byte, error) {
	var src bytes.Buffer
	src.WriteString("// Code generated by roam. DO NOT EDIT.\n\npackage main\n\nimport (\n")
	fmt.Fprintf(&src, "\tnative %q\n\n", NativeMain)
	for _, p := range pkgs {
		fmt.Fprintf(&src, "\t_ %q\n", p.ImportPath)
	}
	links := map[string]bool{}
	for _, b := range backends {
		imp, ok := BackendPackages[b]
		if !ok {
			return nil, fmt.Errorf("unknown backend %q (known: %s)", b, knownBackends)
		}
		if imp != "" && !links[imp] {
			links[imp] = true
			fmt.Fprintf(&src, "\t_ %q\n", imp)
		}
	}
	if tracing && !links[TracingPackage] {
		fmt.Fprintf(&src, "\t_ %q\n", TracingPackage)
	}
	src.WriteString(")\n\nfunc main() { native.Main() }\n")
	return src.Bytes(), nil
}

// Wasm builds the one app matched by o.Patterns as a wasip1 reactor module
// (-buildmode=c-shared) at o.Out. The module's exports come from the SDK's
// wasip1 side; its generated main is empty because a reactor never runs it.
func Wasm(ctx context.Context, o Options) (Package, error) {
	pkgs, modRoot, err := FindApps(ctx, dirOr(o.Dir), o.Patterns)
	if err != nil {
		return Package{}, err
	}
	if len(pkgs) != 1 {
		var paths []string
		for _, p := range pkgs {
			paths = append(paths, p.ImportPath)
		}
		return Package{}, fmt.Errorf("a wasm module holds one app; %s matches %d app packages (%s): name one", strings.Join(o.Patterns, " "), len(pkgs), strings.Join(paths, ", "))
	}
	src := fmt.Sprintf("// Code generated by roam. DO NOT EDIT.\n\npackage main\n\nimport _ %q\n\nfunc main() {}\n", pkgs[0].ImportPath)
	o.Target = Target{GOOS: "wasip1", GOARCH: "wasm"}
	if err := goBuild(ctx, o, modRoot, genParent(modRoot, pkgs), []byte(src), []string{"-buildmode=c-shared"}); err != nil {
		return Package{}, err
	}
	return pkgs[0], rewrite(o.Out)
}

// rewrite joins the module's data segments (see package wasmopt): Go
// writes tens of thousands, which every runtime pays for at each load and
// each instantiation. It also caps the module's table, which Go declares
// with no maximum, as the edge host would at every load otherwise, copying
// the module to do so (wasmopt.CapTables).
func rewrite(path string) error {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, merged, err := wasmopt.MergeData(wasm, wasmopt.DefaultMaxGap)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out, capped, err := wasmopt.CapTables(out)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !merged && !capped {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}

// genParent returns the deepest directory of modRoot that holds every
// package of pkgs. The generated main goes below it so that it may import
// apps under an internal/ directory, as code beside them may: a main at the
// module root cannot import example.com/m/svc/internal/orders.
func genParent(modRoot string, pkgs []Package) string {
	common := ""
	for _, p := range pkgs {
		if common == "" {
			common = p.Dir
			continue
		}
		for !within(p.Dir, common) && filepath.Dir(common) != common {
			common = filepath.Dir(common)
		}
	}
	if common == "" || !within(common, modRoot) {
		return modRoot
	}
	return common
}

// within reports whether dir is root or below it.
func within(dir, root string) bool {
	rel, err := filepath.Rel(root, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func dirOr(d string) string {
	if d == "" {
		return "."
	}
	return d
}

// goBuild compiles the generated main src, placed through an overlay at a
// path below genBase (inside the module) that never exists on disk.
func goBuild(ctx context.Context, o Options, modRoot, genBase string, src []byte, extra []string) error {
	sum := sha256.Sum256(src)
	genDir := filepath.Join(genBase, "_roam", "gen-"+hex.EncodeToString(sum[:6]))
	genRel, err := filepath.Rel(modRoot, genDir)
	if err != nil {
		return err
	}
	// go's own work directory goes below tmp too (GOTMPDIR), so that it
	// is removed even when go is interrupted, which go does not do itself.
	tmp, err := os.MkdirTemp(os.Getenv("GOTMPDIR"), "roam-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	mainFile := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(mainFile, src, 0o644); err != nil {
		return err
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(genDir, "main.go"): mainFile}})
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
		return err
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		// go build would write a file named after the generated main in it.
		return fmt.Errorf("%s is a directory: name the file to write", o.Out)
	}
	args := append([]string{"build", "-overlay", overlayFile, "-o", out}, extra...)
	// PWD as exec.Cmd sets it when it makes the environment: go then sees
	// modRoot by the path go list gave, the overlay's, even through a
	// symbolic link (cd /tmp && roam build /tmp/link/shop/orders).
	env := append(os.Environ(), "GOTMPDIR="+tmp, "PWD="+modRoot)
	if o.Target.GOOS != "" {
		env = append(env, "GOOS="+o.Target.GOOS)
	}
	if o.Target.GOARCH != "" {
		env = append(env, "GOARCH="+o.Target.GOARCH)
	}
	if o.Release {
		env = append(env, "CGO_ENABLED=0")
		args = append(args, "-trimpath", "-buildvcs=false")
		ld := "-s -w -buildid="
		if o.Version != "" {
			ld += " -X " + NativeMain + ".Version=" + o.Version
		}
		if o.Commit != "" {
			ld += " -X " + NativeMain + ".Commit=" + o.Commit
		}
		args = append(args, "-ldflags="+ld)
	}
	args = append(args, "./"+filepath.ToSlash(genRel))
	cmd := goCommand(ctx, modRoot, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout = o.Stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return stopped(ctx)
		}
		return errors.New("go build failed:\n" + stderr.String() + goSumHint(ctx, modRoot, stderr.String()))
	}
	return nil
}
