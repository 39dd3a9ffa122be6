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
	sendBatch = 64 // datagrams per sendmmsg
	// sendSlice is the longest sleep between batches; shorter ones would be
	// rounded up by the timer anyway.
	sendSlice = time.Millisecond
	// sendBurst is how much rate the token bucket stores: enough to make up
	// for late wake-ups on a busy machine, not enough to turn a long stall
	// into a flood.
	sendBurst = 20 * time.Millisecond
)

// batchWriter is the WriteBatch of x/net's ipv4 and ipv6 packet conns.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Send sends packets from g on conn, which must be connected (net.DialUDP),
// paced by a token bucket refilled from the clock, in batches of up to 64
// datagrams and sleeps of up to 1ms, so that rates of 100k+ packets/s hold.
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

	var (
		msgs    = make([]ipv4.Message, sendBatch)
		bufs    = make([][]byte, sendBatch+1) // one more for the packet waiting for tokens
		costs   [sendBatch + 1]float64
		records [sendBatch + 1]int
		staged  bool // bufs[n] holds a packet made but not yet paid for
		made    int
		tokens  float64
	)
	for i := range msgs {
		msgs[i].Buffers = make([][]byte, 1)
	}
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
				pkt, flows := g.Next()
				bufs[n] = append(bufs[n][:0], pkt...) // Next reuses its buffer
				records[n], costs[n] = len(flows), 1
				if opt.PerRecord && len(flows) > 0 {
					costs[n] = float64(len(flows))
				}
				made++
				staged = true
			}
			if opt.Rate > 0 {
				if tokens < costs[n] {
					break
				}
				tokens -= costs[n]
			}
			staged = false
			n++
		}
		if n > 0 {
			for i := range n {
				msgs[i].Buffers[0] = bufs[i]
			}
			sent, err := writeBatch(ctx, w, msgs[:n])
			for i := range sent {
				st.Packets++
				st.Records += uint64(records[i])
				st.Bytes += uint64(len(bufs[i]))
			}
			if err != nil {
				st.Elapsed = time.Since(start)
				return st, fmt.Errorf("flowgen: send to %s: %w", raddr, err)
			}
			if staged { // keep the waiting packet first
				bufs[0], bufs[n] = bufs[n], bufs[0]
				costs[0], records[0] = costs[n], records[n]
			}
		}
		if opt.Rate > 0 && staged {
			wait := time.Duration((batchTokens - tokens) / opt.Rate * float64(time.Second))
			if opt.Duration > 0 {
				wait = min(wait, opt.Duration-time.Since(start))
			}
			time.Sleep(max(0, min(wait, sendSlice)))
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
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
