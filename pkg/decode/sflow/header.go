package sflow

import (
	"encoding/binary"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// layer is a protocol the header walk knows. Its rank and whether it is a
// "shim" reproduce goflow2's rule for encapsulation: moving to a layer of
// the same or a lower rank (IP in IP, Ethernet in GRE) enters the inner
// packet, whose fields no longer overwrite the outer ones; VLAN tags, MPLS
// labels and the IPv6 fragment header are shims that never count.
type layer uint8

const (
	layerNone layer = iota
	layerEthernet
	layerDot1Q
	layerMPLS
	layerIPv4
	layerIPv6
	layerIPv6Routing
	layerIPv6Fragment
	layerTCP
	layerUDP
	layerICMP
	layerICMPv6
	layerGRE
)

var layerRank = [...]uint8{
	layerNone:         100,
	layerEthernet:     20,
	layerDot1Q:        25,
	layerMPLS:         25,
	layerIPv4:         30,
	layerIPv6:         30,
	layerIPv6Routing:  35,
	layerIPv6Fragment: 35,
	layerTCP:          40,
	layerUDP:          40,
	layerICMP:         70,
	layerICMPv6:       70,
	layerGRE:          40,
}

func (l layer) shim() bool { return l == layerDot1Q || l == layerMPLS || l == layerIPv6Fragment }

// maxLayers bounds the walk (IP in IP in IP ...).
const maxLayers = 32

// parseHeader walks a sampled header from its first layer and fills m.
// A header is a truncated copy of a packet: running out of bytes ends the
// walk quietly, it is not an error.
func (d *Decoder) parseHeader(m *flowpb.FlowMessage, h []byte, first layer) {
	w := walk{m: m, maxLabels: d.cfg.MaxLabels}
	cur := first
	off := 0
	for n := 0; cur != layerNone && off <= len(h) && n < maxLayers; n++ {
		size, next, ok := w.parse(cur, h[off:])
		m.LayerSize = append(m.LayerSize, uint32(size))
		if !ok {
			return
		}
		if !next.shim() && layerRank[next] <= layerRank[cur] {
			w.inner = true
		}
		cur = next
		off += size
	}
}

type walk struct {
	m         *flowpb.FlowMessage
	inner     bool // inside an encapsulated packet: outer fields stay
	maxLabels int
}

// parse reads one layer from b. ok false means b is too short for it.
func (w *walk) parse(l layer, b []byte) (size int, next layer, ok bool) {
	m := w.m
	base := !w.inner
	switch l {
	case layerEthernet:
		if len(b) < 14 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Ethernet)
		et := binary.BigEndian.Uint16(b[12:])
		if base {
			m.DstMac = mac(b)
			m.SrcMac = mac(b[6:])
			m.Etype = uint32(et)
		}
		return 14, etypeLayer(et), true

	case layerDot1Q:
		if len(b) < 4 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Dot1Q)
		et := binary.BigEndian.Uint16(b[2:])
		if base {
			m.VlanId = uint32(binary.BigEndian.Uint16(b)) & 0xfff
			m.Etype = uint32(et)
		}
		return 4, etypeLayer(et), true

	case layerMPLS:
		if len(b) < 4 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_MPLS)
		off := 0
		var et uint16
		labels, ttls := m.MplsLabel, m.MplsTtl
		if base {
			labels, ttls = labels[:0], ttls[:0]
		}
		for n := 0; len(b) >= off+4; n++ {
			if n == w.maxLabels {
				// Deeper than any real stack: keep what was read, stop.
				if base {
					m.MplsLabel, m.MplsTtl = labels, ttls
				}
				return off, layerNone, true
			}
			v := binary.BigEndian.Uint32(b[off:])
			label := v >> 12
			bottom := v>>8&1 == 1
			off += 4
			if base {
				labels = append(labels, label)
				ttls = append(ttls, v&0xff)
			}
			if bottom || label <= 15 {
				// No type field: guess from the IP version nibble, as
				// everyone does.
				if len(b) > off {
					switch b[off] >> 4 {
					case 4:
						et = 0x800
					case 6:
						et = 0x86dd
					}
				}
				break
			}
		}
		if base {
			m.MplsLabel, m.MplsTtl = labels, ttls
			if et != 0 {
				m.Etype = uint32(et)
			}
		}
		if et == 0 {
			return off, layerNone, true
		}
		return off, etypeLayer(et), true

	case layerIPv4:
		if len(b) < 20 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_IPv4)
		proto := b[9]
		frag := binary.BigEndian.Uint16(b[6:])
		if base {
			m.SrcAddr = append(m.SrcAddr[:0], b[12:16]...)
			m.DstAddr = append(m.DstAddr[:0], b[16:20]...)
			m.IpTos = uint32(b[1])
			m.IpTtl = uint32(b[8])
			m.FragmentId = uint32(binary.BigEndian.Uint16(b[4:]))
			m.FragmentOffset = uint32(frag) & 0x1fff
			m.IpFlags = uint32(frag) >> 13
			m.Proto = uint32(proto)
		}
		size = int(b[0]&0xf) * 4
		if size < 20 {
			return 20, layerNone, true // bad IHL: nothing after it can be trusted
		}
		if frag&0x1fff != 0 {
			return size, layerNone, true // a later fragment carries no transport header
		}
		return size, protoLayer(proto), true

	case layerIPv6:
		if len(b) < 40 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_IPv6)
		ext, nh := skipIPv6Options(b[40:], b[6])
		if base {
			m.SrcAddr = append(m.SrcAddr[:0], b[8:24]...)
			m.DstAddr = append(m.DstAddr[:0], b[24:40]...)
			v := binary.BigEndian.Uint32(b)
			m.IpTos = v >> 20 & 0xff
			m.IpTtl = uint32(b[7])
			m.Ipv6FlowLabel = v & 0xfffff
			m.Proto = uint32(nh)
		}
		return 40 + ext, protoLayer(nh), true

	case layerIPv6Routing:
		if len(b) < 8 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_IPv6HeaderRouting)
		size = 8 + 8*int(b[1])
		ext, nh := 0, b[0]
		if len(b) >= size {
			ext, nh = skipIPv6Options(b[size:], nh)
		}
		if base {
			m.Ipv6RoutingHeaderSegLeft = uint32(b[3])
			if b[2] == 4 { // segment routing: the segment list follows
				last := int(b[4])
				for i, at := 0, 8; i <= last && at < size && at+16 <= len(b); i, at = i+1, at+16 {
					m.Ipv6RoutingHeaderAddresses = appendAddr(m.Ipv6RoutingHeaderAddresses, b[at:at+16])
				}
			}
			m.Proto = uint32(nh)
		}
		return size + ext, protoLayer(nh), true

	case layerIPv6Fragment:
		if len(b) < 8 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_IPv6HeaderFragment)
		frag := binary.BigEndian.Uint16(b[2:])
		ext, nh := skipIPv6Options(b[8:], b[0])
		if base {
			m.FragmentId = binary.BigEndian.Uint32(b[4:])
			m.FragmentOffset = uint32(frag) >> 3
			m.IpFlags = uint32(frag) & 7
			m.Proto = uint32(nh)
		}
		if frag>>3 != 0 {
			return 8 + ext, layerNone, true
		}
		return 8 + ext, protoLayer(nh), true

	case layerTCP:
		if len(b) < 20 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_TCP)
		if base {
			m.SrcPort = uint32(binary.BigEndian.Uint16(b))
			m.DstPort = uint32(binary.BigEndian.Uint16(b[2:]))
			m.TcpFlags = uint32(b[13])
		}
		// The header's own length (goflow2 v2.2.6 says 20 plus the flags
		// byte's high nibble times 4).
		return max(20, int(b[12]>>4)*4), layerNone, true

	case layerUDP:
		if len(b) < 8 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_UDP)
		if base {
			m.SrcPort = uint32(binary.BigEndian.Uint16(b))
			m.DstPort = uint32(binary.BigEndian.Uint16(b[2:]))
		}
		return 8, layerNone, true

	case layerICMP, layerICMPv6:
		if len(b) < 2 {
			return 0, layerNone, false
		}
		if l == layerICMP {
			m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_ICMP)
		} else {
			m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_ICMPv6)
		}
		if base {
			m.IcmpType = uint32(b[0])
			m.IcmpCode = uint32(b[1])
		}
		return 8, layerNone, true

	case layerGRE:
		if len(b) < 4 {
			return 0, layerNone, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_GRE)
		flags := b[0]
		size = 4
		for _, bit := range [...]byte{0x80, 0x20, 0x10} { // checksum, key, sequence
			if flags&bit != 0 {
				size += 4
			}
		}
		if b[1]&0x80 != 0 { // acknowledgment (PPTP's GRE v1)
			size += 4
		}
		return size, etypeLayer(binary.BigEndian.Uint16(b[2:])), true
	}
	return 0, layerNone, false
}

func etypeLayer(et uint16) layer {
	switch et {
	case 0x0800:
		return layerIPv4
	case 0x86dd:
		return layerIPv6
	case 0x8100, 0x88a8, 0x9100:
		return layerDot1Q
	case 0x8847:
		return layerMPLS
	case 0x6558, 0x199e: // transparent Ethernet bridging (GRE, Geneve)
		return layerEthernet
	}
	return layerNone
}

func protoLayer(p byte) layer {
	switch p {
	case 1:
		return layerICMP
	case 4:
		return layerIPv4
	case 6:
		return layerTCP
	case 17:
		return layerUDP
	case 41:
		return layerIPv6
	case 43:
		return layerIPv6Routing
	case 44:
		return layerIPv6Fragment
	case 47:
		return layerGRE
	case 58:
		return layerICMPv6
	}
	return layerNone
}

// skipIPv6Options skips hop-by-hop (0) and destination options (60)
// headers, which carry nothing a flow has a field for, and returns their
// length and the next header after them. A truncated one stops the skip.
func skipIPv6Options(b []byte, nh byte) (int, byte) {
	off := 0
	for i := 0; (nh == 0 || nh == 60) && i < 4 && len(b) >= off+8; i++ {
		nh, off = b[off], off+8+8*int(b[off+1])
	}
	return off, nh
}

// appendAddr appends a copy of a to s, reusing the byte slices a reset
// message keeps past its length.
func appendAddr(s [][]byte, a []byte) [][]byte {
	if len(s) < cap(s) {
		s = s[:len(s)+1]
		s[len(s)-1] = append(s[len(s)-1][:0], a...)
		return s
	}
	return append(s, append([]byte(nil), a...))
}
