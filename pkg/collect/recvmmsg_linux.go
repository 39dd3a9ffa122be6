package collect

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// datagramReader is the socket reader: recvmmsg on Linux.
type datagramReader = mmsgReader

var newDatagramReader = newMmsgReader

// mmsgReader reads datagrams with recvmmsg(2) through the runtime poller.
// Headers, iovecs, address storage and payload buffers are allocated once,
// so a read allocates nothing, whatever the number of datagrams.
//
// It hands each batch to onBatch from inside the poller's read callback.
// After a short batch the kernel queue was empty, so it waits for the next
// readiness event without the extra recvmmsg that would only return EAGAIN:
// one system call per wake-up instead of two when datagrams trickle in.
type mmsgReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	buf   []byte
	size  int // bytes per datagram buffer

	onBatch  func(n int) // datagrams 0..n-1 are valid until it returns
	dontWait bool        // this read drains: an empty queue ends it
	err      error       // what ended the callback, if not a batch
	readFn   func(fd uintptr) bool

	zones map[uint32]zoneName // IPv6 scope IDs seen, by interface index
}

type zoneName struct {
	name string
	at   time.Time
}

// zoneTTL is how long an interface name is trusted, as x/net's cache does.
const zoneTTL = time.Minute

func newMmsgReader(conn *net.UDPConn, batch, size int, onBatch func(n int)) (*mmsgReader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &mmsgReader{
		rc:      rc,
		hdrs:    make([]unix.Mmsghdr, batch),
		iovs:    make([]unix.Iovec, batch),
		names:   make([]unix.RawSockaddrInet6, batch),
		buf:     make([]byte, batch*size),
		size:    size,
		onBatch: onBatch,
		zones:   map[uint32]zoneName{},
	}
	for i := range r.hdrs {
		r.iovs[i].Base = &r.buf[i*size]
		r.iovs[i].SetLen(size)
		h := &r.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.readFn = r.read
	return r, nil
}

// Read reads until a batch fills every header (more may be queued: the
// caller gets control back before the next call), an error, or, with
// dontWait, the first batch or an empty queue (errQueueEmpty). Otherwise it
// waits in the poller, so read deadlines and Close end it as they end any
// read on the connection.
func (r *mmsgReader) Read(dontWait bool) error {
	r.dontWait, r.err = dontWait, nil
	if err := r.rc.Read(r.readFn); err != nil {
		return err
	}
	return r.err
}

// read is the poller callback: true returns from Read, false waits for the
// socket to become readable and calls it again.
func (r *mmsgReader) read(fd uintptr) bool {
	flags := 0
	if r.dontWait {
		flags = unix.MSG_DONTWAIT
	}
	for {
		for i := range r.hdrs {
			// The kernel writes back the address length it used.
			r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		}
		// Raw: the socket is non-blocking, so the call cannot block, and
		// Syscall6's entersyscall would wake the sleeping sysmon (a futex
		// wake, then 20µs polls) on each wake-up of an idle collector, and
		// under CPU contention let sysmon hand our P to another thread.
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), uintptr(flags), 0, 0)
		switch e {
		case 0:
		case unix.EINTR, unix.ECONNREFUSED:
			// A signal, or an ICMP error reported once: the queue is intact.
			continue
		case unix.EAGAIN:
			if r.dontWait {
				r.err = errQueueEmpty
				return true
			}
			return false
		default:
			r.err = os.NewSyscallError("recvmmsg", e)
			return true
		}
		r.onBatch(int(n))
		return r.dontWait || int(n) == len(r.hdrs)
	}
}

// datagram returns the i-th datagram of the last batch: its payload (valid
// until the next read), its source with IPv4-mapped addresses unmapped, and
// whether it was longer than the buffer. ok is false for a source that is
// neither IPv4 nor IPv6.
func (r *mmsgReader) datagram(i int) (data []byte, from netip.AddrPort, truncated, ok bool) {
	h := &r.hdrs[i]
	n := min(int(h.Len), r.size)
	data = r.buf[i*r.size : i*r.size+n : (i+1)*r.size]
	from, ok = r.source(&r.names[i], h.Hdr.Namelen)
	return data, from, h.Hdr.Flags&unix.MSG_TRUNC != 0, ok
}

// source decodes a sockaddr as net.UDPAddr.AddrPort would, then unmaps.
func (r *mmsgReader) source(sa *unix.RawSockaddrInet6, namelen uint32) (netip.AddrPort, bool) {
	port := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order
	p := uint16(port[0])<<8 | uint16(port[1])
	switch {
	case sa.Family == unix.AF_INET && namelen >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), p), true
	case sa.Family == unix.AF_INET6 && namelen >= unix.SizeofSockaddrInet6:
		a := netip.AddrFrom16(sa.Addr)
		if a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), p), true
		}
		if sa.Scope_id != 0 {
			a = a.WithZone(r.zone(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, p), true
	}
	return netip.AddrPort{}, false
}

// zone names an interface index as the net package does: its name, or the
// number when no interface has it.
func (r *mmsgReader) zone(index uint32) string {
	now := time.Now()
	if z, ok := r.zones[index]; ok && now.Sub(z.at) < zoneTTL {
		return z.name
	}
	name := strconv.FormatUint(uint64(index), 10)
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		name = ifi.Name
	}
	if len(r.zones) >= 256 { // interface indexes grow as containers come and go
		clear(r.zones)
	}
	r.zones[index] = zoneName{name, now}
	return name
}
