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
)

const (
	// MaxDatagram is the receive buffer per datagram; longer ones arrive
	// truncated and are dropped (reason "truncated").
	MaxDatagram = 9000
	// readBatch is the most datagrams one read returns (recvmmsg).
	readBatch = 64
	// drainLimit bounds the datagrams read from the kernel queue after
	// shutdown starts, so that a flood cannot delay the exit forever.
	drainLimit = 1 << 20
)

// socket is one bound UDP socket of a listener.
type socket struct {
	listen Listen
	conn   *net.UDPConn
	inode  uint64
	rcvBuf int // effective SO_RCVBUF as the kernel reports it
	local  netip.AddrPort
	inline *decoder // Workers == 0: this socket's reader decodes
}

// openSockets binds l.Count sockets to one address, with SO_REUSEPORT when
// there are several, and sets the receive buffer (controlSocket).
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
			if err := c.Control(func(fd uintptr) { serr = controlSocket(fd, l.Count > 1, l.RcvBuf) }); err != nil {
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
	if err := rc.Control(func(fd uintptr) { s.inode, s.rcvBuf, serr = socketInfo(fd) }); err != nil {
		return err
	}
	return serr
}

// readLoop reads batches until the deadline set at shutdown, then drains
// what the kernel still holds without waiting, and returns. Datagrams go to
// the router, or are decoded right here by the socket's decoder d; with d a
// read deadline also wakes the loop to hand over a partial output batch
// within the flush interval.
func (s *socket) readLoop(ctx context.Context, r *router, d *decoder) error {
	l := &readLoop{s: s, ctx: ctx, r: r, d: d}
	if d != nil {
		l.c = d.c
		defer d.send()
	} else {
		l.c = r.c
	}
	var err error
	if l.rd, err = newDatagramReader(s.conn, readBatch, MaxDatagram, l.batch); err != nil {
		return fmt.Errorf("collect: read %s: %w", s.listen.URI, err)
	}
	for {
		l.armFlush()
		err := l.rd.Read(l.draining)
		if err == nil {
			if l.draining && l.drained >= drainLimit {
				return nil
			}
			continue
		}
		switch {
		case l.draining:
			// errQueueEmpty, or the socket failed while draining.
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			l.draining = true
			l.drained = 0
			if err := s.conn.SetReadDeadline(time.Time{}); err != nil {
				return nil
			}
		case errors.Is(err, os.ErrDeadlineExceeded) && d != nil:
			d.send() // the flush deadline
			l.flushArmed = false
			_ = s.conn.SetReadDeadline(time.Time{})
			if ctx.Err() != nil {
				_ = s.conn.SetReadDeadline(time.Now())
			}
		case errors.Is(err, net.ErrClosed):
			return nil
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("collect: read %s: %w", s.listen.URI, err)
		}
	}
}

// readLoop is one socket reader's state; batch runs inside the poller's
// read callback, once per recvmmsg that returned datagrams.
type readLoop struct {
	s   *socket
	ctx context.Context
	c   *Collector
	r   *router  // Workers > 0
	d   *decoder // Workers == 0
	rd  *datagramReader

	draining   bool
	drained    int
	flushArmed bool
}

func (l *readLoop) batch(n int) {
	nowNs := uint64(time.Now().UnixNano())
	family := l.s.listen.Family
	if l.d == nil {
		for i := 0; i < n; i++ {
			if data, from, trunc, ok := l.rd.datagram(i); ok {
				l.r.route(data, from, nowNs, family, trunc)
			}
		}
		l.r.flush()
	} else {
		d, c := l.d, l.c
		var t tally
		for i := 0; i < n; i++ {
			if data, from, trunc, ok := l.rd.datagram(i); ok && c.accept(from, trunc) {
				d.decode(data, from, nowNs, family, &t)
			}
		}
		c.stats.add(t)
		if d.due(c.cfg.FlushInterval) {
			d.send()
		}
		// The reader may wait next: the deadline must cover this batch.
		l.armFlush()
	}
	l.drained += n
}

// armFlush sets the read deadline to the flush time of a pending output
// batch of the socket's decoder, and clears it once there is none.
func (l *readLoop) armFlush() {
	if l.d == nil || l.draining {
		return
	}
	switch {
	case l.d.pending() && !l.flushArmed:
		_ = l.s.conn.SetReadDeadline(l.d.lastSend.Add(l.c.cfg.FlushInterval))
		l.flushArmed = true
	case !l.d.pending() && l.flushArmed:
		_ = l.s.conn.SetReadDeadline(time.Time{})
		l.flushArmed = false
	default:
		return
	}
	if l.ctx.Err() != nil {
		// Shutdown may have set its deadline before ours.
		_ = l.s.conn.SetReadDeadline(time.Now())
	}
}
