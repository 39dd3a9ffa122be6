package flowgen

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
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
