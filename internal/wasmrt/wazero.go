//go:build !roam_wazy

package wasmrt

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

const (
	// Name is the runtime's name, for logs and the compilation cache's
	// directory.
	Name = "wazero"
	// ModulePath is its Go module, whose version names the cache directory.
	ModulePath = "github.com/tetratelabs/wazero"
	// AlwaysInterruptible is whether every compiled call checks for
	// interruption whatever NewConfig is told.
	AlwaysInterruptible = false
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
	LinearMemory = experimental.LinearMemory
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
// or the interpreter. interruptible makes a call's context interrupt its
// compiled code (a deadline ends an infinite loop); wazero v1.12 pays for it
// with an exit to Go at every loop iteration.
func NewConfig(interpreter, interruptible bool) RuntimeConfig {
	cfg := wazero.NewRuntimeConfig()
	if interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	return cfg.WithCloseOnContextDone(interruptible)
}

// WithMemoryAllocator returns ctx with an allocator of linear memories for
// the instances made under it.
func WithMemoryAllocator(ctx context.Context, alloc func(capacity, maxBytes uint64) LinearMemory) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(alloc))
}

// WithCompilationWorkers returns ctx compiling with n workers.
func WithCompilationWorkers(ctx context.Context, n int) context.Context {
	return experimental.WithCompilationWorkers(ctx, n)
}

// InstantiateWASI instantiates WASI preview 1 in r.
func InstantiateWASI(ctx context.Context, r Runtime) error {
	_, err := wasi_snapshot_preview1.Instantiate(ctx, r)
	return err
}
