//go:build roam_wazy

package wasmrt

import (
	"context"

	wazero "github.com/samyfodil/wazy"
	"github.com/samyfodil/wazy/api"
	"github.com/samyfodil/wazy/imports/wasi_snapshot_preview1"
	"github.com/samyfodil/wazy/sys"
)

const (
	// Name is the runtime's name, for logs and the compilation cache's
	// directory.
	Name = "wazy"
	// ModulePath is its Go module, whose version names the cache directory.
	ModulePath = "github.com/samyfodil/wazy"
	// AlwaysInterruptible is whether every compiled call checks for
	// interruption whatever NewConfig is told.
	AlwaysInterruptible = true
)

type (
	Runtime           = wazero.Runtime
	RuntimeConfig     = wazero.RuntimeConfig
	CompiledModule    = wazero.CompiledModule
	ModuleConfig      = wazero.ModuleConfig
	CompilationCache  = wazero.CompilationCache
	HostModuleBuilder = wazero.HostModuleBuilder
	Module            = api.Module
	Function          = api.Function
	Memory            = api.Memory
	MutableGlobal     = api.MutableGlobal
	GoModuleFunc      = api.GoModuleFunc
	ValueType         = api.ValueType
	// ExitError is the error of a call that ended the module (proc_exit;
	// on wazero, an interruption too).
	ExitError    = sys.ExitError
	LinearMemory = api.LinearMemory
)

const (
	ValueTypeI32 = api.ValueTypeI32
	ValueTypeI64 = api.ValueTypeI64

	// WASIModuleName is the import module of WASI preview 1.
	WASIModuleName = wasi_snapshot_preview1.ModuleName
)

var (
	NewModuleConfig            = wazero.NewModuleConfig
	NewFSConfig                = wazero.NewFSConfig
	NewCompilationCacheWithDir = wazero.NewCompilationCacheWithDir
	NewRuntimeWithConfig       = wazero.NewRuntimeWithConfig
	ValueTypeName              = api.ValueTypeName
)

// NewConfig is the configuration of a runtime with the optimizing compiler,
// or the interpreter. wazy's compiled code always checks for interruption,
// inline (a register test per loop iteration), so interruptible is moot.
func NewConfig(interpreter, interruptible bool) RuntimeConfig {
	if interpreter {
		return wazero.NewRuntimeConfigInterpreter()
	}
	return wazero.NewRuntimeConfig()
}

// WithMemoryAllocator returns ctx with an allocator of linear memories for
// the instances made under it.
func WithMemoryAllocator(ctx context.Context, alloc func(capacity, maxBytes uint64) LinearMemory) context.Context {
	return api.WithMemoryAllocator(ctx, api.MemoryAllocatorFunc(alloc))
}

// WithCompilationWorkers returns ctx compiling with n workers.
func WithCompilationWorkers(ctx context.Context, n int) context.Context {
	return api.WithCompilationWorkers(ctx, n)
}

// InstantiateWASI instantiates WASI preview 1 in r.
func InstantiateWASI(ctx context.Context, r Runtime) error {
	_, err := wasi_snapshot_preview1.Instantiate(ctx, r)
	return err
}
