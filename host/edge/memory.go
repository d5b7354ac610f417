package edge

import (
	"sync"
	"sync/atomic"
)

// linearMemory backs one instance's linear memory and refuses to grow it
// past limit, so that the guest's memory.grow fails (the Go runtime then
// exits with "out of memory", which the host treats as a trap). It is how a
// per-module cap coexists with one runtime, whose own limit is
// runtime-wide.
//
// Where the platform allows (see memory_linux.go), the memory is a mapping
// of its own, outside the Go heap: address space for the whole limit is
// reserved once, and pages are made accessible as the guest grows. Growing
// then never copies, fresh pages come zeroed from the kernel rather than
// being cleared, and freeing the instance gives its memory back to the OS
// at once instead of to the Go heap. Elsewhere, or when the reservation
// fails, it is a Go slice grown like append.
//
// A mapping must not be unmapped while a call might still touch it: wazero
// may free a module's memory from another goroutine (Runtime.Close) while a
// call into it runs. The instance brackets its calls and its set-up with
// enter and exit, and Free during a call is deferred to the call's exit.
type linearMemory struct {
	limit uint64

	mu    sync.Mutex
	users int  // calls (and the set-up) in flight
	freed bool // Free was called during a call
	heap  bool // not mapped: buf is a Go slice
	// res is the reservation, and buf its accessible start (the memory as
	// the guest sees it), or the Go slice.
	res, buf []byte
	// acct, when set, counts the memory as it grows and is released (the
	// pool's, for its budget); counted is what this memory added to it.
	acct    *atomic.Int64
	counted uint64
}

func newLinearMemory(limit uint64) *linearMemory {
	return &linearMemory{limit: limit, users: 1} // the set-up's enter
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.res == nil && !m.heap {
		r, err := reserve(m.limit)
		if err != nil {
			m.heap = true
		} else {
			m.res = r
		}
	}
	if m.heap {
		b := m.grow(size)
		m.count(size)
		return b
	}
	if n := uint64(len(m.buf)); size > n {
		if err := commit(m.res[n:size]); err != nil {
			return nil
		}
	}
	m.buf = m.res[:size:size]
	m.count(size)
	return m.buf
}

// count records that the memory is now size bytes; the caller holds mu.
func (m *linearMemory) count(size uint64) {
	if m.acct != nil && size != m.counted {
		m.acct.Add(int64(size) - int64(m.counted))
		m.counted = size
	}
}

// grow is Reallocate on the Go heap. The capacity grows geometrically, as
// append's would: fresh pages are untouched (the Go allocator maps them
// zeroed), so the spare capacity costs address space, not memory.
func (m *linearMemory) grow(size uint64) []byte {
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	c := max(size, uint64(cap(m.buf))+uint64(cap(m.buf))/2)
	c = min(c, m.limit)
	nb := make([]byte, size, c)
	copy(nb, m.buf)
	m.buf = nb
	return nb
}

// Free releases the memory, or marks it for release when the call in
// flight exits.
func (m *linearMemory) Free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.users > 0 {
		m.freed = true
		return
	}
	m.release()
}

// onHeap reports whether the memory was a Go slice rather than a mapping.
func (m *linearMemory) onHeap() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.heap
}

// enter and exit bracket a call into the instance.
func (m *linearMemory) enter() {
	m.mu.Lock()
	m.users++
	m.mu.Unlock()
}

func (m *linearMemory) exit() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users--
	if m.users == 0 && m.freed {
		m.release()
	}
}

// discard releases the memory of an instance whose instantiation failed
// when the set-up exits: the runtime does not free it on every failure.
func (m *linearMemory) discard() {
	m.mu.Lock()
	m.freed = true
	m.mu.Unlock()
}

func (m *linearMemory) release() {
	if m.res != nil {
		unmap(m.res)
	}
	m.count(0)
	m.res, m.buf, m.freed = nil, nil, false
}
