package collect

import (
	"errors"
	"syscall"
)

// controlSocket sets the receive buffer before the socket binds. Windows
// has no SO_REUSEPORT: a listener has one socket (?count=1).
func controlSocket(fd uintptr, reusePort bool, rcvBuf int) error {
	if reusePort {
		return errors.New("?count > 1 needs SO_REUSEPORT, which Windows does not have")
	}
	if rcvBuf > 0 {
		return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
	}
	return nil
}

// socketInfo returns the effective receive buffer; no inode (no
// /proc/net/udp to read kernel drops from).
func socketInfo(fd uintptr) (inode uint64, rcvBuf int, err error) {
	rcvBuf, err = syscall.GetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	return 0, rcvBuf, err
}
