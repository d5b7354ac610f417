//go:build unix

package embedded

import (
	"errors"
	"syscall"
)

// pidAlive reports whether a process with pid exists. Signal 0 checks
// without signalling; EPERM means it exists but belongs to another user.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
