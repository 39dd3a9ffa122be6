package flowgen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// sFlow v5 sample and record formats (enterprise 0).
const (
	sflowFlowSample         = 1
	sflowCounterSample      = 2
	sflowExpandedFlowSample = 3
	sflowRawHeader          = 1
	sflowGenericIfCounters  = 1
	sflowExtSwitch          = 1001
	sflowExtRouter          = 1002
	sflowExtGateway         = 1003

	maxASPath      = 4
	maxCommunities = 3
	fcsLen         = 4 // frame_length counts the FCS, the header leaves it out

	sflowGenericIfCountersLen = 88
	sflowCounterSampleLen     = 8 + 12 + 8 + sflowGenericIfCountersLen
)

// sflowMaxSampleLen bounds an expanded flow sample with all its records.
func sflowMaxSampleLen(headerSize int) int {
	const (
		addr    = 4 + 16
		fixed   = 8 + 44
		raw     = 8 + 16
		sw      = 8 + 16
		router  = 8 + addr + 8
		gateway = 8 + addr + 12 + 4 + 8 + 4*maxASPath + 4 + 4*maxCommunities + 4
	)
	return fixed + raw + (headerSize+3)&^3 + sw + router + gateway
}

// appendSFlow appends a datagram of RecordsPerPacket flow samples,
// alternately compact (format 1) and expanded (format 3), and one counter
// sample.
func (g *Generator) appendSFlow(b []byte, now time.Time) ([]byte, []Flow) {
	n := g.cfg.RecordsPerPacket
	flows := g.flows[:n]
	g.lists = g.lists[:0]

	b = g.appendSFlowHeader(b, n, now)
	for i := range flows {
		f := &flows[i]
		g.randomFlow(f, g.cfg.IPv6Ratio > 0 && g.rng.float64() < g.cfg.IPv6Ratio, now)
		g.drawSample(f)
		b = g.appendFlowSample(b, f, now, i%2 == 1)
	}
	b = g.appendCounterSample(b)
	return b, flows
}

// appendSFlowHeader appends the header of a datagram of n flow samples and
// a counter sample.
func (g *Generator) appendSFlowHeader(b []byte, n int, now time.Time) []byte {
	b = binary.BigEndian.AppendUint32(b, 5)
	b = appendSFlowAddr(b, g.cfg.Exporter)
	b = binary.BigEndian.AppendUint32(b, g.cfg.ObservationDomain)
	b = binary.BigEndian.AppendUint32(b, g.seq)
	b = binary.BigEndian.AppendUint32(b, g.uptime(now.UnixMilli()))
	b = binary.BigEndian.AppendUint32(b, uint32(n+1))
	g.seq++
	return b
}

// sflowHeaderLen is the length of appendSFlowHeader's header.
func sflowHeaderLen(agent netip.Addr) int { return 24 + len(agent.AsSlice()) }

// l2Len is the length of the Ethernet header of f's sampled frame.
func l2Len(f *Flow) int {
	if f.VLAN != 0 {
		return 14 + 4
	}
	return 14
}

// drawSample completes a random flow into a sampled packet: its frame
// length, AS path and communities.
func (g *Generator) drawSample(f *Flow) {
	r := &g.rng
	ipHdr, l4Hdr := 20, 8
	if f.SrcAddr.Is6() {
		ipHdr = 40
	}
	if f.Proto == 6 {
		l4Hdr = 20
	}
	l2 := l2Len(f)
	minIP := max(ipHdr+l4Hdr, 64-fcsLen-l2) // at least a minimum-size Ethernet frame
	ipLen := minIP + r.intN(1500-minIP+1)
	f.Packets, f.Bytes = 1, uint64(l2+ipLen+fcsLen)

	start := len(g.lists)
	for range r.intN(maxASPath) {
		g.lists = append(g.lists, g.randomAS())
	}
	g.lists = append(g.lists, f.DstAS)
	f.ASPath = g.lists[start:len(g.lists):len(g.lists)]
	start = len(g.lists)
	for range r.intN(maxCommunities + 1) {
		g.lists = append(g.lists, uint32(64512+r.intN(1000))<<16|uint32(r.intN(1000)))
	}
	f.Communities = g.lists[start:len(g.lists):len(g.lists)]
}

// appendFlowSample appends the sample of f, a sampled packet made by
// drawSample.
func (g *Generator) appendFlowSample(b []byte, f *Flow, now time.Time, expanded bool) []byte {
	frameLen := int(f.Bytes)
	ipLen := frameLen - l2Len(f) - fcsLen
	hdrLen := g.sampledHeaderLen(f)
	f.Start = now.Truncate(time.Millisecond)
	f.End = f.Start

	g.samplePool += f.SamplingRate
	sample := len(b)
	g.pool.mark(sample)
	format := uint32(sflowFlowSample)
	if expanded {
		format = sflowExpandedFlowSample
	}
	b = binary.BigEndian.AppendUint32(b, format)
	b = append(b, 0, 0, 0, 0) // sample length, set below
	b = binary.BigEndian.AppendUint32(b, g.sampleSeq)
	g.sampleSeq++
	if expanded {
		b = binary.BigEndian.AppendUint32(b, 0) // source ID type: ifIndex
		b = binary.BigEndian.AppendUint32(b, f.InIf)
	} else {
		b = binary.BigEndian.AppendUint32(b, f.InIf) // type 0 in the top byte
	}
	b = binary.BigEndian.AppendUint32(b, f.SamplingRate)
	b = binary.BigEndian.AppendUint32(b, g.samplePool)
	b = binary.BigEndian.AppendUint32(b, 0) // drops
	if expanded {
		b = binary.BigEndian.AppendUint32(b, 0) // interface format: ifIndex
		b = binary.BigEndian.AppendUint32(b, f.InIf)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, f.OutIf)
	} else {
		b = binary.BigEndian.AppendUint32(b, f.InIf) // format 0 in the top 2 bits
		b = binary.BigEndian.AppendUint32(b, f.OutIf)
	}
	b = binary.BigEndian.AppendUint32(b, 4) // records

	// Raw packet header.
	rec := len(b)
	b = binary.BigEndian.AppendUint32(b, sflowRawHeader)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, 1) // header protocol: Ethernet
	b = binary.BigEndian.AppendUint32(b, uint32(frameLen))
	b = binary.BigEndian.AppendUint32(b, fcsLen) // stripped
	b = binary.BigEndian.AppendUint32(b, uint32(hdrLen))
	g.pool.mark(len(b))
	b = g.appendFrame(b, f, ipLen, hdrLen)
	b = pad4(b, rec)
	putUint32(b, rec+4, len(b)-rec-8)

	// Extended switch.
	b = binary.BigEndian.AppendUint32(b, sflowExtSwitch)
	b = binary.BigEndian.AppendUint32(b, 16)
	b = binary.BigEndian.AppendUint32(b, uint32(f.VLAN))
	b = binary.BigEndian.AppendUint32(b, 0) // priority
	b = binary.BigEndian.AppendUint32(b, uint32(f.VLAN))
	b = binary.BigEndian.AppendUint32(b, 0)

	// Extended router.
	rec = len(b)
	b = binary.BigEndian.AppendUint32(b, sflowExtRouter)
	b = append(b, 0, 0, 0, 0)
	b = appendSFlowAddr(b, f.NextHop)
	b = binary.BigEndian.AppendUint32(b, uint32(f.SrcMask))
	b = binary.BigEndian.AppendUint32(b, uint32(f.DstMask))
	putUint32(b, rec+4, len(b)-rec-8)

	// Extended gateway.
	rec = len(b)
	b = binary.BigEndian.AppendUint32(b, sflowExtGateway)
	b = append(b, 0, 0, 0, 0)
	b = appendSFlowAddr(b, f.NextHop)
	b = binary.BigEndian.AppendUint32(b, 64512)   // this router's AS
	b = binary.BigEndian.AppendUint32(b, f.SrcAS) // source AS
	b = binary.BigEndian.AppendUint32(b, f.SrcAS) // source peer AS
	b = binary.BigEndian.AppendUint32(b, 1)       // one path segment
	b = binary.BigEndian.AppendUint32(b, 2)       // AS_SEQUENCE
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.ASPath)))
	for _, as := range f.ASPath {
		b = binary.BigEndian.AppendUint32(b, as)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Communities)))
	for _, c := range f.Communities {
		b = binary.BigEndian.AppendUint32(b, c)
	}
	b = binary.BigEndian.AppendUint32(b, 100) // local preference
	putUint32(b, rec+4, len(b)-rec-8)

	putUint32(b, sample+4, len(b)-sample-8)
	return b
}

// sampledHeaderLen is how much of f's frame its raw packet header record
// holds.
func (g *Generator) sampledHeaderLen(f *Flow) int { return min(int(f.Bytes)-fcsLen, g.cfg.HeaderSize) }

// appendFrame appends the first hdrLen bytes of the Ethernet frame that
// carries f: MACs, optional 802.1Q tag, IP and transport headers with
// consistent lengths, then a zero payload.
func (g *Generator) appendFrame(b []byte, f *Flow, ipLen, hdrLen int) []byte {
	h := g.frame[:0]
	h = append(h, f.DstMAC[:]...)
	h = append(h, f.SrcMAC[:]...)
	if f.VLAN != 0 {
		h = binary.BigEndian.AppendUint16(h, 0x8100)
		h = binary.BigEndian.AppendUint16(h, f.VLAN)
	}
	ipHdr := 20
	if f.SrcAddr.Is6() {
		ipHdr = 40
		h = binary.BigEndian.AppendUint16(h, 0x86dd)
		h = binary.BigEndian.AppendUint32(h, 6<<28|uint32(f.TOS)<<20|f.FlowLabel)
		h = binary.BigEndian.AppendUint16(h, uint16(ipLen-ipHdr))
		h = append(h, f.Proto, 64)
		h = appendAddr(h, f.SrcAddr)
		h = appendAddr(h, f.DstAddr)
	} else {
		h = binary.BigEndian.AppendUint16(h, 0x0800)
		ip := len(h)
		h = append(h, 0x45, f.TOS)
		h = binary.BigEndian.AppendUint16(h, uint16(ipLen))
		h = binary.BigEndian.AppendUint16(h, uint16(g.sampleSeq)) // identification
		h = append(h, 0x40, 0, 64, f.Proto, 0, 0)                 // DF, TTL 64, checksum below
		h = appendAddr(h, f.SrcAddr)
		h = appendAddr(h, f.DstAddr)
		binary.BigEndian.PutUint16(h[ip+10:], ipv4Checksum(h[ip:]))
	}
	switch f.Proto {
	case 6:
		h = binary.BigEndian.AppendUint16(h, f.SrcPort)
		h = binary.BigEndian.AppendUint16(h, f.DstPort)
		h = binary.BigEndian.AppendUint32(h, g.sampleSeq*1000) // sequence
		h = binary.BigEndian.AppendUint32(h, 0)                // acknowledgment
		h = append(h, 5<<4, f.TCPFlags)
		h = append(h, 0xff, 0xff, 0, 0, 0, 0) // window, checksum, urgent pointer
	case 17:
		h = binary.BigEndian.AppendUint16(h, f.SrcPort)
		h = binary.BigEndian.AppendUint16(h, f.DstPort)
		h = binary.BigEndian.AppendUint16(h, uint16(ipLen-ipHdr))
		h = append(h, 0, 0)
	default: // ICMP, ICMPv6: type, code, checksum, identifier, sequence
		h = binary.BigEndian.AppendUint16(h, f.DstPort)
		h = append(h, 0, 0, 0, 1)
		h = binary.BigEndian.AppendUint16(h, uint16(g.sampleSeq))
	}
	n := min(len(h), hdrLen)
	b = append(b, h[:n]...)
	return append(b, make([]byte, hdrLen-n)...)
}

// appendCounterSample appends a counter sample with generic interface
// counters that grow with each datagram.
func (g *Generator) appendCounterSample(b []byte) []byte {
	ifIndex := 1 + g.counterSeq%48
	k := uint64(g.counterSeq)
	b = binary.BigEndian.AppendUint32(b, sflowCounterSample)
	b = binary.BigEndian.AppendUint32(b, sflowCounterSampleLen-8)
	b = binary.BigEndian.AppendUint32(b, g.counterSeq)
	b = binary.BigEndian.AppendUint32(b, ifIndex) // source ID type 0: ifIndex
	b = binary.BigEndian.AppendUint32(b, 1)       // records
	b = binary.BigEndian.AppendUint32(b, sflowGenericIfCounters)
	b = binary.BigEndian.AppendUint32(b, sflowGenericIfCountersLen)
	b = binary.BigEndian.AppendUint32(b, ifIndex)
	b = binary.BigEndian.AppendUint32(b, 6)              // ifType: ethernetCsmacd
	b = binary.BigEndian.AppendUint64(b, 10_000_000_000) // ifSpeed
	b = binary.BigEndian.AppendUint32(b, 1)              // ifDirection: full duplex
	b = binary.BigEndian.AppendUint32(b, 3)              // ifStatus: admin and oper up
	b = binary.BigEndian.AppendUint64(b, k*1_000_000)    // ifInOctets
	b = binary.BigEndian.AppendUint32(b, uint32(k*1000))
	b = binary.BigEndian.AppendUint32(b, uint32(k*10))
	b = binary.BigEndian.AppendUint32(b, uint32(k))
	b = append(b, make([]byte, 12)...)                // in discards, errors, unknown protos
	b = binary.BigEndian.AppendUint64(b, k*2_000_000) // ifOutOctets
	b = binary.BigEndian.AppendUint32(b, uint32(k*2000))
	b = binary.BigEndian.AppendUint32(b, uint32(k*20))
	b = binary.BigEndian.AppendUint32(b, uint32(k*2))
	b = append(b, make([]byte, 8)...) // out discards, errors
	b = binary.BigEndian.AppendUint32(b, 0)
	g.counterSeq++
	return b
}

// appendSFlowAddr appends an sFlow address: type 1 and 4 bytes or type 2
// and 16.
func appendSFlowAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		b = binary.BigEndian.AppendUint32(b, 1)
	} else {
		b = binary.BigEndian.AppendUint32(b, 2)
	}
	return appendAddr(b, a)
}

func putUint32(b []byte, at, v int) { binary.BigEndian.PutUint32(b[at:], uint32(v)) }

// ipv4Checksum is the RFC 1071 checksum of an IPv4 header.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
