//go:build unix && !linux

package collect

import "golang.org/x/sys/unix"

// controlSocket sets a listening socket's options before it binds:
// SO_REUSEPORT for a listener of several sockets (how evenly the exporters
// are spread over them is the system's business: Linux hashes them, some
// BSDs deliver to one socket), and the receive buffer.
func controlSocket(fd uintptr, reusePort bool, rcvBuf int) error {
	if reusePort {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return err
		}
	}
	if rcvBuf > 0 {
		return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	return nil
}

// socketInfo returns the effective receive buffer. The inode is 0: there
// is no /proc/net/udp to find the socket's kernel drops in.
func socketInfo(fd uintptr) (inode uint64, rcvBuf int, err error) {
	rcvBuf, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	return 0, rcvBuf, err
}
