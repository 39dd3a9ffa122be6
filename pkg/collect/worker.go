package collect

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// chunkBytes is the payload a chunk holds before the router hands it over.
const chunkBytes = 64 << 10

// pktMeta locates one datagram inside a chunk.
type pktMeta struct {
	off, n     int32
	family     Family
	from       netip.AddrPort
	receivedNs uint64
}

// chunk carries datagrams from a router to one worker: one channel
// operation for many packets, and a buffer that is reused.
type chunk struct {
	data []byte
	pkts []pktMeta
}

// worker is a goroutine that decodes the chunks a router hands it with its
// own decoder. Every exporter hashed to it is decoded by it alone, so one
// exporter's packets stay in order.
type worker struct {
	dec  *decoder
	in   chan *chunk
	free chan *chunk // every chunk of this worker that is not queued in in
}

func newWorker(d *decoder, queue int) *worker {
	w := &worker{dec: d, in: make(chan *chunk, queue), free: make(chan *chunk, queue)}
	for range queue {
		w.free <- &chunk{}
	}
	return w
}

// run decodes until in is closed, then sends what is left. A pending
// batch is sent once it has waited half the flush interval, so a record
// waits at most the flush interval in all.
func (w *worker) run(flushInterval time.Duration, stats *stats) {
	tick := time.NewTicker(flushInterval / 2)
	defer tick.Stop()
	for {
		select {
		case ch, ok := <-w.in:
			if !ok {
				w.dec.send()
				return
			}
			w.process(ch, stats)
			ch.data = ch.data[:0]
			ch.pkts = ch.pkts[:0]
			w.free <- ch // never blocks: free holds every chunk of this worker
		case <-tick.C:
			if w.dec.due(flushInterval / 2) {
				w.dec.send()
			}
		}
	}
}

func (w *worker) process(ch *chunk, stats *stats) {
	var t tally
	for i := range ch.pkts {
		p := &ch.pkts[i]
		w.dec.decode(ch.data[p.off:p.off+p.n], p.from, p.receivedNs, p.family, &t)
	}
	stats.add(t)
}

// router distributes datagrams from one source (a socket or a pcap file)
// to the workers, gathering them into one chunk per worker.
type router struct {
	c     *Collector
	cur   []*chunk
	block bool // pcap input waits for a free chunk instead of dropping
	timer *time.Timer
}

func (c *Collector) newRouter(block bool) *router {
	return &router{c: c, cur: make([]*chunk, len(c.workers)), block: block}
}

// route queues one datagram for its exporter's worker. data is copied.
func (r *router) route(data []byte, from netip.AddrPort, receivedNs uint64, family Family, truncated bool) {
	c := r.c
	if !c.accept(from, truncated) {
		return
	}
	wi := 0
	if len(r.cur) > 1 {
		wi = int(hashAddr(from.Addr()) % uint64(len(r.cur)))
	}
	ch := r.cur[wi]
	if ch != nil && len(ch.data)+len(data) > chunkBytes && len(ch.pkts) > 0 {
		c.workers[wi].in <- ch
		ch = nil
		r.cur[wi] = nil
	}
	if ch == nil {
		w := c.workers[wi]
		select {
		case ch = <-w.free:
		default:
			if ch = r.waitFree(w); ch == nil {
				c.metrics.drop[DropQueueFull].Inc()
				c.logDrop(DropQueueFull, from)
				return
			}
		}
		r.cur[wi] = ch
	}
	off := len(ch.data)
	ch.data = append(ch.data, data...)
	ch.pkts = append(ch.pkts, pktMeta{off: int32(off), n: int32(len(data)), family: family, from: from, receivedNs: receivedNs})
}

// waitFree waits for a free chunk of w: forever for pcap input, else at
// most QueueWait, during which the socket's receive buffer absorbs the
// burst. Nil means the queue stayed full.
func (r *router) waitFree(w *worker) *chunk {
	if r.block {
		return <-w.free
	}
	if r.c.cfg.QueueWait <= 0 {
		return nil
	}
	r.flush() // let the other workers go on meanwhile
	if r.timer == nil {
		r.timer = time.NewTimer(r.c.cfg.QueueWait)
	} else {
		r.timer.Reset(r.c.cfg.QueueWait)
	}
	select {
	case ch := <-w.free:
		r.timer.Stop()
		return ch
	case <-r.timer.C:
		return nil
	}
}

// accept applies the checks made before decoding, counting the drops.
func (c *Collector) accept(from netip.AddrPort, truncated bool) bool {
	if truncated {
		c.metrics.drop[DropTruncated].Inc()
		c.logDrop(DropTruncated, from)
		return false
	}
	if len(c.cfg.Allow) > 0 && !c.allowed(from.Addr()) {
		c.metrics.drop[DropNotAllowed].Inc()
		c.logDrop(DropNotAllowed, from)
		return false
	}
	return true
}

// flush hands every partly filled chunk to its worker.
func (r *router) flush() {
	for i, ch := range r.cur {
		if ch != nil {
			r.c.workers[i].in <- ch
			r.cur[i] = nil
		}
	}
}

// hashAddr is FNV-1a over the address bytes.
func hashAddr(a netip.Addr) uint64 {
	b := a.As16()
	h := uint64(14695981039346656037)
	for _, x := range b {
		h ^= uint64(x)
		h *= 1099511628211
	}
	return h
}

// stats are totals for the end-of-run summary.
type stats struct {
	packets, records, errors atomic.Uint64
}

func (s *stats) add(t tally) {
	s.packets.Add(t.packets)
	s.records.Add(t.records)
	s.errors.Add(t.errors)
}
