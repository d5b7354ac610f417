package jsongen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// loaded is a type-checked package.
type loaded struct {
	fset *token.FileSet
	pkg  *types.Package
	info *types.Info
}

type listedPackage struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	Export     string
	Error      *struct{ Err string }
}

// goList runs go list -json in dir and decodes its stream of packages.
func goList(dir string, args ...string) ([]listedPackage, error) {
	cmd := exec.Command("go", append([]string{"list", "-e"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// load parses and type-checks the package in dir, leaving out the file named
// skip (the generator's own output, which may be stale). Imports are read
// from the compiler's export data, which go list builds (and caches).
func load(dir, skip string) (*loaded, error) {
	pkgs, err := goList(dir, "-json=ImportPath,Name,Dir,GoFiles,Error", ".")
	if err != nil {
		return nil, err
	}
	if len(pkgs) != 1 {
		return nil, fmt.Errorf("%s: expected one package, go list found %d", dir, len(pkgs))
	}
	p := pkgs[0]
	if p.Error != nil && len(p.GoFiles) == 0 {
		return nil, fmt.Errorf("%s: %s", dir, p.Error.Err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	imports := map[string]bool{}
	for _, name := range p.GoFiles {
		if name == skip {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if path != "C" && path != "unsafe" {
				imports[path] = true
			}
		}
	}
	exports := map[string]string{}
	if len(imports) > 0 {
		args := []string{"-deps", "-export", "-json=ImportPath,Export,Error"}
		paths := make([]string, 0, len(imports))
		for path := range imports {
			paths = append(paths, path)
		}
		sort.Strings(paths)
		deps, err := goList(p.Dir, append(args, paths...)...)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			if d.Error != nil {
				return nil, fmt.Errorf("%s: %s", d.ImportPath, d.Error.Err)
			}
			exports[d.ImportPath] = d.Export
		}
	}
	lookup := func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok || file == "" {
			return nil, fmt.Errorf("no export data for %q", path)
		}
		return os.Open(file)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", lookup)}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Defs: map[*ast.Ident]types.Object{}}
	pkg, err := conf.Check(p.ImportPath, fset, files, info)
	if err != nil {
		return nil, fmt.Errorf("type-checking %s (without %s): %v", p.ImportPath, skip, err)
	}
	return &loaded{fset: fset, pkg: pkg, info: info}, nil
}
