// Package edge is the edge host: it runs Roam apps built as wasip1 modules
// (roam build --target wasm) on wazero, behind the same transport as the
// native host (package host), so that the same request gets the same bytes
// back whichever way the app runs.
//
// # Compiler, not interpreter
//
// wazero's optimizing compiler turns a module into machine code once; its
// interpreter runs a Go guest 7 to 8 times slower (BenchmarkCall's
// edge-interpreter variants: 1.9 ms instead of 0.26 ms for the shop's
// orders.Get).
// The compiler's price is compile time (about 2 s for a 4 MB Go module),
// which the on-disk compilation cache (RuntimeOptions.CacheDir) pays once
// per module and wazero version: a restart loads compiled code in about
// 60 ms. The cache is bounded (RuntimeOptions.CacheMaxBytes), since each
// rebuilt version of a module adds about four times its size. Where wazero
// has no compiler (other than amd64 and arm64) the runtime falls back to the
// interpreter.
//
// # Instances and pools
//
// A Go wasip1 module is single-threaded: an instance can run one call at a
// time, and calling it concurrently corrupts its Go runtime. So each module
// has a pool of instances, created and set up ahead of calls
// (instantiation costs about 5 ms: the Go runtime's start-up plus the app's
// setup, too much for a request path). A call takes a free instance, waits
// in a bounded queue if there is none, and is refused with Unavailable (503)
// once the queue is full too, so overload sheds instead of piling up.
//
// Pool size: a warm Go instance costs about 3 MiB of resident memory on
// Linux (its linear memory as the Go runtime touches it; the compiled code
// is shared), and about 5 MiB where linear memory is Go heap. Calls wait on
// state and on other apps as well as on CPU, so the base size is four
// instances per CPU, at least 4, within a 64 MiB budget reckoned at 5 MiB
// an instance (DefaultPoolSize). A 2-core machine gets 8 instances, about
// 25 MiB.
//
// The base pool is what an idle host keeps. A call that holds its instance
// while it waits on other apps and on state commits (orders.Create: about
// 10 ms, most of it waiting) leaves the CPUs idle while calls queue, so the
// pool grows while they do: a queued call starts one more instantiation
// (at most two in flight per module) and takes whichever instance comes
// first, the new one or one released. Growth stops at
// ModuleOptions.MaxPoolSize (default four times the base, at most 64) and
// once the instances' linear memory adds up to
// ModuleOptions.PoolMemoryBytes (default 256 MiB). Instances beyond the
// base that stay idle for ModuleOptions.IdleTimeout (default 30 s) are
// closed, and their memory goes back to the OS: on Linux each instance's
// linear memory is a mapping of its own, unmapped at close; elsewhere it is
// Go heap, which the runtime hands back with debug.FreeOSMemory. The pool
// hands out the most recently released instance first, so that under a
// light load the extra ones are the ones left idle.
// A pool whose MaxPoolSize is its PoolSize is fixed. Queueing, 503 and
// deadlines are the same either way.
//
// # Discarding instances
//
// An instance that traps (an unrecovered panic, a fatal Go runtime error,
// proc_exit, out of memory) or that is interrupted at its deadline is
// closed and never reused: its Go runtime stopped at an arbitrary point,
// maybe holding a lock or half-way through a GC, and nothing can tell
// whether its state is sound. A replacement is created in the background
// if the pool is below its base size (an instance the pool grew by is not
// replaced unless calls queue), and the call fails with Internal (500) or
// DeadlineExceeded (504). A panic
// the SDK recovers (in a handler) is an ordinary error and keeps the
// instance. Linear memory never shrinks, so an instance whose memory grew
// past a threshold (after a large request) is replaced too.
//
// # Deadlines
//
// The guest receives its call's deadline and usually honours it itself.
// 20 ms later the host stops it, and a guest asleep in WASI's poll_oneoff is
// woken. This is not optional: compiled wasm cannot be preempted, so a
// guest looping for ever would otherwise hold its thread and stall every
// garbage collection of the host. How it is stopped depends on the runtime:
//   - On wazero's compiler the host meters each module as it loads it
//     (wasmopt.Meter): a countdown at every loop header, and at the entry of
//     functions a loop does not cover, exits to Go every 10,000 checks,
//     where the goroutine can be preempted, and traps there once the host
//     has set the module's stop flag. A start function, which would run
//     while the module is instantiated, before the host can reach that
//     flag, becomes an export the host calls first, under the set-up's
//     deadline. wazero's own interruption
//     (WithCloseOnContextDone) leaves to Go at every loop header instead,
//     which made a Go guest 2 to 4 times slower (BenchmarkCall's
//     uninterruptible variants have no check at all, for comparison).
//   - wazy (build tag roam_wazy) checks Go's preemption request and the
//     call's context inline, always.
//   - wazero's interpreter is Go code, preemptible, and checks the context
//     at loop headers (WithCloseOnContextDone).
//
// # Capabilities
//
// The guest reaches its capabilities through the roam_v1 imports (see
// package abi). One set of host functions serves every instance: the state
// of the call in progress (the app's capabilities, the request's context,
// the reply pending for take_result) travels in the context wazero hands to
// the host functions. Every request a guest sends is decoded defensively:
// malformed input is an InvalidArgument reply, never a host panic, and a
// pointer outside the guest's memory in take_result traps the guest.
//
// # Hot reload
//
// Module.Reload compiles and pre-warms a new version's base pool beside the
// running one and swaps it in atomically: calls in flight and queued finish
// on the old version, whose instances, grown ones included, close when the
// last one returns. No call is dropped.
package edge
