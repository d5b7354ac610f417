package build

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
)

// idResolver reads the app ids given to sdk.NewApp from source, without
// type-checking: a string literal, a string constant of the same package
// or of one it imports (parsed on demand, through `go list`), or a sum of
// those. An id computed at run time stays unknown.
type idResolver struct {
	ctx  context.Context
	dir  string                      // where go list runs
	fset *token.FileSet              //
	pkgs map[string]map[string]cexpr // import path → constant → its expression
}

// cexpr is an expression with the imports of the file it is written in.
type cexpr struct {
	e       ast.Expr
	imports map[string]string // local name → import path
}

func newIDResolver(ctx context.Context, dir string) *idResolver {
	return &idResolver{ctx: ctx, dir: dir, fset: token.NewFileSet(), pkgs: map[string]map[string]cexpr{}}
}

// fileImports maps the names af refers to its imports by to their paths
// (the last element of the path when the import is not renamed: Go's
// convention, which app code follows).
func fileImports(af *ast.File) map[string]string {
	m := map[string]string{}
	for _, im := range af.Imports {
		path, err := strconv.Unquote(im.Path.Value)
		if err != nil {
			continue
		}
		name := filepath.Base(path)
		if im.Name != nil {
			name = im.Name.Name
		}
		m[name] = path
	}
	return m
}

// addConsts records the constants of a package's parsed files.
func (r *idResolver) addConsts(importPath string, files []*ast.File) {
	consts := map[string]cexpr{}
	for _, af := range files {
		imps := fileImports(af)
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						consts[n.Name] = cexpr{vs.Values[i], imps}
					}
				}
			}
		}
	}
	r.pkgs[importPath] = consts
}

// load parses the package at importPath for its constants.
func (r *idResolver) load(importPath string) map[string]cexpr {
	if c, ok := r.pkgs[importPath]; ok {
		return c
	}
	r.pkgs[importPath] = nil // a failure is not retried
	cmd := goCommand(r.ctx, r.dir, "list", "-e", "-json=Dir,GoFiles", importPath)
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	var p listed
	if err := json.Unmarshal(out, &p); err != nil {
		return nil
	}
	var files []*ast.File
	for _, f := range p.GoFiles {
		af, err := parser.ParseFile(r.fset, filepath.Join(p.Dir, f), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil
		}
		files = append(files, af)
	}
	r.addConsts(importPath, files)
	return r.pkgs[importPath]
}

// eval returns the string value of x, written in package pkg, and
// whether it could be read; depth counts the constants followed.
func (r *idResolver) eval(pkg string, x cexpr, depth int) (string, bool) {
	if depth > 32 { // a cycle: not valid Go anyway
		return "", false
	}
	switch e := x.e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.ParenExpr:
		return r.eval(pkg, cexpr{e.X, x.imports}, depth+1)
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := r.eval(pkg, cexpr{e.X, x.imports}, depth+1)
		b, ok2 := r.eval(pkg, cexpr{e.Y, x.imports}, depth+1)
		return a + b, ok1 && ok2
	case *ast.Ident:
		c, ok := r.load(pkg)[e.Name]
		if !ok {
			return "", false
		}
		return r.eval(pkg, c, depth+1)
	case *ast.SelectorExpr:
		id, ok := e.X.(*ast.Ident)
		if !ok {
			return "", false
		}
		path, ok := x.imports[id.Name]
		if !ok {
			return "", false
		}
		c, ok := r.load(path)[e.Sel.Name]
		if !ok {
			return "", false
		}
		return r.eval(path, c, depth+1)
	}
	return "", false
}
