package flowgen

import (
	"encoding/binary"
	"net/netip"
	"time"
	"unsafe"
)

// maxPoolBytes bounds the memory Config.FlowPool takes: its packets and a
// Flow for each of their records.
const maxPoolBytes = 1 << 30

// maxFlowPool is the largest Config.FlowPool within maxPoolBytes.
func (c Config) maxFlowPool() int {
	return maxPoolBytes / (c.RecordsPerPacket*int(unsafe.Sizeof(Flow{})) + c.maxPacketSize())
}

// flowPool holds the first Config.FlowPool data packets and their flows,
// for later data packets to reuse in turn.
type flowPool struct {
	size  int // packets to hold
	next  int // packet to reuse next, once full
	flows []Flow
	n4    []int    // each packet's IPv4 flows, which come first
	secs  []int64  // each packet's export second, which its flow times follow
	lists []uint32 // backing array of the pooled AS paths and communities

	// Packets are reused as bytes: what follows each header (up to the
	// counter sample in sFlow), and where each record starts in it (each
	// sFlow sample, and its sampled frame).
	bodies  []byte
	bodyEnd []int
	recOff  []int
	marks   []int // record offsets in the packet being made
}

func newFlowPool(cfg Config) flowPool {
	p := flowPool{size: cfg.FlowPool}
	if p.size == 0 {
		return p
	}
	records := p.size * cfg.RecordsPerPacket
	p.flows = make([]Flow, 0, records)
	p.n4 = make([]int, 0, p.size)
	p.secs = make([]int64, 0, p.size)
	marks := cfg.RecordsPerPacket
	if cfg.Protocol == SFlow {
		p.lists = make([]uint32, 0, records*(maxASPath+maxCommunities))
		marks *= 2
	}
	p.bodies = make([]byte, 0, p.size*cfg.maxPacketSize())
	p.bodyEnd = make([]int, 0, p.size)
	p.recOff = make([]int, 0, p.size*marks)
	p.marks = make([]int, 0, marks)
	return p
}

func (p *flowPool) full() bool    { return p.size > 0 && len(p.n4) == p.size }
func (p *flowPool) filling() bool { return len(p.n4) < p.size }

// mark notes that a record starts at offset at of the packet being made.
func (p *flowPool) mark(at int) {
	if p.filling() {
		p.marks = append(p.marks, at)
	}
}

// keep copies a data packet's flows into the pool, and the body of the
// packet, which starts at offset base of the buffer marks refer to.
func (p *flowPool) keep(flows []Flow, now time.Time, body []byte, base int) {
	n4 := 0
	for _, f := range flows {
		if f.SrcAddr.Is4() {
			n4++
		}
		start := len(p.lists)
		p.lists = append(p.lists, f.ASPath...)
		f.ASPath = p.lists[start:len(p.lists):len(p.lists)]
		start = len(p.lists)
		p.lists = append(p.lists, f.Communities...)
		f.Communities = p.lists[start:len(p.lists):len(p.lists)]
		p.flows = append(p.flows, f)
	}
	p.n4 = append(p.n4, n4)
	p.secs = append(p.secs, now.Unix())
	p.bodies = append(p.bodies, body...)
	p.bodyEnd = append(p.bodyEnd, len(p.bodies))
	for _, at := range p.marks {
		p.recOff = append(p.recOff, at-base)
	}
	p.marks = p.marks[:0]
}

// take returns the index of the next pooled packet.
func (p *flowPool) take() int {
	i := p.next
	p.next = (i + 1) % p.size
	return i
}

// packet returns pooled packet i's flows, n each, and body.
func (p *flowPool) packet(i, n int) ([]Flow, []byte) {
	start := 0
	if i > 0 {
		start = p.bodyEnd[i-1]
	}
	return p.flows[i*n : (i+1)*n], p.bodies[start:p.bodyEnd[i]]
}

// recordLayout is where a v5, v9 or IPFIX data record holds its addresses
// and flow times, which reuse rewrites.
type recordLayout struct {
	src, dst, addrLen int
	start, end        int
	msTimes           bool // IPFIX unix milliseconds (8 bytes), else sysUptime (4 bytes)
}

// layoutOf finds the addresses and times in a v9 or IPFIX template, which
// come before any variable-length field.
func layoutOf(fs []field) recordLayout {
	var l recordLayout
	off := 0
	for _, f := range fs {
		if f.length == varLength {
			break
		}
		switch f.id {
		case ieSrcAddr4, ieSrcAddr6:
			l.src, l.addrLen = off, int(f.length)
		case ieDstAddr4, ieDstAddr6:
			l.dst = off
		case ieFirstSwitched:
			l.start = off
		case ieLastSwitched:
			l.end = off
		case ieFlowStartMilliseconds:
			l.start, l.msTimes = off, true
		case ieFlowEndMilliseconds:
			l.end = off
		}
		off += int(f.length)
	}
	return l
}

// appendReused appends a data packet made from the next pooled one: a new
// header, then the pooled records with fresh host bits in their addresses
// (freshHost) and times moved by as many seconds as the export time moved.
// Copying and patching bytes costs a fraction of encoding flows; the flows
// themselves are made only when truth is asked (Next, not Send).
func (g *Generator) appendReused(b []byte, now time.Time, truth bool) ([]byte, []Flow, int) {
	p, n := &g.pool, g.cfg.RecordsPerPacket
	i := p.take()
	start := len(b)
	switch g.cfg.Protocol {
	case NetFlowV5:
		b = g.appendV5Header(b, n, now)
		g.seq += uint32(n)
	case NetFlowV9:
		b = g.appendV9Header(b, n, now)
	default:
		b = g.appendIPFIXHeader(b, now)
		g.seq += uint32(n)
	}
	pooled, pooledBody := p.packet(i, n)
	body := len(b)
	b = append(b, pooledBody...)
	if g.cfg.Protocol == IPFIX {
		b = finishIPFIX(b, start)
	}

	shiftMs := (now.Unix() - p.secs[i]) * 1000
	var flows []Flow
	if truth {
		flows = g.flows[:n]
	}
	for k := range pooled {
		l := &g.layouts[0]
		if k >= p.n4[i] {
			l = &g.layouts[1]
		}
		rec := b[body+p.recOff[i*n+k]:]
		src, dst := rec[l.src:l.src+l.addrLen], rec[l.dst:l.dst+l.addrLen]
		g.freshHost(src)
		g.freshHost(dst)
		if l.msTimes {
			addUint64(rec[l.start:], uint64(shiftMs))
			addUint64(rec[l.end:], uint64(shiftMs))
		} else {
			addUint32(rec[l.start:], uint32(shiftMs))
			addUint32(rec[l.end:], uint32(shiftMs))
		}
		if truth {
			f := &flows[k]
			*f = pooled[k]
			f.SrcAddr, _ = netip.AddrFromSlice(src)
			f.DstAddr, _ = netip.AddrFromSlice(dst)
			shift := time.Duration(shiftMs) * time.Millisecond
			f.Start, f.End = f.Start.Add(shift), f.End.Add(shift)
		}
	}
	return b, flows, n
}

func addUint32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)+v) }
func addUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, binary.BigEndian.Uint64(b)+v) }

// appendSFlowReused appends a datagram made from the next pooled one: a
// new header, the pooled flow samples with new sequence numbers and sample
// pool, fresh host bits in the sampled addresses (with the identification,
// checksum and sequence numbers appendFrame derives from the sample
// sequence), and a new counter sample.
func (g *Generator) appendSFlowReused(b []byte, now time.Time, truth bool) ([]byte, []Flow, int) {
	p, n := &g.pool, g.cfg.RecordsPerPacket
	i := p.take()
	pooled, pooledBody := p.packet(i, n)
	b = g.appendSFlowHeader(b, n, now)
	body := len(b)
	b = append(b, pooledBody...)
	var flows []Flow
	if truth {
		flows = g.flows[:n]
		g.lists = g.lists[:0]
	}
	for k := range pooled {
		f := &pooled[k]
		sample, frame := body+p.recOff[2*(i*n+k)], body+p.recOff[2*(i*n+k)+1]
		g.samplePool += f.SamplingRate
		binary.BigEndian.PutUint32(b[sample+8:], g.sampleSeq)
		g.sampleSeq++
		pool := sample + 20 // format, length, sequence, source ID, sampling rate
		if k%2 == 1 {
			pool += 4 // expanded: source ID in two words
		}
		binary.BigEndian.PutUint32(b[pool:], g.samplePool)
		src, dst := g.patchFrame(b[frame:frame+g.sampledHeaderLen(f)], f)
		if truth {
			t := &flows[k]
			*t = *f
			t.SrcAddr, _ = netip.AddrFromSlice(src)
			t.DstAddr, _ = netip.AddrFromSlice(dst)
			t.Start = now.Truncate(time.Millisecond)
			t.End = t.Start
			start := len(g.lists)
			g.lists = append(g.lists, f.ASPath...)
			t.ASPath = g.lists[start:len(g.lists):len(g.lists)]
			start = len(g.lists)
			g.lists = append(g.lists, f.Communities...)
			t.Communities = g.lists[start:len(g.lists):len(g.lists)]
		}
	}
	return g.appendCounterSample(b), flows, n
}

// patchFrame redraws the host bits of the addresses in the sampled frame h
// of pooled flow f, and rewrites what appendFrame derives from the sample
// sequence. It returns the addresses, in h.
func (g *Generator) patchFrame(h []byte, f *Flow) (src, dst []byte) {
	seq := g.sampleSeq
	ip := l2Len(f)
	if f.SrcAddr.Is4() {
		src, dst = h[ip+12:ip+16], h[ip+16:ip+20]
		g.freshHost(src)
		g.freshHost(dst)
		binary.BigEndian.PutUint16(h[ip+4:], uint16(seq)) // identification
		binary.BigEndian.PutUint16(h[ip+10:], 0)
		binary.BigEndian.PutUint16(h[ip+10:], ipv4Checksum(h[ip:ip+20]))
		ip += 20
	} else {
		src, dst = h[ip+8:ip+24], h[ip+24:ip+40]
		g.freshHost(src)
		g.freshHost(dst)
		ip += 40
	}
	// The transport header may be cut short by the header size.
	var v [4]byte
	switch f.Proto {
	case 6:
		binary.BigEndian.PutUint32(v[:], seq*1000)
		copyTail(h, ip+4, v[:4])
	case 1, 58:
		binary.BigEndian.PutUint16(v[:], uint16(seq))
		copyTail(h, ip+6, v[:2])
	}
	return src, dst
}

// copyTail copies v to h at offset at, as much of it as h holds.
func copyTail(h []byte, at int, v []byte) {
	if at < len(h) {
		copy(h[at:], v)
	}
}

// freshHost draws the bits of the address a (4 or 16 bytes) after its first
// 8 (IPv4) or 32 (IPv6): randomAddr draws those bits uniformly whether the
// address is inside or outside, so the distribution of addresses stays the
// same.
func (g *Generator) freshHost(a []byte) {
	if len(a) == 4 {
		u := g.rng.uint32()
		a[1], a[2], a[3] = byte(u>>16), byte(u>>8), byte(u)
		return
	}
	binary.BigEndian.PutUint32(a[4:], g.rng.uint32())
	binary.BigEndian.PutUint64(a[8:], g.rng.uint64())
}
