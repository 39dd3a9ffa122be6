package flowgen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// maxPooledFlows bounds Config.FlowPool's memory: a pooled flow takes 240
// bytes.
const maxPooledFlows = 1 << 20

// flowPool holds the flows of the first Config.FlowPool data packets, for
// later data packets to reuse in turn.
type flowPool struct {
	flows []Flow   // packet after packet, RecordsPerPacket each
	n4    []int    // each packet's IPv4 flows, which come first
	secs  []int64  // each packet's export second, which its flow times follow
	lists []uint32 // backing array of the pooled AS paths and communities
	size  int      // packets to hold
	next  int      // packet to reuse next, once full
}

func newFlowPool(packets, records int, sflow bool) flowPool {
	p := flowPool{size: packets}
	if packets == 0 {
		return p
	}
	p.flows = make([]Flow, 0, packets*records)
	p.n4 = make([]int, 0, packets)
	p.secs = make([]int64, 0, packets)
	if sflow {
		p.lists = make([]uint32, 0, packets*records*(maxASPath+maxCommunities))
	}
	return p
}

func (p *flowPool) full() bool { return p.size > 0 && len(p.n4) == p.size }

// keep copies a packet's flows into the pool while it has room.
func (p *flowPool) keep(flows []Flow, n4 int, now time.Time) {
	if len(p.n4) == p.size {
		return
	}
	for _, f := range flows {
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
}

// take returns the next pooled packet's flows, IPv4 count and export
// second.
func (p *flowPool) take() (flows []Flow, n4 int, sec int64) {
	i := p.next
	p.next = (i + 1) % p.size
	n := len(p.flows) / p.size
	return p.flows[i*n : (i+1)*n], p.n4[i], p.secs[i]
}

// reuseFlows fills the reused flow slice with the next pooled packet's
// flows, their times moved by as many seconds as the export time moved.
func (g *Generator) reuseFlows(now time.Time) (flows []Flow, n4 int) {
	pooled, n4, sec := g.pool.take()
	shift := time.Duration(now.Unix()-sec) * time.Second
	flows = g.flows[:len(pooled)]
	for i := range flows {
		g.reuseFlow(&flows[i], &pooled[i], shift)
	}
	return flows, n4
}

// reuseFlow makes f a copy of the pooled flow from with fresh addresses
// and its times shifted; its AS path and communities are copied into the
// generator's list buffer, which Next's caller may read until the next call.
func (g *Generator) reuseFlow(f, from *Flow, shift time.Duration) {
	*f = *from
	f.SrcAddr, f.DstAddr = g.freshHost(f.SrcAddr), g.freshHost(f.DstAddr)
	f.Start, f.End = f.Start.Add(shift), f.End.Add(shift)
	if len(from.ASPath)+len(from.Communities) > 0 {
		start := len(g.lists)
		g.lists = append(g.lists, from.ASPath...)
		f.ASPath = g.lists[start:len(g.lists):len(g.lists)]
		start = len(g.lists)
		g.lists = append(g.lists, from.Communities...)
		f.Communities = g.lists[start:len(g.lists):len(g.lists)]
	}
}

// freshHost returns a with random bits after its first 8 (IPv4) or 32
// (IPv6): randomAddr draws those bits uniformly whether the address is
// inside or outside, so the distribution of addresses stays the same.
func (g *Generator) freshHost(a netip.Addr) netip.Addr {
	if a.Is4() {
		b, u := a.As4(), g.rng.uint32()
		return netip.AddrFrom4([4]byte{b[0], byte(u >> 16), byte(u >> 8), byte(u)})
	}
	b := a.As16()
	binary.BigEndian.PutUint32(b[4:], g.rng.uint32())
	binary.BigEndian.PutUint64(b[8:], g.rng.uint64())
	return netip.AddrFrom16(b)
}
