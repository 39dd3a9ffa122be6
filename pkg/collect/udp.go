package collect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

const (
	// MaxDatagram is the receive buffer per datagram; longer ones arrive
	// truncated and are dropped (reason "truncated").
	MaxDatagram = 9000
	// readBatch is the most datagrams one recvmmsg returns.
	readBatch = 64
	// drainLimit bounds the datagrams read from the kernel queue after
	// shutdown starts, so that a flood cannot delay the exit forever.
	drainLimit = 1 << 20
)

// socket is one bound UDP socket of a listener.
type socket struct {
	listen  Listen
	conn    *net.UDPConn
	inode   uint64
	rcvBuf  int // effective SO_RCVBUF as the kernel reports it
	local   netip.AddrPort
	inline  *worker // Workers == 0: this socket's reader decodes
	batcher interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	}
}

// openSockets binds l.Count sockets to one address, with SO_REUSEPORT when
// there are several, and sets the receive buffer.
func openSockets(ctx context.Context, l Listen) ([]*socket, error) {
	var out []*socket
	closeAll := func() {
		for _, s := range out {
			s.conn.Close()
		}
	}
	addr := l.Addr()
	for i := 0; i < l.Count; i++ {
		lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if l.Count > 1 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
					if serr != nil {
						return
					}
				}
				if l.RcvBuf > 0 {
					// FORCE passes rmem_max as root; without the right
					// the plain option is capped by the kernel.
					if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, l.RcvBuf) != nil {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, l.RcvBuf)
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		network := "udp"
		if ip := net.ParseIP(l.Host); ip != nil && ip.To4() == nil {
			network = "udp6"
		}
		pc, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("collect: listen %s: %w", l.URI, err)
		}
		conn := pc.(*net.UDPConn)
		s := &socket{listen: l, conn: conn}
		s.local = conn.LocalAddr().(*net.UDPAddr).AddrPort()
		if s.local.Addr().Is4() || s.local.Addr().Is4In6() {
			s.batcher = ipv4.NewPacketConn(conn)
		} else {
			s.batcher = ipv6.NewPacketConn(conn)
		}
		if err := s.sockInfo(); err != nil {
			conn.Close()
			closeAll()
			return nil, fmt.Errorf("collect: listen %s: %w", l.URI, err)
		}
		out = append(out, s)
		if l.Port == 0 { // the other sockets share the port picked for the first
			l.Port = int(s.local.Port())
			addr = l.Addr()
		}
	}
	return out, nil
}

func (s *socket) sockInfo() error {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if serr = unix.Fstat(int(fd), &st); serr != nil {
			return
		}
		s.inode = st.Ino
		s.rcvBuf, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err != nil {
		return err
	}
	return serr
}

// readLoop reads batches until the deadline set at shutdown, then drains
// what the kernel still holds without waiting, and returns. Datagrams go to
// the router, or are decoded right here by the inline worker w; with w a
// read deadline also wakes the loop to hand over a partial output batch
// within the flush interval.
func (s *socket) readLoop(ctx context.Context, r *router, w *worker) error {
	ms := make([]ipv4.Message, readBatch)
	backing := make([]byte, readBatch*MaxDatagram)
	for i := range ms {
		ms[i].Buffers = [][]byte{backing[i*MaxDatagram : (i+1)*MaxDatagram : (i+1)*MaxDatagram]}
	}
	var c *Collector
	if w != nil {
		c = w.c
		defer w.send()
	} else {
		c = r.c
	}
	draining := false
	drained := 0
	flags := 0
	flushArmed := false
	for {
		if w != nil && !draining {
			changed := true
			switch {
			case w.batch != nil && !flushArmed:
				_ = s.conn.SetReadDeadline(w.lastSend.Add(c.cfg.FlushInterval))
				flushArmed = true
			case w.batch == nil && flushArmed:
				_ = s.conn.SetReadDeadline(time.Time{})
				flushArmed = false
			default:
				changed = false
			}
			if changed && ctx.Err() != nil {
				// Shutdown may have set its deadline before ours.
				_ = s.conn.SetReadDeadline(time.Now())
			}
		}
		n, err := s.batcher.ReadBatch(ms, flags)
		if n > 0 {
			now := uint64(time.Now().UnixNano())
			var t tally
			for i := 0; i < n; i++ {
				m := &ms[i]
				ua, _ := m.Addr.(*net.UDPAddr)
				if ua == nil {
					continue
				}
				from := ua.AddrPort()
				from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				data, trunc := m.Buffers[0][:m.N], m.Flags&unix.MSG_TRUNC != 0
				if w == nil {
					r.route(data, from, now, s.listen.Family, trunc)
				} else if c.accept(from, trunc) {
					w.decode(data, from, now, s.listen.Family, &t)
				}
			}
			if w == nil {
				r.flush()
			} else {
				c.stats.add(t)
				if w.batch != nil && time.Since(w.lastSend) >= c.cfg.FlushInterval {
					w.send()
				}
			}
			drained += n
		}
		if err == nil {
			if draining && drained >= drainLimit {
				return nil
			}
			continue
		}
		switch {
		case draining:
			// EAGAIN: the queue is empty.
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			draining = true
			flags = unix.MSG_DONTWAIT
			drained = 0
			if err := s.conn.SetReadDeadline(time.Time{}); err != nil {
				return nil
			}
		case errors.Is(err, os.ErrDeadlineExceeded) && w != nil:
			w.send() // the flush deadline
			flushArmed = false
			_ = s.conn.SetReadDeadline(time.Time{})
			if ctx.Err() != nil {
				_ = s.conn.SetReadDeadline(time.Now())
			}
		case errors.Is(err, net.ErrClosed):
			return nil
		case ctx.Err() != nil:
			return nil
		default:
			var se *os.SyscallError
			if errors.As(err, &se) && (errors.Is(se.Err, unix.EINTR) || errors.Is(se.Err, unix.ECONNREFUSED)) {
				continue
			}
			return fmt.Errorf("collect: read %s: %w", s.listen.URI, err)
		}
	}
}
