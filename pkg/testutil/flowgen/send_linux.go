package flowgen

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

const udpSegment = 103 // UDP_SEGMENT, linux/udp.h

// gsoControlLen is the size of a UDP_SEGMENT control message.
var gsoControlLen = syscall.CmsgSpace(2)

// gsoSupported reports whether the kernel knows UDP GSO (Linux 4.18+): it
// answers getsockopt(UDP_SEGMENT). Kernels before it would ignore the
// control message and send each run as one oversized datagram.
func gsoSupported(conn *net.UDPConn) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_UDP, udpSegment)
	}); err != nil {
		return false
	}
	return serr == nil
}

// appendGSOControl appends a control message that has the kernel split
// the message's payload into datagrams of size bytes.
func appendGSOControl(b []byte, size int) []byte {
	n := len(b)
	b = append(b, make([]byte, gsoControlLen)...)
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[n]))
	h.Level = syscall.IPPROTO_UDP // SOL_UDP
	h.Type = udpSegment
	h.SetLen(syscall.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[n+syscall.CmsgLen(0):], uint16(size))
	return b
}

// gsoRefused reports whether err is how the kernel refuses a GSO message
// it would have sent as separate datagrams: EINVAL when a datagram does not
// fit in the route's MTU, EIO without checksum offload.
func gsoRefused(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EOPNOTSUPP)
}

// sleeper blocks the thread in nanosleep: time.Sleep parks the goroutine
// and has the scheduler poll and wake threads around each of the hundreds
// of sleeps a second Send makes, which costs more CPU than the sleep
// itself. A goroutine that never parks looks to the scheduler like one
// that runs for ever, and every 10ms sysmon would take its P away in the
// middle of a sleep and spin; yielding every few milliseconds prevents that
// for less.
type sleeper struct{ yielded time.Time }

func (s *sleeper) sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
	if now := time.Now(); now.Sub(s.yielded) >= 5*time.Millisecond {
		runtime.Gosched()
		s.yielded = now
	}
}
