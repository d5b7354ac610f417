//go:build !unix

package build

import (
	"os"
	"os/exec"
)

// ownGroups: there are no process groups to give go commands here.
var ownGroups = func() bool { return false }

func ownGroup(*exec.Cmd) bool { return false }

// interrupt stops p: there is no SIGINT to send here.
func interrupt(p *os.Process, _ bool) error { return p.Kill() }
