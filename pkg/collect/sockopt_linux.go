package collect

import "golang.org/x/sys/unix"

// controlSocket sets a listening socket's options before it binds:
// SO_REUSEPORT for a listener of several sockets (the kernel spreads the
// exporters over them by source address and port), and the receive buffer.
func controlSocket(fd uintptr, reusePort bool, rcvBuf int) error {
	if reusePort {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if rcvBuf > 0 {
		// FORCE passes rmem_max as root; without the right the plain
		// option is capped by the kernel.
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
			return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
		}
	}
	return nil
}

// socketInfo returns the socket's inode, which finds its line in
// /proc/net/udp (kernel drops, receive queue), and its effective receive
// buffer.
func socketInfo(fd uintptr) (inode uint64, rcvBuf int, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		return 0, 0, err
	}
	rcvBuf, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	return st.Ino, rcvBuf, err
}
