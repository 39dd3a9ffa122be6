//go:build unix

package command

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// TestInputSharedNonblocking tests the path taken where the pipe cannot be
// reopened (no /proc, the BSDs, a socket): the shared open file is switched
// to non-blocking mode and back, through a duplicate descriptor.
func TestInputSharedNonblocking(t *testing.T) {
	r, w := pipe(t)
	pf, release, ok := shareNonblocking(r)
	if !ok {
		t.Fatal("a pipe must be pollable")
	}
	if blocking(t, r) {
		t.Fatal("the shared file was not switched")
	}
	in := &Input{r: pf, release: release}
	in.interrupt = func() { _ = pf.SetReadDeadline(time.Now()) }
	checkInterrupt(t, in, w)
	in.Close()
	if !blocking(t, r) {
		t.Fatal("blocking mode not given back")
	}
	// The original descriptor is still open and usable.
	w.Write([]byte("x"))
	if n, err := r.Read(make([]byte, 1)); n != 1 || err != nil {
		t.Fatalf("stdin after release: %d, %v", n, err)
	}
}

// blocking reports whether f's open file is in blocking mode.
func blocking(t *testing.T, f *os.File) bool {
	t.Helper()
	fd, ok := rawFd(f)
	if !ok {
		t.Fatal("no descriptor")
	}
	flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		t.Fatal(e)
	}
	return flags&syscall.O_NONBLOCK == 0
}
