package edge

import "syscall"

// reserve maps n bytes of address space, inaccessible and not counted
// against the commit limit until commit.
func reserve(n uint64) ([]byte, error) {
	return syscall.Mmap(-1, 0, int(n), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
}

// commit makes b, a page-aligned part of a reservation (wasm pages are
// 64 KiB, a multiple of every Linux page size), readable and writable.
func commit(b []byte) error {
	return syscall.Mprotect(b, syscall.PROT_READ|syscall.PROT_WRITE)
}

func unmap(b []byte) { syscall.Munmap(b) }
