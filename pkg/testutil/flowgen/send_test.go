package flowgen

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// listen returns a loopback UDP socket and a counter of the datagrams it
// receives.
func listen(t *testing.T) (*net.UDPConn, *atomic.Int64) {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = ln.SetReadBuffer(16 << 20)
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, err := ln.Read(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln, &n
}

func dial(t *testing.T, addr net.Addr) *net.UDPConn {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitFor polls until n reaches want or a second passes.
func waitFor(n *atomic.Int64, want int64) int64 {
	for deadline := time.Now().Add(time.Second); n.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return n.Load()
}

func TestSendCount(t *testing.T) {
	ln, received := listen(t)
	g, _ := New(Config{Protocol: NetFlowV9, IPv6Ratio: 0.2})
	st, err := Send(context.Background(), dial(t, ln.LocalAddr()), g, SendOptions{Count: 300})
	if err != nil {
		t.Fatal(err)
	}
	// 300 packets: 15 template packets (one every 20 data packets) and 285
	// of 28 records.
	if st.Packets != 300 || st.Records != 285*28 || st.Bytes == 0 {
		t.Fatalf("sent %+v", st)
	}
	if got := waitFor(received, 300); got < 290 {
		t.Fatalf("received %d of 300 datagrams", got)
	}
}

// TestSendRate checks the pace at 100k packets/s and 280k records/s, or at
// half of what the machine can send when it is too busy for that.
func TestSendRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		opt  SendOptions
	}{
		{"packets/s", Config{Protocol: NetFlowV5, RecordsPerPacket: 5}, SendOptions{Rate: 100_000}},
		{"records/s", Config{Protocol: IPFIX, TemplateInterval: -1}, SendOptions{Rate: 280_000, PerRecord: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, received := listen(t)
			conn := dial(t, ln.LocalAddr())
			g, _ := New(tc.cfg)
			perPacket := 1.0
			if tc.opt.PerRecord {
				perPacket = float64(g.Config().RecordsPerPacket)
			}
			// Up to three tries: a busy machine can starve one run, but no
			// run may go faster than asked.
			for try := 1; ; try++ {
				full, err := Send(context.Background(), conn, g, SendOptions{Duration: 100 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				capacity := float64(full.Packets) / full.Elapsed.Seconds() * perPacket
				opt := tc.opt
				opt.Rate = min(opt.Rate, capacity/2)
				opt.Duration = 250 * time.Millisecond
				if opt.Rate < 5000*perPacket {
					t.Skipf("machine too busy: %.0f/s at full speed", capacity)
				}
				received.Store(0)
				st, err := Send(context.Background(), conn, g, opt)
				if err != nil {
					t.Fatal(err)
				}
				want := opt.Rate * opt.Duration.Seconds() / perPacket
				t.Logf("try %d at %.0f/s (full speed %.0f/s): sent %+v, want %.0f packets", try, opt.Rate, capacity, st, want)
				if got := float64(st.Packets); got > 1.1*want { // 20ms of burst allowed
					t.Fatalf("sent %d packets in %v, want at most %.0f", st.Packets, st.Elapsed, 1.1*want)
				}
				if float64(st.Packets) < 0.7*want || st.Elapsed < opt.Duration || st.Elapsed > opt.Duration+500*time.Millisecond {
					if try < 3 {
						continue
					}
					t.Fatalf("sent %d packets in %v, want about %.0f in %v", st.Packets, st.Elapsed, want, opt.Duration)
				}
				if got := waitFor(received, int64(st.Packets)); got < int64(st.Packets)*9/10 {
					t.Fatalf("received %d of %d datagrams", got, st.Packets)
				}
				return
			}
		})
	}
}

func TestSendStops(t *testing.T) {
	ln, _ := listen(t)
	g, _ := New(Config{Protocol: SFlow})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	st, err := Send(ctx, dial(t, ln.LocalAddr()), g, SendOptions{Rate: 1000})
	if err != nil || time.Since(start) > time.Second || st.Packets == 0 {
		t.Fatalf("after cancel: %+v, %v", st, err)
	}

	// Nobody listens: refused datagrams are no error.
	free, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	addr := free.LocalAddr()
	free.Close()
	st, err = Send(context.Background(), dial(t, addr), g, SendOptions{Count: 100, Rate: 20_000})
	if err != nil || st.Packets != 100 {
		t.Fatalf("without a listener: %+v, %v", st, err)
	}

	unconnected, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer unconnected.Close()
	if _, err := Send(context.Background(), unconnected, g, SendOptions{Count: 1}); err == nil {
		t.Fatal("unconnected socket accepted")
	}
}

// collect returns a loopback UDP socket and a function that returns the
// datagrams it received so far, in order.
func collect(t *testing.T) (*net.UDPConn, func() [][]byte) {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = ln.SetReadBuffer(16 << 20)
	var (
		mu   sync.Mutex
		got  [][]byte
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, bytes.Clone(buf[:n]))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestSendMatchesNext checks that Send sends what Next returns, byte for
// byte and in order, whether datagrams go one per message or several per
// GSO message (equal sizes, then a shorter one ending a run). Loopback may
// drop a few datagrams on a busy machine, so the received ones must be an
// ordered subsequence of Next's, nearly all of them.
func TestSendMatchesNext(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			ln, received := collect(t)
			g, _ := New(tc.cfg)
			const count = 150
			st, err := Send(context.Background(), dial(t, ln.LocalAddr()), g, SendOptions{Count: count, Rate: 20_000})
			if err != nil || st.Packets != count {
				t.Fatalf("sent %+v, %v", st, err)
			}
			_, want := generate(t, tc.cfg, count)
			var records, size uint64
			for i := range want.pkts {
				records += uint64(len(want.flows[i]))
				size += uint64(len(want.pkts[i]))
			}
			if st.Records != records || st.Bytes != size {
				t.Fatalf("sent %d records and %d bytes, Next made %d and %d", st.Records, st.Bytes, records, size)
			}
			deadline := time.Now().Add(time.Second)
			got := received()
			for ; len(got) < count && time.Now().Before(deadline); got = received() {
				time.Sleep(5 * time.Millisecond)
			}
			next := 0
			for i, d := range got {
				for next < count && !bytes.Equal(d, want.pkts[next]) {
					next++
				}
				if next == count {
					t.Fatalf("datagram %d of %d (%d bytes) is not among Next's packets after the previous one", i, len(got), len(d))
				}
				next++
			}
			if len(got) < count*9/10 {
				t.Fatalf("received %d of %d datagrams", len(got), count)
			}
		})
	}
}

// TestBatchPack checks how datagrams are grouped into messages.
func TestBatchPack(t *testing.T) {
	big := maxDatagram / 3
	for _, tc := range []struct {
		name  string
		gso   bool
		sizes []int
		want  []int // datagrams per message
	}{
		{"no GSO", false, []int{100, 100, 100}, []int{1, 1, 1}},
		{"equal sizes", true, []int{100, 100, 100}, []int{3}},
		{"shorter ends a run", true, []int{100, 100, 80, 100, 50, 50}, []int{3, 2, 1}},
		{"longer starts a run", true, []int{50, 100, 100}, []int{1, 2}},
		{"64 KiB at most", true, []int{big, big, big, big}, []int{3, 1}},
		{"64 datagrams at most", true, slices.Repeat([]int{10}, sendBatch), []int{gsoMaxSegments}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBatch(0, tc.gso)
			for i, n := range tc.sizes {
				b.pkts[i] = make([]byte, n)
			}
			nm := b.pack(0, len(tc.sizes))
			if !slices.Equal(b.segs[:nm], tc.want) {
				t.Fatalf("messages of %v datagrams, want %v", b.segs[:nm], tc.want)
			}
			for i, m := range b.msgs[:nm] {
				if hasOOB := len(m.OOB) > 0; hasOOB != (b.segs[i] > 1) || len(m.Buffers) != b.segs[i] {
					t.Fatalf("message %d: %d buffers, control message %v", i, len(m.Buffers), hasOOB)
				}
			}
		})
	}
}

// refuseGSO writes each datagram of a message on its own, as the kernel
// would, but refuses GSO messages with EINVAL, as Linux does when the
// datagrams do not fit in the route's MTU.
type refuseGSO struct{ datagrams [][]byte }

func (w *refuseGSO) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	for i, m := range ms {
		if len(m.Buffers) > 1 {
			return i, os.NewSyscallError("sendmmsg", syscall.EINVAL)
		}
		w.datagrams = append(w.datagrams, bytes.Clone(m.Buffers[0]))
	}
	return len(ms), nil
}

func TestBatchGSOFallback(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("UDP GSO is Linux's")
	}
	b := newBatch(0, true)
	var want [][]byte
	for i := range 10 {
		b.pkts[i] = bytes.Repeat([]byte{byte(i)}, 100)
		want = append(want, b.pkts[i])
	}
	w := &refuseGSO{}
	sent, err := b.write(context.Background(), w, 10)
	if err != nil || sent != 10 || b.gso {
		t.Fatalf("sent %d, %v, GSO still on: %v", sent, err, b.gso)
	}
	if !slices.EqualFunc(w.datagrams, want, bytes.Equal) {
		t.Fatalf("wrote %d datagrams, not the 10 given in order", len(w.datagrams))
	}
	// Errors other than a refused GSO message stop the batch.
	b.gso = false
	if _, err := b.write(context.Background(), failing{}, 3); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("error %v, want EPERM", err)
	}
}

type failing struct{}

func (failing) WriteBatch([]ipv4.Message, int) (int, error) {
	return 0, os.NewSyscallError("sendmmsg", syscall.EPERM)
}

// TestSendAllocs checks that Send allocates nothing per packet once its
// buffers are made: 2000 more packets, no more allocations.
func TestSendAllocs(t *testing.T) {
	ln, _ := listen(t)
	conn := dial(t, ln.LocalAddr())
	mallocs := func(count int) uint64 {
		g, _ := New(Config{Protocol: IPFIX, IPv6Ratio: 0.1})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, err := Send(context.Background(), conn, g, SendOptions{Count: count, Rate: 200_000}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.Mallocs - before.Mallocs
	}
	few, many := mallocs(100), mallocs(2100)
	t.Logf("%d allocations for 100 packets, %d for 2100", few, many)
	if many > few+20 {
		t.Fatalf("Send made %d allocations for 100 packets and %d for 2100", few, many)
	}
}
