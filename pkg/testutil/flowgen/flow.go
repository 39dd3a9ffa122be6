package flowgen

import (
	"net/netip"
	"time"
)

// Flow is the ground truth of one generated flow record or sFlow sample:
// what the packet encodes, fields the protocol cannot carry left zero.
type Flow struct {
	SrcAddr, DstAddr netip.Addr // both IPv4 or both IPv6
	NextHop          netip.Addr // same family as SrcAddr
	// SrcPort and DstPort are the transport ports. For ICMP and ICMPv6,
	// following NetFlow practice, SrcPort is 0 and DstPort is type<<8 | code;
	// sFlow carries type and code in the sampled ICMP header instead.
	SrcPort, DstPort uint16
	Proto            uint8 // 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6
	// Bytes and Packets are as exported, not scaled by SamplingRate. For
	// sFlow, Packets is 1 and Bytes the sampled frame length (FCS included).
	Bytes, Packets uint64
	// Start and End have millisecond precision. sFlow samples have no flow
	// times: both are the datagram's export time.
	Start, End       time.Time
	InIf, OutIf      uint32 // ifIndex, below 65536
	SrcAS, DstAS     uint32 // v5: below 65536
	SrcMask, DstMask uint8
	SrcMAC, DstMAC   [6]byte
	VLAN             uint16 // 0: untagged
	TOS              uint8  // IPv4 TOS or IPv6 traffic class
	TCPFlags         uint8  // 0 unless TCP
	FlowLabel        uint32 // IPv6 only, 20 bits
	SamplingRate     uint32 // rate advertised by the packet (or options data), 0 if none
	// ASPath (next-hop AS first, DstAS last) and Communities are set for
	// sFlow only, from the extended gateway record.
	ASPath, Communities []uint32
}

// randomFlow fills f with a random flow of the family asked that ended
// shortly before the export time now.
func (g *Generator) randomFlow(f *Flow, v6 bool, now time.Time) {
	var (
		serverPorts = [...]uint16{80, 443, 53, 22, 25, 123, 3306, 8080, 993, 5060}
		// Echo request and reply only: sFlow headers of ICMP errors would
		// have to quote the offending datagram.
		icmp4Codes = [...]uint16{8 << 8, 0 << 8} // type<<8 | code
		icmp6Codes = [...]uint16{128 << 8, 129 << 8}
		tosValues  = [...]uint8{0, 0, 0, 0x20, 0x28, 0x48, 0xb8}
	)
	r := &g.rng
	*f = Flow{}
	inside, outside := g.randomAddr(v6, true), g.randomAddr(v6, false)
	if r.intN(2) == 0 {
		f.SrcAddr, f.DstAddr = inside, outside
	} else {
		f.SrcAddr, f.DstAddr = outside, inside
	}
	if v6 {
		f.NextHop = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 15: byte(1 + r.intN(254))})
		f.SrcMask, f.DstMask = uint8(32+r.intN(97)), uint8(32+r.intN(97))
		f.FlowLabel = r.uint32N(1 << 20)
	} else {
		f.NextHop = netip.AddrFrom4([4]byte{10, 255, 0, byte(1 + r.intN(254))})
		f.SrcMask, f.DstMask = uint8(8+r.intN(25)), uint8(8+r.intN(25))
	}

	switch n := r.intN(20); {
	case n < 14:
		f.Proto = 6
		f.TCPFlags = 0x10 | uint8(r.intN(16)) // ACK plus any of FIN, SYN, RST, PSH
	case n < 19:
		f.Proto = 17
	case v6:
		f.Proto = 58
	default:
		f.Proto = 1
	}
	switch f.Proto {
	case 1:
		f.DstPort = icmp4Codes[r.intN(len(icmp4Codes))]
	case 58:
		f.DstPort = icmp6Codes[r.intN(len(icmp6Codes))]
	default:
		server, client := serverPorts[r.intN(len(serverPorts))], uint16(32768+r.intN(28232))
		if r.intN(2) == 0 {
			f.SrcPort, f.DstPort = client, server
		} else {
			f.SrcPort, f.DstPort = server, client
		}
	}

	f.Packets = uint64(1 + r.intN(1+r.intN(1000)))
	f.Bytes = f.Packets * uint64(40+r.intN(1461))
	endMs := now.Unix()*1000 - int64(r.intN(2000)) // ended before the export second
	f.End = time.UnixMilli(endMs).UTC()
	f.Start = time.UnixMilli(endMs - int64(r.intN(60000))).UTC()

	f.InIf = uint32(1 + r.intN(48))
	f.OutIf = uint32(1 + (int(f.InIf)+r.intN(47))%48) // never InIf
	f.SrcAS, f.DstAS = g.randomAS(), g.randomAS()
	f.SrcMAC, f.DstMAC = g.randomMAC(), g.randomMAC()
	if r.intN(10) < 7 {
		f.VLAN = uint16(1 + r.intN(4094))
	}
	f.TOS = tosValues[r.intN(len(tosValues))]
	f.SamplingRate = g.cfg.SamplingRate
}

// randomAddr returns an address inside the network (10.0.0.0/8 or
// 2001:db8::/32) or a global unicast one outside.
func (g *Generator) randomAddr(v6, inside bool) netip.Addr {
	r := &g.rng
	if !v6 {
		u := r.uint32()
		if inside {
			u = 10<<24 | u&0xffffff
		} else {
			u = (1+u%223)<<24 | u&0xffffff // 1.0.0.0 - 223.255.255.255
		}
		return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
	}
	var a [16]byte
	hi, lo := r.uint64(), r.uint64()
	for i := range 8 {
		a[i], a[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
	}
	if inside {
		a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	} else {
		a[0] = 0x20 | a[0]&0x1f // 2000::/3
	}
	return netip.AddrFrom16(a)
}

// randomAS returns a public AS number, 2-byte for v5 which has no room for
// more and mostly 2-byte otherwise.
func (g *Generator) randomAS() uint32 {
	if g.cfg.Protocol == NetFlowV5 || g.rng.intN(5) != 0 {
		return 1 + g.rng.uint32N(64495)
	}
	return 131072 + g.rng.uint32N(4199999999-131072)
}

// randomMAC returns a locally administered unicast MAC address.
func (g *Generator) randomMAC() [6]byte {
	u := g.rng.uint64()
	return [6]byte{byte(u>>40)&^1 | 2, byte(u >> 32), byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}

// fillFlows fills the reused flow slice with RecordsPerPacket random flows,
// the n4 IPv4 ones first.
func (g *Generator) fillFlows(now time.Time) (flows []Flow, n4 int) {
	n, n6 := g.cfg.RecordsPerPacket, 0
	if g.cfg.IPv6Ratio > 0 {
		for range n {
			if g.rng.float64() < g.cfg.IPv6Ratio {
				n6++
			}
		}
	}
	flows = g.flows[:n]
	for i := range flows {
		g.randomFlow(&flows[i], i >= n-n6, now)
	}
	return flows, n - n6
}
