package collect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// testReader binds network/addr and reads with batch headers of size
// bytes; every datagram is copied into got, and each batch's length into
// batches.
type testReader struct {
	conn    *net.UDPConn
	rd      *mmsgReader
	got     []received
	batches []int
	want    int // once got holds this many, end the read as shutdown does
}

func newTestReader(t *testing.T, network, addr string, batch, size int) *testReader {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("%s %s: %v", network, addr, err)
	}
	tr := &testReader{conn: pc.(*net.UDPConn)}
	t.Cleanup(func() { tr.conn.Close() })
	if err := tr.conn.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	tr.rd, err = newMmsgReader(tr.conn, batch, size, func(n int) {
		tr.batches = append(tr.batches, n)
		for i := 0; i < n; i++ {
			data, from, trunc, ok := tr.rd.datagram(i)
			if !ok {
				t.Errorf("datagram %d: no source", i)
				continue
			}
			tr.got = append(tr.got, received{bytes.Clone(data), from, trunc})
		}
		if tr.want > 0 && len(tr.got) >= tr.want {
			tr.conn.SetReadDeadline(time.Now())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// port is the bound port, to send to on a loopback address.
func (tr *testReader) port() uint16 { return tr.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// readN reads until n datagrams arrived in all. Read waits for more after
// a short batch, so the handler then ends it with a deadline.
func (tr *testReader) readN(t *testing.T, n int) {
	t.Helper()
	if err := tr.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	tr.want = n
	defer func() {
		tr.want = 0
		tr.conn.SetReadDeadline(time.Time{})
	}()
	for len(tr.got) < n {
		err := tr.rd.Read(false)
		if len(tr.got) >= n {
			break
		}
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(tr.got), n, err)
		}
	}
}

// TestMmsgReaderSources: the source of a datagram is the sender's address,
// unmapped, over IPv4, IPv6 and a dual-stack socket receiving IPv4.
func TestMmsgReaderSources(t *testing.T) {
	for _, tc := range sourceCases {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestReader(t, tc.listenNet, tc.listenAddr, readBatch, MaxDatagram)
			c := dial(t, tc.dialNet, netip.AddrPortFrom(netip.MustParseAddr(tc.dialHost), tr.port()))
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			tr.readN(t, 1)
			want := c.LocalAddr().(*net.UDPAddr).AddrPort()
			g := tr.got[0]
			if g.from != want {
				t.Fatalf("source %s, want %s", g.from, want)
			}
			if string(g.data) != "hello" || g.truncated {
				t.Fatalf("got %q truncated=%v", g.data, g.truncated)
			}
		})
	}
}

// TestMmsgReaderSourceDecoding checks the sockaddr decoding against what
// x/net's ReadBatch gave (a net.UDPAddr, with the zone of the scope ID)
// followed by AddrPort and Unmap, as the collector did before.
func TestMmsgReaderSourceDecoding(t *testing.T) {
	lo, err := net.InterfaceByIndex(1)
	if err != nil {
		t.Skip("no interface 1:", err)
	}
	r := &mmsgReader{zones: map[uint32]zoneName{}}
	v6 := func(addr string, port uint16, scope uint32) (unix.RawSockaddrInet6, uint32) {
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr(addr).As16(), Scope_id: scope}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], port)
		return sa, unix.SizeofSockaddrInet6
	}
	v4 := func(addr string, port uint16) (unix.RawSockaddrInet6, uint32) {
		var sa unix.RawSockaddrInet6
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family, sa4.Addr = unix.AF_INET, netip.MustParseAddr(addr).As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], port)
		return sa, unix.SizeofSockaddrInet4
	}
	for _, tc := range []struct {
		name string
		sa   func() (unix.RawSockaddrInet6, uint32)
		old  *net.UDPAddr // what x/net returned; nil: no address
	}{
		{"v4", func() (unix.RawSockaddrInet6, uint32) { return v4("192.0.2.1", 2055) },
			&net.UDPAddr{IP: net.IP{192, 0, 2, 1}, Port: 2055}},
		{"v4 high port", func() (unix.RawSockaddrInet6, uint32) { return v4("10.1.2.3", 65535) },
			&net.UDPAddr{IP: net.IP{10, 1, 2, 3}, Port: 65535}},
		{"v6", func() (unix.RawSockaddrInet6, uint32) { return v6("2001:db8::1", 4739, 0) },
			&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 4739}},
		{"v4-mapped", func() (unix.RawSockaddrInet6, uint32) { return v6("::ffff:198.51.100.7", 6343, 0) },
			&net.UDPAddr{IP: net.ParseIP("::ffff:198.51.100.7").To16(), Port: 6343}},
		{"link-local", func() (unix.RawSockaddrInet6, uint32) { return v6("fe80::1", 2055, 1) },
			&net.UDPAddr{IP: net.ParseIP("fe80::1"), Port: 2055, Zone: lo.Name}},
		{"unknown scope", func() (unix.RawSockaddrInet6, uint32) { return v6("fe80::2", 2055, 999999) },
			&net.UDPAddr{IP: net.ParseIP("fe80::2"), Port: 2055, Zone: "999999"}},
		{"short v6", func() (unix.RawSockaddrInet6, uint32) { sa, _ := v6("2001:db8::1", 1, 0); return sa, 8 }, nil},
		{"no address", func() (unix.RawSockaddrInet6, uint32) { return unix.RawSockaddrInet6{}, 0 }, nil},
	} {
		sa, n := tc.sa()
		got, ok := r.source(&sa, n)
		if tc.old == nil {
			if ok {
				t.Errorf("%s: got %s, want none", tc.name, got)
			}
			continue
		}
		want := tc.old.AddrPort()
		want = netip.AddrPortFrom(want.Addr().Unmap(), want.Port())
		if !ok || got != want {
			t.Errorf("%s: got %s %v, want %s", tc.name, got, ok, want)
		}
	}
}

// TestMmsgReaderTruncated: a datagram longer than the buffer is flagged
// and cut; the next one is whole.
func TestMmsgReaderTruncated(t *testing.T) {
	tr := newTestReader(t, "udp4", "127.0.0.1:0", 4, 512)
	c := dial(t, "udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tr.port()))
	long, short := numbered(1, 1000), numbered(2, 512)
	for _, p := range [][]byte{long, short} {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	tr.readN(t, 2)
	if g := tr.got[0]; !g.truncated || !bytes.Equal(g.data, long[:512]) {
		t.Fatalf("long datagram: truncated=%v, %d bytes", g.truncated, len(g.data))
	}
	if g := tr.got[1]; g.truncated || !bytes.Equal(g.data, short) {
		t.Fatalf("512-byte datagram: truncated=%v, %d bytes", g.truncated, len(g.data))
	}
}

// TestMmsgReaderBatches: many queued datagrams come back complete and in
// order, in full batches first.
func TestMmsgReaderBatches(t *testing.T) {
	for _, tc := range []struct{ network, listen, host string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp6", "[::1]:0", "::1"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			tr := newTestReader(t, tc.network, tc.listen, readBatch, MaxDatagram)
			c := dial(t, tc.network, netip.AddrPortFrom(netip.MustParseAddr(tc.host), tr.port()))
			const n = 1000
			for i := 0; i < n; i++ {
				if _, err := c.Write(numbered(i, 20+i%1400)); err != nil {
					t.Fatal(err)
				}
			}
			tr.readN(t, n)
			if len(tr.got) != n {
				t.Fatalf("got %d datagrams, want %d", len(tr.got), n)
			}
			from := c.LocalAddr().(*net.UDPAddr).AddrPort()
			for i, g := range tr.got {
				if !bytes.Equal(g.data, numbered(i, 20+i%1400)) || g.from != from || g.truncated {
					t.Fatalf("datagram %d: %d bytes from %s, truncated=%v", i, len(g.data), g.from, g.truncated)
				}
			}
			if tr.batches[0] != readBatch {
				t.Fatalf("first batch of %d datagrams, want %d (batches %v)", tr.batches[0], readBatch, tr.batches)
			}
		})
	}
}

// TestMmsgReaderTrickle: after a short batch the reader waits in the
// poller without reading again; a datagram sent while it processes, or
// while it waits, must still wake it.
func TestMmsgReaderTrickle(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn := pc.(*net.UDPConn)
	defer conn.Close()
	c := dial(t, "udp4", conn.LocalAddr().(*net.UDPAddr).AddrPort())
	const n = 300
	var got atomic.Int64
	var seen [n]bool // not the order: two goroutines send
	var rd *mmsgReader
	rd, err = newMmsgReader(conn, readBatch, MaxDatagram, func(k int) {
		for i := 0; i < k; i++ {
			data, _, _, _ := rd.datagram(i)
			if x := binary.BigEndian.Uint32(data); x >= n || seen[x] {
				t.Errorf("datagram %d unexpected", x)
			} else {
				seen[x] = true
			}
			got.Add(1)
		}
		switch g := int(got.Load()); {
		case g == n:
			conn.SetReadDeadline(time.Now())
		case g%3 == 0:
			// The next datagram arrives while this batch is processed,
			// before the reader waits.
			if _, err := c.Write(numbered(g, 64)); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	done := make(chan error, 1)
	go func() {
		for {
			err := rd.Read(false)
			if got.Load() == n {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	// The others are sent one by one, each once the reader took the one
	// before: it waits in the poller, or is about to.
	for i := 0; i < n; i++ {
		if i%3 == 0 && i > 0 {
			continue // sent by the handler
		}
		if _, err := c.Write(numbered(i, 64)); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2000 && got.Load() <= int64(i); j++ {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("after %d of %d datagrams: %v", got.Load(), n, err)
	}
}

// TestMmsgReaderDeadline: a read deadline ends a waiting Read, also after
// a short batch has been handled, and a later datagram is read normally.
func TestMmsgReaderDeadline(t *testing.T) {
	tr := newTestReader(t, "udp4", "127.0.0.1:0", readBatch, MaxDatagram)
	c := dial(t, "udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tr.port()))
	// Nothing queued.
	tr.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := tr.rd.Read(false); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle read: %v, want the deadline", err)
	}
	// One datagram: handled, then the reader waits for more until the
	// deadline.
	if _, err := c.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	tr.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if err := tr.rd.Read(false); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after a short batch: %v, want the deadline", err)
	}
	if len(tr.got) != 1 || string(tr.got[0].data) != "one" {
		t.Fatalf("got %d datagrams", len(tr.got))
	}
	// A deadline set from another goroutine wakes a waiting reader, as
	// shutdown does.
	tr.conn.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { done <- tr.rd.Read(false) }()
	time.Sleep(20 * time.Millisecond)
	tr.conn.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("woken read: %v, want the deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deadline did not wake the reader")
	}
	// Cleared again, the reader works on.
	tr.conn.SetReadDeadline(time.Time{})
	if _, err := c.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	tr.readN(t, 2)
	if string(tr.got[1].data) != "two" {
		t.Fatalf("got %q", tr.got[1].data)
	}
}

// TestMmsgReaderDontWait: a draining read returns after each batch, and
// errQueueEmpty once the queue is empty, without a deadline.
func TestMmsgReaderDontWait(t *testing.T) {
	tr := newTestReader(t, "udp4", "127.0.0.1:0", 8, 256)
	c := dial(t, "udp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tr.port()))
	const n = 20
	for i := 0; i < n; i++ {
		if _, err := c.Write(numbered(i, 32)); err != nil {
			t.Fatal(err)
		}
	}
	reads := 0
	for tries := 0; len(tr.got) < n; {
		err := tr.rd.Read(true)
		switch {
		case errors.Is(err, errQueueEmpty):
			// Loopback delivery may still be under way.
			if tries++; tries > 10000 {
				t.Fatalf("%d of %d datagrams", len(tr.got), n)
			}
			time.Sleep(100 * time.Microsecond)
		case err != nil:
			t.Fatal(err)
		default:
			reads++
		}
	}
	if reads != len(tr.batches) {
		t.Fatalf("%d reads returned %d batches, want one each", reads, len(tr.batches))
	}
	if err := tr.rd.Read(true); !errors.Is(err, errQueueEmpty) {
		t.Fatalf("read of an empty queue: %v, want errQueueEmpty", err)
	}
}

// TestMmsgReaderClose: Close ends a waiting Read with net.ErrClosed.
func TestMmsgReaderClose(t *testing.T) {
	tr := newTestReader(t, "udp6", "[::1]:0", readBatch, MaxDatagram)
	done := make(chan error, 1)
	go func() { done <- tr.rd.Read(false) }()
	time.Sleep(20 * time.Millisecond)
	tr.conn.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
}

// TestMmsgReaderNoAllocs: reading a full batch and decoding every source
// allocates nothing.
func TestMmsgReaderNoAllocs(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skip(err)
	}
	conn := pc.(*net.UDPConn)
	defer conn.Close()
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	var sum int
	var rd *mmsgReader
	rd, err = newMmsgReader(conn, readBatch, MaxDatagram, func(n int) {
		for i := 0; i < n; i++ {
			data, from, _, _ := rd.datagram(i)
			sum += len(data) + int(from.Port())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, "udp6", conn.LocalAddr().(*net.UDPAddr).AddrPort())
	const runs = 8
	// Twice what the runs and AllocsPerRun's warm-up need: a run returns
	// after a full batch, and one that met a short batch (loopback still
	// delivering) takes more.
	for i := 0; i < 2*(runs+1)*readBatch; i++ {
		if _, err := c.Write(numbered(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	allocs := testing.AllocsPerRun(runs, func() {
		if err := rd.Read(false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per read of %d datagrams", allocs, readBatch)
	}
	if sum == 0 {
		t.Fatal("nothing read")
	}
}

// TestZoneCacheBound: scope IDs seen are remembered, up to a bound.
func TestZoneCacheBound(t *testing.T) {
	r := &mmsgReader{zones: map[uint32]zoneName{}}
	for i := uint32(1000000); i < 1000000+600; i++ {
		if got := r.zone(i); got != strconv.FormatUint(uint64(i), 10) {
			t.Fatalf("zone %d named %q", i, got)
		}
	}
	if len(r.zones) > 256 {
		t.Fatalf("%d cached zones", len(r.zones))
	}
}
