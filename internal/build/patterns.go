package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/roam-dev/roam/sdk"
)

// resolvePatterns turns the directory arguments among patterns, given
// relative to dir, into "DIR/..." patterns, since a directory means every
// package below it. A pattern names a directory when it starts with . or /
// (./examples/shop), or when it is one on disk (examples/shop, which go
// would look for in the standard library). Those must exist: a typo is
// reported as such rather than as go list's lstat error.
//
// It also says where the go command is to run: in dir, unless the first
// directory named is in another module than dir's, or dir is in none
// (cd /tmp && roam build ~/src/shop/orders). Go then runs in that
// directory, with the patterns made absolute, so that the package builds
// in its own module as the user expects, not in dir's. In a go.work
// workspace go runs in dir, where the workspace says which modules are in.
//
// shown maps each pattern passed to go back to the one the user wrote.
func resolvePatterns(ctx context.Context, dir string, patterns []string) (goDir string, out []string, shown map[string]string, err error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, nil, err
	}
	type arg struct{ rel, abs string } // relative to dir, and absolute
	var args []arg
	first, firstShown := "", "" // the first directory named
	for _, p := range patterns {
		base := strings.TrimSuffix(p, "/...")
		explicit := strings.HasPrefix(p, ".") || filepath.IsAbs(p)
		if strings.Contains(base, "...") { // a wildcard of go's own
			a := arg{p, p}
			if explicit && !filepath.IsAbs(p) {
				a.abs = filepath.Join(absDir, p)
			}
			args = append(args, a)
			continue
		}
		path := base
		if !filepath.IsAbs(path) {
			path = filepath.Join(absDir, path)
		}
		fi, statErr := os.Stat(path)
		if !explicit && (statErr != nil || !fi.IsDir()) {
			args = append(args, arg{p, p}) // an import path
			continue
		}
		switch {
		case errors.Is(statErr, fs.ErrNotExist):
			return "", nil, nil, fmt.Errorf("%s: no such directory", p)
		case statErr != nil:
			return "", nil, nil, statErr
		case !fi.IsDir() && strings.HasSuffix(path, ".go"):
			pkg := filepath.Dir(base)
			if strings.HasPrefix(base, "./") && !strings.HasPrefix(pkg, ".") {
				pkg = "./" + pkg
			}
			return "", nil, nil, fmt.Errorf("%s is a Go file: name the directory of its package, %s", p, pkg)
		case !fi.IsDir():
			return "", nil, nil, fmt.Errorf("%s is a file, not a directory of Go packages", p)
		}
		if first == "" {
			first, firstShown = path, p
		}
		rel := filepath.ToSlash(filepath.Clean(base))
		if !filepath.IsAbs(rel) && rel != "." && rel != ".." && !strings.HasPrefix(rel, "./") && !strings.HasPrefix(rel, "../") {
			rel = "./" + rel // go reads examples/shop as an import path
		}
		args = append(args, arg{rel + "/...", filepath.Join(path, "...")})
	}
	goDir = dir
	if first != "" {
		mod := moduleOf(first)
		if mod == "" {
			return "", nil, nil, fmt.Errorf("%s is in no Go module: there is no go.mod in it or above it (roam builds the apps of a module; go mod init makes one)", firstShown)
		}
		if mod != moduleOf(absDir) && !inWorkspace(ctx, dir) {
			goDir = first
		}
	}
	shown = map[string]string{}
	for i, a := range args {
		p := a.rel
		if goDir != dir {
			p = a.abs
		}
		out = append(out, p)
		shown[p] = patterns[i]
	}
	return goDir, out, shown, nil
}

// moduleOf returns the go.mod that governs dir, the nearest in it or above
// it, or "" if there is none.
func moduleOf(dir string) string {
	for {
		f := filepath.Join(dir, "go.mod")
		if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
			return f
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// inWorkspace reports whether the go command run in dir uses a go.work.
func inWorkspace(ctx context.Context, dir string) bool {
	out, err := goCommand(ctx, dir, "env", "GOWORK").Output()
	if err != nil {
		return false
	}
	w := strings.TrimSpace(string(out))
	return w != "" && w != "off"
}

// listError words a package error of go list: it names the pattern as the
// user wrote it, and says what to do about one outside the module go ran in.
func listError(p listed, shown map[string]string) error {
	msg, name := p.Error.Err, p.ImportPath
	if s, ok := shown[name]; ok && s != name {
		msg, name = strings.ReplaceAll(msg, name, s), s
	}
	if !strings.HasPrefix(msg, "pattern ") && !strings.HasPrefix(msg, "package ") {
		msg = "package " + name + ": " + msg
	}
	for _, outside := range []string{"outside module root", "does not contain main module", "outside main module", "main module does not contain", "is not in the main module", "outside modules listed in go.work"} {
		if strings.Contains(msg, outside) {
			return fmt.Errorf("%s\nroam builds the apps of one module (or of one go.work workspace) at a time: run it once per module", msg)
		}
	}
	return errors.New(msg)
}

// checkIDs refuses what sdk.NewApp would panic on at init in any binary or
// module built from pkgs: an invalid id, or one declared twice. Only the ids
// given in package-level variable declarations count, since those calls are
// sure to run. Before, roam build wrote a binary that could only panic, and
// roam run printed the panic's goroutine dump.
func checkIDs(pkgs []Package) error {
	by := map[string]string{}
	for _, p := range pkgs {
		for _, id := range p.initIDs {
			if err := sdk.ValidAppID(id); err != nil {
				return fmt.Errorf("%s: %s", p.ImportPath, err)
			}
			other, dup := by[id]
			switch {
			case dup && other == p.ImportPath:
				return fmt.Errorf("%s declares app %s twice: each sdk.NewApp needs an id of its own", p.ImportPath, strconv.Quote(id))
			case dup:
				return fmt.Errorf("app id %s is declared by both %s and %s: an id names one app (its routes /v1/apps/%s/..., its state, its subscriptions), so give one of them another", strconv.Quote(id), other, p.ImportPath, id)
			}
			by[id] = p.ImportPath
		}
	}
	return nil
}

// goStopDelay bounds how long a go command may take to stop once
// interrupted, before it is killed.
const goStopDelay = 10 * time.Second

// goCommand is the go command with args, run in dir, and stopped when ctx
// is done as Ctrl-C stops it: with SIGINT, to its process group when it
// has one of its own (ownGroup), which ends go and the compiles and links
// under way. CommandContext's SIGKILL of go alone left them running,
// orphans, after roam had exited.
func goCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	group := ownGroup(cmd)
	cmd.Cancel = func() error { return interrupt(cmd.Process, group) }
	cmd.WaitDelay = goStopDelay
	return cmd
}

// stopped is the error of a build that ctx stopped: its cause (the signal,
// from roam's main), and when.
func stopped(ctx context.Context) error {
	return fmt.Errorf("%w while building", context.Cause(ctx))
}

// goSumHint explains go's "missing go.sum entry" in a module that uses
// Roam (stderr is go build's): roam links the host (NativeMain and the
// backends) into a main package it generates, which no package of the
// module imports, so go mod tidy leaves their sums out, and go's own advice
// (go get github.com/roam-dev/roam/host@...) lasts only until the next tidy.
// Recording roam as a tool of the module keeps them.
func goSumHint(ctx context.Context, modRoot, stderr string) string {
	if !strings.Contains(stderr, "missing go.sum entry") {
		return ""
	}
	roam := strings.TrimSuffix(SDKPath, "/sdk")
	ver := ""
	if out, err := goCommand(ctx, modRoot, "list", "-m", "-f", "{{.Version}}", roam).Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		ver = "@" + strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("roam: the module in %s lacks the go.sum entries of what roam links into the binary it generates (%s and the backends): no package of the module imports them, so go mod tidy leaves them out. Record roam as a tool of the module, which keeps them:\n\tcd %s && go get -tool %s/cmd/roam%s\n", modRoot, NativeMain, modRoot, roam, ver)
}

// checkInternal refuses to link apps into a main below gen that may not
// import them: one in an internal/ directory of a tree that gen is not in
// (a/internal/orders beside b/inventory). Go's error named the generated
// main ("use of internal package ... not allowed"), which the user cannot
// change.
func checkInternal(pkgs []Package, gen string) error {
	for _, p := range pkgs {
		elems := strings.Split(filepath.ToSlash(p.Dir), "/")
		for i := len(elems) - 1; i > 0; i-- {
			if elems[i] != "internal" {
				continue
			}
			tree := filepath.FromSlash(strings.Join(elems[:i], "/"))
			if tree == "" {
				tree = string(filepath.Separator)
			}
			if !within(gen, tree) {
				var others []string
				for _, q := range pkgs {
					if !within(q.Dir, tree) {
						others = append(others, q.ImportPath)
					}
				}
				return fmt.Errorf("%s is internal to %s, so no binary outside that directory may import it, and roam cannot link it with %s: build them apart", p.ImportPath, tree, strings.Join(others, ", "))
			}
		}
	}
	return nil
}
