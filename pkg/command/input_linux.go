package command

import (
	"os"
	"strconv"
	"syscall"
	"time"
)

// reopenNonblocking opens /proc/self/fd/N anew in non-blocking mode: a new
// open file on the same pipe or terminal, so the mode of the one shared
// with the shell is untouched. It fails for sockets and without /proc.
func reopenNonblocking(f *os.File) (*os.File, bool) {
	fd, ok := rawFd(f)
	if !ok {
		return nil, false
	}
	g, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	if g.SetReadDeadline(time.Time{}) != nil { // not served by the poller
		_ = g.Close()
		return nil, false
	}
	return g, true
}
