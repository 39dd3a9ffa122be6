package flowgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// SendOptions pace and bound Send.
type SendOptions struct {
	// Rate is the pace in packets per second or, with PerRecord, in flow
	// records per second (a packet costs its records, a template packet 1).
	// 0 sends as fast as the socket takes them.
	Rate      float64
	PerRecord bool
	// Count stops after that many packets, templates included; Duration
	// after that long. 0 means no bound; with neither, Send runs until ctx
	// is done.
	Count    int
	Duration time.Duration
}

// SendStats is what Send sent.
type SendStats struct {
	Packets, Records, Bytes uint64
	Elapsed                 time.Duration
}

const (
	sendBatch = 64 // datagrams per wake-up, and per sendmmsg
	// sendSlice is the longest sleep between batches. Send sleeps until a
	// whole batch is due, since a wake-up costs more CPU than the datagrams
	// it sends, but no longer than this, to keep low rates smooth.
	sendSlice = 5 * time.Millisecond
	// sendBurst is how much rate the token bucket stores: enough to make up
	// for late wake-ups on a busy machine, not enough to turn a long stall
	// into a flood.
	sendBurst = 20 * time.Millisecond
	// A UDP GSO message carries at most 64 datagrams (UDP_MAX_SEGMENTS in
	// older kernels) and 64 KiB, like one unsegmented datagram.
	gsoMaxSegments = 64
	gsoMaxBytes    = maxDatagram
)

// batchWriter is the WriteBatch of x/net's ipv4 and ipv6 packet conns.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Send sends packets from g on conn, which must be connected (net.DialUDP),
// paced by a token bucket refilled from the clock, in batches of up to 64
// datagrams and sleeps of up to 5ms, so that rates of 100k+ packets/s hold.
// It sends exactly what Next would return, in order. On Linux a run of
// datagrams of one size (the last may be shorter) goes as one UDP GSO
// message, which the kernel splits into the same datagrams for a fraction
// of the CPU; where the kernel or the route refuses GSO, Send falls back to
// one message per datagram.
// It stops at opt.Count, opt.Duration or ctx's end, whichever comes first,
// and returns a nil error then. "Connection refused" errors, which only say
// that nothing listens yet, are ignored.
func Send(ctx context.Context, conn *net.UDPConn, g *Generator, opt SendOptions) (SendStats, error) {
	var st SendStats
	raddr, ok := conn.RemoteAddr().(*net.UDPAddr)
	if !ok || raddr == nil {
		return st, errors.New("flowgen: send needs a connected UDP socket")
	}
	if !(opt.Rate >= 0) || math.IsInf(opt.Rate, 0) || opt.Count < 0 || opt.Duration < 0 {
		return st, fmt.Errorf("flowgen: bad send options: rate %v, count %d, duration %v", opt.Rate, opt.Count, opt.Duration)
	}
	var w batchWriter = ipv4.NewPacketConn(conn)
	if raddr.IP.To4() == nil {
		w = ipv6.NewPacketConn(conn)
	}

	maxCost := 1.0
	if opt.PerRecord {
		maxCost = float64(max(1, g.cfg.RecordsPerPacket))
	}
	burst := max(opt.Rate*sendBurst.Seconds(), maxCost)
	batchTokens := min(burst, sendBatch*maxCost) // worth waking up for

	b := newBatch(g.cfg.maxPacketSize(), gsoSupported(conn))
	var (
		sl     sleeper
		staged bool // b.pkts[n] holds a packet made but not yet paid for
		made   int
		tokens float64
	)
	start := time.Now()
	last := start
	for ctx.Err() == nil {
		now := time.Now()
		if opt.Duration > 0 && now.Sub(start) >= opt.Duration {
			break
		}
		if opt.Count > 0 && made >= opt.Count && !staged {
			break
		}
		if opt.Rate > 0 {
			tokens = min(burst, tokens+opt.Rate*now.Sub(last).Seconds())
			last = now
		}
		n := 0
		for n < sendBatch {
			if !staged {
				if opt.Count > 0 && made >= opt.Count {
					break
				}
				var records int
				b.pkts[n], _, records = g.appendNext(b.pkts[n][:0], false)
				b.records[n], b.costs[n] = records, 1
				if opt.PerRecord && records > 0 {
					b.costs[n] = float64(records)
				}
				made++
				staged = true
			}
			if opt.Rate > 0 {
				if tokens < b.costs[n] {
					break
				}
				tokens -= b.costs[n]
			}
			staged = false
			n++
		}
		if n > 0 {
			sent, err := b.write(ctx, w, n)
			for i := range sent {
				st.Packets++
				st.Records += uint64(b.records[i])
				st.Bytes += uint64(len(b.pkts[i]))
			}
			if err != nil {
				st.Elapsed = time.Since(start)
				return st, fmt.Errorf("flowgen: send to %s: %w", raddr, err)
			}
			if staged { // keep the waiting packet first
				b.pkts[0], b.pkts[n] = b.pkts[n], b.pkts[0]
				b.costs[0], b.records[0] = b.costs[n], b.records[n]
			}
		}
		if opt.Rate > 0 && staged {
			wait := time.Duration((batchTokens - tokens) / opt.Rate * float64(time.Second))
			if opt.Duration > 0 {
				wait = min(wait, opt.Duration-time.Since(start))
			}
			sl.sleep(max(0, min(wait, sendSlice)))
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// batch holds the datagrams of one wake-up and the messages that carry
// them.
type batch struct {
	pkts    [][]byte // sendBatch+1: one more for the packet waiting for tokens
	records []int
	costs   []float64
	msgs    []ipv4.Message
	segs    []int    // datagrams carried by each message
	oob     [][]byte // each message's UDP_SEGMENT control message
	gso     bool
}

func newBatch(pktSize int, gso bool) *batch {
	b := &batch{
		pkts:    make([][]byte, sendBatch+1),
		records: make([]int, sendBatch+1),
		costs:   make([]float64, sendBatch+1),
		msgs:    make([]ipv4.Message, sendBatch),
		segs:    make([]int, sendBatch),
		oob:     make([][]byte, sendBatch),
		gso:     gso,
	}
	for i := range b.pkts {
		b.pkts[i] = make([]byte, 0, pktSize)
	}
	for i := range b.oob {
		b.oob[i] = make([]byte, 0, gsoControlLen)
	}
	return b
}

// write sends pkts[:n] and returns how many were sent. When a GSO message
// is refused, it turns GSO off for good and sends the rest one datagram
// per message.
func (b *batch) write(ctx context.Context, w batchWriter, n int) (int, error) {
	sent := 0
	for sent < n {
		nm := b.pack(sent, n)
		m, err := writeBatch(ctx, w, b.msgs[:nm])
		for i := range m {
			sent += b.segs[i]
		}
		switch {
		case err == nil && m == nm:
		case err == nil: // ctx is done while the socket buffer is full
			return sent, nil
		case b.segs[m] > 1 && gsoRefused(err):
			b.gso = false
		default:
			return sent, err
		}
	}
	return sent, nil
}

// pack fills msgs with pkts[from:to] and returns the message count: one
// datagram per message, or with GSO, runs of datagrams of the first's size
// (a shorter one ends a run, as the kernel splits at that size).
func (b *batch) pack(from, to int) int {
	nm := 0
	for i := from; i < to; {
		j, size, total := i+1, len(b.pkts[i]), len(b.pkts[i])
		for b.gso && j < to && j-i < gsoMaxSegments && len(b.pkts[j]) <= size && total+len(b.pkts[j]) <= gsoMaxBytes {
			total += len(b.pkts[j])
			j++
			if len(b.pkts[j-1]) < size {
				break
			}
		}
		m := &b.msgs[nm]
		m.Buffers, m.OOB = b.pkts[i:j], nil
		if j-i > 1 {
			m.OOB = appendGSOControl(b.oob[nm][:0], size)
		}
		b.segs[nm] = j - i
		nm++
		i = j
	}
	return nm
}

// writeBatch writes all of msgs, retrying after "connection refused" (an
// earlier datagram found no listener) and a full socket buffer.
func writeBatch(ctx context.Context, w batchWriter, msgs []ipv4.Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		n, err := w.WriteBatch(msgs[sent:], 0)
		sent += max(n, 0)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ECONNREFUSED):
		case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EAGAIN):
			if ctx.Err() != nil {
				return sent, nil
			}
			time.Sleep(50 * time.Microsecond)
		default:
			return sent, err
		}
	}
	return sent, nil
}
