package collect

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// chunkBytes is the payload a chunk holds before the router hands it over.
const chunkBytes = 64 << 10

// batchBytes is the encoded output a worker gathers before handing it to
// the writer.
const batchBytes = 64 << 10

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

// Sniff tells the decoder family and protocol of a datagram from its
// version field.
func Sniff(b []byte) (Family, decode.Protocol) {
	if len(b) >= 2 {
		switch binary.BigEndian.Uint16(b) {
		case 5:
			return FamilyNetFlow, decode.NetFlowV5
		case 9:
			return FamilyNetFlow, decode.NetFlowV9
		case 10:
			return FamilyNetFlow, decode.IPFIX
		}
	}
	if len(b) >= 4 && binary.BigEndian.Uint32(b) == 5 {
		return FamilySFlow, decode.SFlowV5
	}
	return FamilyAuto, decode.ProtocolUnknown
}

// worker owns its decoders (they are not safe for concurrent use) and
// every exporter hashed to it, so one exporter's packets stay in order.
type worker struct {
	c        *Collector
	id       int
	in       chan *chunk
	free     chan *chunk
	decoders Decoders
	metrics  *workerMetrics
	emit     decode.Emit // bound once: no closure per packet

	batch    *outBatch
	lastSend time.Time
	recvNs   uint64
	nRecords int
}

// outBatch is encoded output on its way to the writer.
type outBatch struct{ data []byte }

func (w *worker) run() {
	defer w.c.workersWG.Done()
	tick := time.NewTicker(w.c.cfg.FlushInterval / 2)
	defer tick.Stop()
	for {
		select {
		case ch, ok := <-w.in:
			if !ok {
				w.send()
				return
			}
			w.process(ch)
			ch.data = ch.data[:0]
			ch.pkts = ch.pkts[:0]
			w.free <- ch // never blocks: free holds every chunk of this worker
		case <-tick.C:
			if w.batch != nil && len(w.batch.data) > 0 && time.Since(w.lastSend) >= w.c.cfg.FlushInterval/2 {
				w.send()
			}
		}
	}
}

func (w *worker) process(ch *chunk) {
	var t tally
	for i := range ch.pkts {
		p := &ch.pkts[i]
		w.decode(ch.data[p.off:p.off+p.n], p.from, p.receivedNs, p.family, &t)
	}
	w.c.stats.add(t)
}

// tally counts a run of packets for the summary totals.
type tally struct{ packets, records, errors uint64 }

// decode decodes one datagram into the current batch.
func (w *worker) decode(data []byte, from netip.AddrPort, receivedNs uint64, want Family, t *tally) {
	family, proto := Sniff(data)
	var dec decode.Decoder
	switch {
	case family == FamilyAuto:
		w.c.metrics.drop[DropUnknown].Inc()
		w.c.logDrop(DropUnknown, from)
		return
	case want != FamilyAuto && want != family:
		// sFlow sent to a NetFlow port, or the reverse.
		w.c.metrics.decodeError(proto, "version")
		t.errors++
		return
	case family == FamilyNetFlow:
		dec = w.decoders.NetFlow
	default:
		dec = w.decoders.SFlow
	}
	if dec == nil {
		w.c.metrics.decodeError(proto, "version")
		t.errors++
		return
	}
	exp := w.metrics.exporter(from.Addr(), proto)
	exp.packets.Inc()
	exp.bytes.Add(float64(len(data)))
	w.recvNs = receivedNs
	w.nRecords = 0
	err := dec.Decode(decode.Packet{Data: data, Exporter: from, ReceivedNs: receivedNs}, w.emit)
	if w.nRecords > 0 {
		exp.records.Add(float64(w.nRecords))
	}
	t.packets++
	t.records += uint64(w.nRecords)
	if err != nil {
		for _, r := range decode.Reasons(err) {
			w.c.metrics.decodeError(proto, r)
			t.errors++
		}
		w.c.logDecodeError(err)
	}
}

// onRecord encodes one flow into the current batch.
func (w *worker) onRecord(m *flowpb.FlowMessage) {
	if m.TimeReceivedNs == 0 {
		m.TimeReceivedNs = w.recvNs
	}
	if w.batch == nil {
		w.batch = w.c.getBatch()
	}
	w.batch.data = w.c.encode(w.batch.data, m)
	w.nRecords++
	if len(w.batch.data) >= batchBytes {
		w.send()
	}
}

func (w *worker) send() {
	if w.batch == nil || len(w.batch.data) == 0 {
		return
	}
	w.c.out <- w.batch
	w.batch = nil
	w.lastSend = time.Now()
}

// AppendFrame appends m as one length-delimited protobuf frame (the bin
// stream), in flowpb's single forward pass. Batches keep 4 KiB of slack
// past batchBytes, so it allocates only for an unusually large record.
func AppendFrame(dst []byte, m *flowpb.FlowMessage) []byte {
	return m.AppendDelimited(dst)
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
