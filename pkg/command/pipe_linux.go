package command

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// PipeSize is what GrowPipe asks for, up from Linux's 64 KiB default: a
// stage that writes 256 KiB at a time then costs its reader one read and
// one wake-up instead of four.
const PipeSize = 1 << 20

// GrowPipe enlarges the pipe r reads from, if it is one, to PipeSize, as
// far as the system's limits allow (/proc/sys/fs/pipe-max-size and
// pipe-user-pages-soft); otherwise it leaves it as it is. It reports the
// pipe's size afterwards, 0 for anything but a pipe. Elsewhere than on
// Linux, where pipes cannot be sized, it does nothing and returns 0.
func GrowPipe(r io.Reader) int {
	f, ok := r.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return 0
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	size := 0
	_ = rc.Control(func(fd uintptr) {
		if n, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, PipeSize); err == nil {
			size = n
		} else if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil {
			size = n
		}
	})
	return size
}
