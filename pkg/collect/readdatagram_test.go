package collect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// received is one datagram as a reader returned it.
type received struct {
	data      []byte
	from      netip.AddrPort
	truncated bool
}

func dial(t *testing.T, network string, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Skipf("dial %s %s: %v", network, to, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sourceCases are the socket families a reader must report sources for:
// IPv4, IPv6, and IPv4 received on a dual-stack socket (unmapped).
var sourceCases = []struct {
	name, listenNet, listenAddr, dialNet, dialHost string
}{
	{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.1"},
	{"ipv6", "udp6", "[::1]:0", "udp6", "::1"},
	{"ipv4-mapped", "udp", "[::]:0", "udp4", "127.0.0.1"},
}

func numbered(i, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, uint32(i))
	for j := 4; j < size; j++ {
		b[j] = byte(i + j)
	}
	return b
}

// portable binds network/addr and reads it with portableReader, the
// reader of every system but Linux, tested here on this one.
func portable(t *testing.T, network, addr string, size int) (*net.UDPConn, *portableReader, *[]received) {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("%s %s: %v", network, addr, err)
	}
	conn := pc.(*net.UDPConn)
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	var got []received
	var rd *portableReader
	rd, err = newPortableReader(conn, readBatch, size, func(n int) {
		if n != 1 {
			t.Errorf("batch of %d", n)
		}
		data, from, trunc, ok := rd.datagram(0)
		if !ok {
			t.Error("no source")
		}
		got = append(got, received{bytes.Clone(data), from, trunc})
	})
	if err != nil {
		t.Fatal(err)
	}
	return conn, rd, &got
}

// TestPortableReader: sources unmapped as mmsgReader gives them, payloads
// whole and in order, a datagram longer than the buffer flagged and cut.
func TestPortableReader(t *testing.T) {
	for _, tc := range sourceCases {
		t.Run(tc.name, func(t *testing.T) {
			conn, rd, got := portable(t, tc.listenNet, tc.listenAddr, 512)
			c := dial(t, tc.dialNet, netip.AddrPortFrom(netip.MustParseAddr(tc.dialHost), conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()))
			const n = 200
			for i := range n {
				if _, err := c.Write(numbered(i, 20+i*7)); err != nil {
					t.Fatal(err)
				}
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for len(*got) < n {
				if err := rd.Read(false); err != nil {
					t.Fatalf("after %d datagrams: %v", len(*got), err)
				}
			}
			from := c.LocalAddr().(*net.UDPAddr).AddrPort()
			for i, g := range *got {
				want, trunc := numbered(i, 20+i*7), 20+i*7 > 512
				if trunc {
					want = want[:512]
				}
				if !bytes.Equal(g.data, want) || g.from != from || g.truncated != trunc {
					t.Fatalf("datagram %d: %d bytes from %s (want %s), truncated=%v", i, len(g.data), g.from, from, g.truncated)
				}
			}
		})
	}
}

// TestPortableReaderEnds: what ends a read, as readLoop relies on: a
// deadline (shutdown, flush), an empty queue when draining, Close.
func TestPortableReaderEnds(t *testing.T) {
	conn, rd, got := portable(t, "udp4", "127.0.0.1:0", MaxDatagram)
	conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := rd.Read(false); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	conn.SetReadDeadline(time.Time{})
	c := dial(t, "udp4", conn.LocalAddr().(*net.UDPAddr).AddrPort())
	for i := range 3 {
		c.Write(numbered(i, 100))
	}
	time.Sleep(20 * time.Millisecond) // loopback delivery
	for i := range 3 {
		if err := rd.Read(true); err != nil {
			t.Fatalf("drain %d: %v", i, err)
		}
	}
	start := time.Now()
	if err := rd.Read(true); err != errQueueEmpty {
		t.Fatalf("empty queue: %v", err)
	}
	if d := time.Since(start); d > 10*drainWait {
		t.Fatalf("an empty queue took %s to see", d)
	}
	if len(*got) != 3 {
		t.Fatalf("drained %d datagrams", len(*got))
	}
	done := make(chan error, 1)
	conn.SetReadDeadline(time.Time{})
	go func() { done <- rd.Read(false) }()
	time.Sleep(20 * time.Millisecond)
	conn.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("close: %v", err)
	}
}

// TestPortableReaderNoAllocs: a read allocates nothing.
func TestPortableReaderNoAllocs(t *testing.T) {
	conn, _, _ := portable(t, "udp4", "127.0.0.1:0", MaxDatagram)
	rd, _ := newPortableReader(conn, readBatch, MaxDatagram, func(int) {})
	c := dial(t, "udp4", conn.LocalAddr().(*net.UDPAddr).AddrPort())
	pkt := numbered(1, 1400)
	allocs := testing.AllocsPerRun(200, func() {
		c.Write(pkt)
		if err := rd.Read(false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per read", allocs)
	}
}
