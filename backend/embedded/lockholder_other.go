//go:build !linux

package embedded

// lockHolder cannot name the holder of a file lock here: there is no
// /proc/locks. The lock error then says only that another process holds it.
func lockHolder(path string) (pid int, name string, ok bool) { return 0, "", false }
