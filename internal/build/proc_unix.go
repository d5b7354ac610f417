//go:build unix

package build

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// ownGroup puts the go command in a process group of its own, with the
// compilers and linkers it starts, so that interrupt reaches them all;
// it reports whether it did. It does so only when roam has no controlling
// terminal: on one, Ctrl-C already reaches them all in roam's group, and a
// group of their own would be a background one, stopped (SIGTTIN) by the
// first read of the terminal, such as ssh's passphrase prompt when go
// fetches a module.
func ownGroup(cmd *exec.Cmd) bool {
	if !ownGroups() {
		return false
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return true
}

// ownGroups says whether go commands get a group of their own: when there
// is no terminal to deliver Ctrl-C to them (a supervisor, a test, an
// editor signals roam alone). Tests replace it.
var ownGroups = sync.OnceValue(func() bool {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return true
	}
	tty.Close()
	return false
})

// interrupt sends SIGINT to p, and to its process group when it leads one
// (ownGroup), as Ctrl-C in a terminal does. go build does not handle
// SIGINT: it dies at once, and a compile or link it ran, not signalled,
// would run on as an orphan.
func interrupt(p *os.Process, group bool) error {
	if !group {
		return p.Signal(os.Interrupt)
	}
	err := syscall.Kill(-p.Pid, syscall.SIGINT)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
