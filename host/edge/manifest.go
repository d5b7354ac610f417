package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A guest gets nothing from the machine by default: no preopened
// directories, no environment, no arguments, and no sockets (the host
// offers none at all). A manifest is the one place that grants a module
// more, so that what a module may touch is written down next to it.
//
//	{
//	  "modules": [
//	    {"path": "orders.wasm", "pool_size": 4, "max_queue": 64,
//	     "max_pool_size": 16, "pool_memory_mb": 128, "idle_timeout": "1m",
//	     "memory_limit_mb": 64, "timeout": "5s",
//	     "env": {"REGION": "eu-west"},
//	     "mounts": [{"host": "./assets", "guest": "/assets", "read_only": true}]}
//	  ]
//	}
//
// Paths are relative to the manifest's directory. Unknown fields are
// errors, so a misspelt grant is refused rather than silently ignored.
type Manifest struct {
	Modules []ManifestModule `json:"modules"`
}

// ManifestModule is one module of a manifest and what it is granted.
type ManifestModule struct {
	Path          string            `json:"path"`
	PoolSize      int               `json:"pool_size,omitempty"`
	MaxPoolSize   int               `json:"max_pool_size,omitempty"`
	PoolMemoryMB  int               `json:"pool_memory_mb,omitempty"`
	IdleTimeout   string            `json:"idle_timeout,omitempty"`
	MaxQueue      int               `json:"max_queue,omitempty"`
	MemoryLimitMB int               `json:"memory_limit_mb,omitempty"`
	Timeout       string            `json:"timeout,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	Mounts        []Mount           `json:"mounts,omitempty"`
}

// Mount grants a guest a host directory at a guest path.
type Mount struct {
	Host     string `json:"host"`
	Guest    string `json:"guest"`
	ReadOnly bool   `json:"read_only"`
}

// Spec is a module file to load and the options it gets.
type Spec struct {
	Path    string
	Options ModuleOptions
	ahead   *fileRead // set by readAhead
}

// fileRead is a read of a module's file that started early.
type fileRead struct {
	done chan struct{}
	b    []byte
	err  error
}

// readAhead starts reading the specs' files, so that the reads overlap
// whatever the caller does before it loads them.
func readAhead(specs []Spec) {
	for i := range specs {
		r := &fileRead{done: make(chan struct{})}
		specs[i].ahead = r
		go func(path string) {
			r.b, r.err = os.ReadFile(path)
			close(r.done)
		}(specs[i].Path)
	}
}

// read returns the bytes of the spec's file: those read ahead, if they were.
func (s Spec) read() ([]byte, error) {
	if s.ahead == nil {
		return os.ReadFile(s.Path)
	}
	<-s.ahead.done
	return s.ahead.b, s.ahead.err
}

// ModuleSpecs expands paths into module specs: a .wasm file is a module with
// the defaults, a directory stands for its *.wasm files, a .json file is a
// manifest, and oci://REF is a wasm artifact in a registry. log (nil for
// none) hears of a pull that got past refused credentials.
func ModuleSpecs(paths []string, defaults ModuleOptions, log *slog.Logger) ([]Spec, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var plain []string
	var out []Spec
	for _, p := range paths {
		p, err := resolveOCI(p, log) // oci://REF: the module pulled from a registry (oci.go)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(p, ".json") {
			specs, err := readManifest(p, defaults)
			if err != nil {
				return nil, err
			}
			out = append(out, specs...)
			continue
		}
		plain = append(plain, p)
	}
	if len(plain) > 0 || len(out) == 0 {
		files, err := ModuleFiles(plain)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			out = append(out, Spec{Path: f, Options: defaults})
		}
	}
	return out, nil
}

func readManifest(path string, defaults ModuleOptions) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if len(m.Modules) == 0 {
		return nil, fmt.Errorf("manifest %s lists no modules", path)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var out []Spec
	for i, mm := range m.Modules {
		where := fmt.Sprintf("manifest %s, module %d", path, i)
		if mm.Path == "" {
			return nil, fmt.Errorf("%s: no path", where)
		}
		o := defaults
		if mm.PoolSize < 0 || mm.MaxQueue < 0 || mm.MemoryLimitMB < 0 || mm.MemoryLimitMB > 4096 {
			return nil, fmt.Errorf("%s: pool_size, max_queue and memory_limit_mb (at most 4096) must not be negative", where)
		}
		if mm.MaxPoolSize < 0 || mm.PoolMemoryMB < 0 || mm.PoolMemoryMB > 1<<20 {
			return nil, fmt.Errorf("%s: max_pool_size and pool_memory_mb (at most %d) must not be negative", where, 1<<20)
		}
		if mm.PoolSize > 0 {
			o.PoolSize = mm.PoolSize
		}
		if mm.MaxPoolSize > 0 && o.PoolSize > mm.MaxPoolSize {
			return nil, fmt.Errorf("%s: max_pool_size %d is below the pool size %d (pool_size, or --pool-size): raise it (equal keeps the pool fixed), or leave it out for %d",
				where, mm.MaxPoolSize, o.PoolSize, DefaultMaxPoolSize(o.PoolSize))
		}
		if mm.MaxPoolSize > 0 {
			o.MaxPoolSize = mm.MaxPoolSize
		}
		if mm.PoolMemoryMB > 0 {
			o.PoolMemoryBytes = uint64(mm.PoolMemoryMB) << 20
		}
		// The base pool is made in full at load: one that cannot fit in its
		// memory budget is refused, by the rule that refuses --pool-size.
		if budget := poolBudgetMiB(int(o.PoolMemoryBytes >> 20)); !basePoolFits(o.PoolSize, budget) {
			size, limit := "pool_size", "pool_memory_mb"
			if mm.PoolSize == 0 {
				size = "--pool-size"
			}
			if mm.PoolMemoryMB == 0 {
				limit = "--pool-memory-mb"
			}
			return nil, fmt.Errorf("%s (%s): %s %d: at %d MiB or more an instance (a Go module's takes about 4), the base pool alone would exceed %s %d: lower %s, or raise %s",
				where, mm.Path, size, o.PoolSize, minInstanceMiB, limit, budget, size, limit)
		}
		if mm.IdleTimeout != "" {
			d, err := time.ParseDuration(mm.IdleTimeout)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s: idle_timeout %q: want a positive duration such as 30s", where, mm.IdleTimeout)
			}
			o.IdleTimeout = d
		}
		if mm.MaxQueue > 0 {
			o.MaxQueue = mm.MaxQueue
		}
		if mm.MemoryLimitMB > 0 {
			o.MemoryLimitPages = uint32(mm.MemoryLimitMB) * 16
		}
		if mm.Timeout != "" {
			d, err := time.ParseDuration(mm.Timeout)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("%s: timeout %q: want a positive duration such as 5s", where, mm.Timeout)
			}
			o.Timeout = d
		}
		o.Env = mm.Env
		for _, mt := range mm.Mounts {
			if mt.Host == "" || !strings.HasPrefix(mt.Guest, "/") {
				return nil, fmt.Errorf("%s: a mount needs a host directory and an absolute guest path", where)
			}
			fi, err := os.Stat(rel(mt.Host))
			if err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("%s: mount %s is not a directory", where, rel(mt.Host))
			}
			o.Mounts = append(o.Mounts, Mount{Host: rel(mt.Host), Guest: mt.Guest, ReadOnly: mt.ReadOnly})
		}
		out = append(out, Spec{Path: rel(mm.Path), Options: o})
	}
	return out, nil
}
