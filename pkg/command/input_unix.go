//go:build unix

package command

import (
	"os"
	"syscall"
	"time"
)

// pollable returns a handle on stdin f that Go's poller serves, so that a
// read deadline interrupts a blocked read, and what gives back the change.
// A pipe or a terminal is reopened as a new open file where the system
// allows it (reopenNonblocking); a pipe or a socket is otherwise switched
// to non-blocking mode through a duplicate descriptor, and switched back by
// release, as the mode belongs to the description shared with the parent.
// A terminal is never switched: the shell shares it.
func pollable(f *os.File, mode os.FileMode) (*os.File, func(), bool) {
	if mode&(os.ModeNamedPipe|os.ModeCharDevice) != 0 {
		if pf, ok := reopenNonblocking(f); ok {
			return pf, func() { _ = pf.Close() }, true
		}
	}
	if mode&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return nil, nil, false
	}
	return shareNonblocking(f)
}

// shareNonblocking switches f's open file to non-blocking mode through a
// duplicate descriptor registered with the poller; release switches it
// back and closes the duplicate (never f's own descriptor).
func shareNonblocking(f *os.File) (*os.File, func(), bool) {
	fd, ok := rawFd(f)
	if !ok {
		return nil, nil, false
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return nil, nil, false
	}
	if err := syscall.SetNonblock(dup, true); err != nil {
		_ = syscall.Close(dup)
		return nil, nil, false
	}
	pf := os.NewFile(uintptr(dup), f.Name()) // non-blocking: NewFile registers it with the poller
	release := func() {
		if rc, err := pf.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = syscall.SetNonblock(int(fd), false) })
		}
		_ = pf.Close()
	}
	if pf.SetReadDeadline(time.Time{}) != nil {
		release()
		return nil, nil, false
	}
	return pf, release, true
}

// rawFd is f's descriptor, read without File.Fd's side effect of switching
// a pollable file to blocking mode.
func rawFd(f *os.File) (int, bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if rc.Control(func(u uintptr) { fd = int(u) }) != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}
