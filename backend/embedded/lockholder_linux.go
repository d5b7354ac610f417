//go:build linux

package embedded

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockHolder returns the process that holds the lock on the file at path
// and its name (/proc/PID/comm, "" when unreadable), from /proc/locks,
// where a lock is listed with its holder's pid and its file's device
// (major:minor, in hex) and inode. ok is false when no holder is listed
// (an OFD lock has no pid: -1), when it is in another pid namespace (0),
// or when /proc cannot be read.
func lockHolder(path string) (pid int, name string, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, "", false
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	dev := uint64(st.Dev)
	// The kernel's encoding of dev_t (golang.org/x/sys/unix.Major, Minor).
	major := (dev&0x00000000000fff00)>>8 | (dev&0xfffff00000000000)>>32
	minor := dev&0x00000000000000ff | (dev&0x00000ffffff00000)>>12
	pid, ok = lockHolderIn(f, major, minor, uint64(st.Ino))
	if !ok {
		return 0, "", false
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil {
		name = strings.TrimSpace(string(b))
	}
	return pid, name, true
}

// lockHolderIn finds the holder of a lock on the inode in /proc/locks
// text, lines such as
//
//	1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 1240 fd:01:5678 0 EOF
//
// where the second is a waiter, not a holder. bbolt locks with flock, so a
// FLOCK holder is the answer; a POSIX one only when there is none (NFS
// emulates flock with POSIX locks). Leases and OFD locks are not flock's.
func lockHolderIn(r io.Reader, major, minor, ino uint64) (int, bool) {
	posix := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] == "->" {
			continue
		}
		kind := f[1]
		if kind != "FLOCK" && kind != "POSIX" {
			continue
		}
		// The device field is the one with two colons; the pid is
		// before it.
		i := 2
		for i < len(f) && strings.Count(f[i], ":") != 2 {
			i++
		}
		if i == len(f) {
			continue
		}
		parts := strings.Split(f[i], ":")
		maj, err1 := strconv.ParseUint(parts[0], 16, 32)
		mnr, err2 := strconv.ParseUint(parts[1], 16, 32)
		in, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || maj != major || mnr != minor || in != ino {
			continue
		}
		pid, err := strconv.Atoi(f[i-1])
		if err != nil || pid <= 0 {
			continue
		}
		if kind == "FLOCK" {
			return pid, true
		}
		if posix == 0 {
			posix = pid
		}
	}
	return posix, posix != 0
}
