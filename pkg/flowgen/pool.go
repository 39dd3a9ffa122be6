package flowgen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// maxPooledFlows bounds Config.FlowPool's memory: a pooled flow takes 240
// bytes, and up to 120 more for its record.
const maxPooledFlows = 1 << 20

// flowPool holds the first Config.FlowPool data packets and their flows,
// for later data packets to reuse in turn.
type flowPool struct {
	size  int // packets to hold
	next  int // packet to reuse next, once full
	flows []Flow
	n4    []int    // each packet's IPv4 flows, which come first
	secs  []int64  // each packet's export second, which its flow times follow
	lists []uint32 // backing array of the pooled AS paths and communities

	// NetFlow and IPFIX packets are reused as bytes: what follows each
	// header, and where each record starts in it.
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
	if cfg.Protocol == SFlow {
		p.lists = make([]uint32, 0, records*(maxASPath+maxCommunities))
		return p
	}
	p.bodies = make([]byte, 0, p.size*cfg.maxPacketSize())
	p.bodyEnd = make([]int, 0, p.size)
	p.recOff = make([]int, 0, records)
	p.marks = make([]int, 0, cfg.RecordsPerPacket)
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

// keep copies a data packet's flows into the pool and, for NetFlow and
// IPFIX, the body of the packet, which starts at offset body of pkt.
func (p *flowPool) keep(flows []Flow, now time.Time, pkt []byte, body int) {
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
	if pkt != nil {
		p.bodies = append(p.bodies, pkt[body:]...)
		p.bodyEnd = append(p.bodyEnd, len(p.bodies))
		for _, at := range p.marks {
			p.recOff = append(p.recOff, at-body)
		}
	}
	p.marks = p.marks[:0]
}

// take returns the index of the next pooled packet.
func (p *flowPool) take() int {
	i := p.next
	p.next = (i + 1) % p.size
	return i
}

// packet returns pooled packet i's flows, n each.
func (p *flowPool) packet(i, n int) []Flow { return p.flows[i*n : (i+1)*n] }

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
	body := len(b)
	bodyStart := 0
	if i > 0 {
		bodyStart = p.bodyEnd[i-1]
	}
	b = append(b, p.bodies[bodyStart:p.bodyEnd[i]]...)
	if g.cfg.Protocol == IPFIX {
		b = finishIPFIX(b, start)
	}

	shiftMs := (now.Unix() - p.secs[i]) * 1000
	pooled := p.packet(i, n)
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

// reuseFlow makes f, an sFlow sample, a copy of the pooled flow from with
// fresh host bits in its addresses; its AS path and communities are copied
// into the generator's list buffer, which Next's caller may read until the
// next call.
func (g *Generator) reuseFlow(f, from *Flow) {
	*f = *from
	f.SrcAddr, f.DstAddr = g.freshAddr(f.SrcAddr), g.freshAddr(f.DstAddr)
	start := len(g.lists)
	g.lists = append(g.lists, from.ASPath...)
	f.ASPath = g.lists[start:len(g.lists):len(g.lists)]
	start = len(g.lists)
	g.lists = append(g.lists, from.Communities...)
	f.Communities = g.lists[start:len(g.lists):len(g.lists)]
}

func (g *Generator) freshAddr(a netip.Addr) netip.Addr {
	if a.Is4() {
		b := a.As4()
		g.freshHost(b[:])
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	g.freshHost(b[:])
	return netip.AddrFrom16(b)
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
