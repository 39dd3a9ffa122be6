// Package packet reads the headers of a sampled packet into a flow record:
// sFlow's sampled header, and IPFIX / NetFlow v9 packet sections
// (dataLinkFrameSection 315, layer2packetSectionData 104,
// ipHeaderPacketSection 313, mplsLabelStackSection 316). Both decoders use
// this one parser, so a frame gives the same fields whichever protocol
// carried it.
//
// Layers: Ethernet, 802.1Q / 802.1ad / QinQ tags (vlan_id is the 12-bit ID
// of the innermost tag, without the priority bits), MPLS label stacks
// (mpls_label, mpls_ttl; a pseudowire control word counts in the MPLS
// layer_size), Ethernet over MPLS pseudowires with or without the RFC 4385
// control word, IPv4 (options skipped by IHL), IPv6
// with hop-by-hop, destination options, fragment and routing headers (the
// segment routing header of RFC 8754 fills ipv6_routing_header_addresses and
// ipv6_routing_header_seg_left), GRE (optional fields skipped), VXLAN (UDP
// port 4789), TCP, UDP, ICMP and ICMPv6. layer_stack and layer_size list
// what was walked, as goflow2 v2 does. ParseWith adds what goflow2's
// mapping file can ask for: parsers started by a UDP or TCP port (GRE in
// UDP, Geneve, Teredo, VXLAN on other ports) and a Visitor called with
// each layer's bytes.
//
// Encapsulation follows goflow2: a layer of the same or a lower rank than
// the one before it (IP in IP, Ethernet in GRE or VXLAN) starts an inner
// packet, whose fields no longer overwrite the outer ones; VLAN tags, MPLS
// labels and the IPv6 fragment header never start one. The Ethernet frame
// of an MPLS pseudowire does not either: as for IP over MPLS, the payload of
// the label stack is the flow, so its MACs, VLAN, etype, addresses and ports
// are recorded. Below the bottom of the stack, a first nibble 4 or 6 is
// IPv4 or IPv6 (RFC 4928), 1 an associated channel (OAM, which ends the
// walk), anything else an Ethernet frame, after a control word when the
// first nibble is 0 and the ethertype found there says so (see
// pseudowire).
//
// A section is a truncated copy of a packet: running out of bytes ends the
// walk quietly. Parse allocates nothing once the message's slices have
// grown.
package packet

import (
	"encoding/binary"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// Layer is a protocol the walk knows; the exported ones are where a section
// can start.
type Layer uint8

// Where a section starts.
const (
	None Layer = iota
	Ethernet
	dot1Q
	MPLS
	IPv4
	IPv6
	ipv6Routing
	ipv6Fragment
	tcp
	udp
	icmp
	icmpv6
	gre
	vxlan
	pwEthernet // the Ethernet frame carried by an MPLS pseudowire
	teredo     // IPv6 in UDP (RFC 4380), only where a PortParser says so
	geneve     // Geneve (RFC 8926), only where a PortParser says so
)

// The layers a PortParser can start.
const (
	GRE    = gre
	VXLAN  = vxlan
	Teredo = teredo
	Geneve = geneve
)

// rank and shim reproduce goflow2's rule for encapsulation (see the
// package documentation).
var rank = [...]uint8{
	None:         100,
	Ethernet:     20,
	dot1Q:        25,
	MPLS:         25,
	IPv4:         30,
	IPv6:         30,
	ipv6Routing:  35,
	ipv6Fragment: 35,
	tcp:          40,
	udp:          40,
	icmp:         70,
	icmpv6:       70,
	gre:          40,
	vxlan:        40,
	pwEthernet:   20,
	teredo:       40,
	geneve:       40,
}

func (l Layer) shim() bool {
	return l == dot1Q || l == MPLS || l == ipv6Fragment || l == pwEthernet
}

// maxLayers bounds the walk (IP in IP in IP ...).
const maxLayers = 32

// vxlanPort is VXLAN's UDP destination port (RFC 7348).
const vxlanPort = 4789

// Info is what the walk learned beyond the record's fields.
type Info struct {
	// IPOffset and IPLength locate the outer IP packet: where its header
	// starts in the section and the length its header gives (IPv4 total
	// length, IPv6 payload length plus 40). IPLength is 0 when the section
	// holds no complete outer IP header.
	IPOffset, IPLength int
}

// Parse walks section from its first layer and fills m; maxLabels bounds
// the MPLS label stack read (a deeper stack ends the walk). Fields are
// written over what m holds; layer_stack and layer_size are appended to.
func Parse(m *flowpb.FlowMessage, section []byte, first Layer, maxLabels int) Info {
	return ParseWith(m, section, first, maxLabels, nil)
}

// PortParser starts a layer after a UDP or TCP header that has this
// source or destination port (goflow2's sflow.ports): GRE, Teredo,
// Geneve or VXLAN.
type PortParser struct {
	TCP      bool
	Src, Dst bool // which port matches; a destination match is tried first
	Port     uint16
	Layer    Layer
}

// Visitor is told of every layer a walk parsed, after its fields were set:
// l, the port whose PortParser started it (0 otherwise), the section from
// the layer's first byte on, and whether it lies in an encapsulated
// packet. It may set m's fields.
type Visitor interface {
	Visit(m *flowpb.FlowMessage, l Layer, port uint16, b []byte, encap bool)
}

// Options extend a walk (ParseWith). A nil *Options is Parse's walk.
type Options struct {
	Ports   []PortParser
	Visitor Visitor
}

// ParseWith is Parse with port parsers and a visitor of each layer.
func ParseWith(m *flowpb.FlowMessage, section []byte, first Layer, maxLabels int, o *Options) Info {
	w := walk{m: m, maxLabels: maxLabels, opts: o}
	cur := first
	off := 0
	for n := 0; cur != None && off <= len(section) && n < maxLayers; n++ {
		w.off = off
		port := w.port
		w.port = 0
		encap := w.inner
		size, next, ok := w.parse(cur, section[off:])
		m.LayerSize = append(m.LayerSize, uint32(size))
		if !ok {
			break
		}
		if o != nil && o.Visitor != nil {
			o.Visitor.Visit(m, cur, port, section[off:], encap)
		}
		if !next.shim() && rank[next] <= rank[cur] {
			w.inner = true
		}
		cur = next
		off += size
	}
	return w.info
}

type walk struct {
	m         *flowpb.FlowMessage
	inner     bool // inside an encapsulated packet: outer fields stay
	maxLabels int
	off       int // where the current layer starts in the section
	info      Info
	opts      *Options
	port      uint16 // the port whose parser starts the next layer
}

// portLayer is the layer a PortParser starts after a transport header
// with these ports, None without one.
func (w *walk) portLayer(tcp bool, src, dst uint16) Layer {
	if w.opts == nil {
		return None
	}
	for _, p := range w.opts.Ports {
		if p.TCP == tcp && p.Dst && p.Port == dst {
			w.port = dst
			return p.Layer
		}
	}
	for _, p := range w.opts.Ports {
		if p.TCP == tcp && p.Src && p.Port == src {
			w.port = src
			return p.Layer
		}
	}
	return None
}

// parse reads one layer from b. ok false means b is too short for it.
func (w *walk) parse(l Layer, b []byte) (size int, next Layer, ok bool) {
	m := w.m
	base := !w.inner
	switch l {
	case Ethernet, pwEthernet:
		if len(b) < 14 {
			return 0, None, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Ethernet)
		et := binary.BigEndian.Uint16(b[12:])
		if base {
			m.DstMac = MAC(b)
			m.SrcMac = MAC(b[6:])
			m.Etype = uint32(et)
		}
		return 14, etypeLayer(et), true

	case dot1Q:
		if len(b) < 4 {
			return 0, None, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Dot1Q)
		et := binary.BigEndian.Uint16(b[2:])
		if base {
			m.VlanId = uint32(binary.BigEndian.Uint16(b)) & 0xfff
			m.Etype = uint32(et)
		}
		return 4, etypeLayer(et), true

	case MPLS:
		return w.mpls(b)

	case IPv4:
		if len(b) < 20 {
			return 0, None, false
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
			if w.info.IPLength == 0 {
				w.info = Info{IPOffset: w.off, IPLength: int(binary.BigEndian.Uint16(b[2:]))}
			}
		}
		size = int(b[0]&0xf) * 4
		if size < 20 {
			return 20, None, true // bad IHL: nothing after it can be trusted
		}
		if frag&0x1fff != 0 {
			return size, None, true // a later fragment carries no transport header
		}
		return size, protoLayer(proto), true

	case IPv6:
		if len(b) < 40 {
			return 0, None, false
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
			if pl := int(binary.BigEndian.Uint16(b[4:])); w.info.IPLength == 0 && pl > 0 {
				w.info = Info{IPOffset: w.off, IPLength: 40 + pl}
			}
		}
		return 40 + ext, protoLayer(nh), true

	case ipv6Routing:
		if len(b) < 8 {
			return 0, None, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_IPv6HeaderRouting)
		size = 8 + 8*int(b[1])
		ext, nh := 0, b[0]
		if len(b) >= size {
			ext, nh = skipIPv6Options(b[size:], nh)
		}
		if base {
			m.Ipv6RoutingHeaderSegLeft = uint32(b[3])
			if b[2] == 4 { // segment routing (RFC 8754): the segment list follows
				last := int(b[4])
				for i, at := 0, 8; i <= last && at < size && at+16 <= len(b); i, at = i+1, at+16 {
					m.Ipv6RoutingHeaderAddresses = appendAddr(m.Ipv6RoutingHeaderAddresses, b[at:at+16])
				}
			}
			m.Proto = uint32(nh)
		}
		return size + ext, protoLayer(nh), true

	case ipv6Fragment:
		if len(b) < 8 {
			return 0, None, false
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
			return 8 + ext, None, true
		}
		return 8 + ext, protoLayer(nh), true

	case tcp:
		if len(b) < 20 {
			return 0, None, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_TCP)
		if base {
			m.SrcPort = uint32(binary.BigEndian.Uint16(b))
			m.DstPort = uint32(binary.BigEndian.Uint16(b[2:]))
			m.TcpFlags = uint32(b[13])
		}
		// The header's own length (goflow2 v2.2.6 says 20 plus the flags
		// byte's high nibble times 4).
		return max(20, int(b[12]>>4)*4), w.portLayer(true, binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])), true

	case udp:
		if len(b) < 8 {
			return 0, None, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_UDP)
		dport := binary.BigEndian.Uint16(b[2:])
		if base {
			m.SrcPort = uint32(binary.BigEndian.Uint16(b))
			m.DstPort = uint32(dport)
		}
		// VXLAN only when its header is there with the I flag set (RFC
		// 7348): a header cut after UDP walks as before.
		if next := w.portLayer(false, binary.BigEndian.Uint16(b), dport); next != None {
			return 8, next, true
		}
		if dport == vxlanPort && len(b) >= 16 && b[8]&0x08 != 0 {
			return 8, vxlan, true
		}
		return 8, None, true

	case teredo:
		// Nothing of its own: IPv6 follows (goflow2's teredo-dst parser).
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Teredo)
		return 0, IPv6, true

	case geneve:
		if len(b) < 8 {
			return 0, None, false
		}
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Geneve)
		return 8 + int(b[0]&0x3f)*4, etypeLayer(binary.BigEndian.Uint16(b[2:])), true

	case vxlan:
		if len(b) < 8 { // a port parser's VXLAN may be cut short
			return 0, None, false
		}
		// Entered with 8 bytes present. layer_stack has no
		// VXLAN value (goflow2's enum): it shows as Custom.
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_Custom)
		return 8, Ethernet, true

	case icmp, icmpv6:
		if len(b) < 2 {
			return 0, None, false
		}
		if l == icmp {
			m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_ICMP)
		} else {
			m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_ICMPv6)
		}
		if base {
			m.IcmpType = uint32(b[0])
			m.IcmpCode = uint32(b[1])
		}
		return 8, None, true

	case gre:
		if len(b) < 4 {
			return 0, None, false
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
	return 0, None, false
}

// mpls reads a label stack and decides what it carries.
func (w *walk) mpls(b []byte) (size int, next Layer, ok bool) {
	m := w.m
	base := !w.inner
	if len(b) < 4 {
		return 0, None, false
	}
	m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_MPLS)
	off := 0
	var et uint16
	labels, ttls := m.MplsLabel, m.MplsTtl
	if base {
		labels, ttls = labels[:0], ttls[:0]
	}
	pw := false
	for n := 0; len(b) >= off+4; n++ {
		if n == w.maxLabels {
			// Deeper than any real stack: keep what was read, stop.
			if base {
				m.MplsLabel, m.MplsTtl = labels, ttls
			}
			return off, None, true
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
			// No type field: guess from the first nibble, as everyone
			// does (RFC 4928 keeps it unambiguous for IP).
			if len(b) > off {
				switch b[off] >> 4 {
				case 4:
					et = 0x800
				case 6:
					et = 0x86dd
				case 1: // associated channel (OAM): nothing of the flow's
				default:
					if bottom {
						var cw bool
						if pw, cw = pseudowire(b[off:]); pw && cw {
							off += 4
						}
					}
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
	switch {
	case pw:
		return off, pwEthernet, true
	case et == 0:
		return off, None, true
	}
	return off, etypeLayer(et), true
}

// pseudowire decides whether b, the payload of a label stack that is not
// IP, is an Ethernet pseudowire (RFC 4448) and whether an RFC 4385 control
// word comes first. A control word starts with a 0 nibble, but so does
// many a MAC address (00:xx:xx OUIs): the reading whose ethertype is
// known wins, the control word when both or neither are.
func pseudowire(b []byte) (ok, cw bool) {
	withCW := len(b) >= 18 && b[0]>>4 == 0 && knownEtype(binary.BigEndian.Uint16(b[16:]))
	without := len(b) >= 14 && knownEtype(binary.BigEndian.Uint16(b[12:]))
	switch {
	case withCW:
		return true, true
	case without:
		return true, false
	case b[0]>>4 == 0:
		return len(b) >= 18, true
	}
	return len(b) >= 14, false
}

func knownEtype(et uint16) bool { return etypeLayer(et) != None || et == 0x0806 }

func etypeLayer(et uint16) Layer {
	switch et {
	case 0x0800:
		return IPv4
	case 0x86dd:
		return IPv6
	case 0x8100, 0x88a8, 0x9100:
		return dot1Q
	case 0x8847:
		return MPLS
	case 0x6558, 0x199e: // transparent Ethernet bridging (GRE, Geneve)
		return Ethernet
	}
	return None
}

func protoLayer(p byte) Layer {
	switch p {
	case 1:
		return icmp
	case 4:
		return IPv4
	case 6:
		return tcp
	case 17:
		return udp
	case 41:
		return IPv6
	case 43:
		return ipv6Routing
	case 44:
		return ipv6Fragment
	case 47:
		return gre
	case 58:
		return icmpv6
	}
	return None
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

// Names are the layer names goflow2's mapping file gives this layer
// (sflow.mapping's layer), most specific first.
func (l Layer) Names() []string {
	switch l {
	case Ethernet, pwEthernet:
		return []string{"ethernet", "2"}
	case dot1Q:
		return []string{"dot1q"}
	case MPLS:
		return []string{"mpls"}
	case IPv4:
		return []string{"ipv4", "ip", "3"}
	case IPv6:
		return []string{"ipv6", "ip", "3"}
	case ipv6Routing:
		return []string{"ipv6eh_routing", "ipv6-route", "ipv6eh"}
	case ipv6Fragment:
		return []string{"ipv6eh_fragment", "ipv6-frag", "ipv6eh"}
	case tcp:
		return []string{"tcp", "4"}
	case udp:
		return []string{"udp", "4"}
	case icmp:
		return []string{"icmp"}
	case icmpv6:
		return []string{"icmpv6", "ipv6-icmp"}
	case gre:
		return []string{"gre"}
	case vxlan:
		return []string{"vxlan"}
	case teredo:
		return []string{"teredo-dst", "teredo"}
	case geneve:
		return []string{"geneve"}
	}
	return nil
}

// MAC reads 6 bytes as the record's uint64 MAC (goflow2's form).
func MAC(b []byte) uint64 {
	_ = b[5]
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
}
