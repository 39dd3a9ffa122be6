package framing

import (
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// Render says how a custom field's value is written in JSON.
type Render int

const (
	// RenderUint writes a varint (or fixed32/fixed64) as a JSON number.
	RenderUint Render = iota
	// RenderHex writes bytes as a lower-case hex string, goflow2's default
	// for bytes.
	RenderHex
	// RenderIP writes 4 or 16 bytes as address text, anything else as "".
	RenderIP
	// RenderString writes bytes as a JSON string.
	RenderString
)

// CustomField is a field outside flow.proto, carried in the message's
// unknown fields (as goflow2's formatter.protobuf mapping does).
type CustomField struct {
	Name   string
	Number protowire.Number
	Render Render
}

// JSONOptions tunes the JSON form. A nil *JSONOptions means the defaults.
type JSONOptions struct {
	// Custom fields are written after all the others, in this order, when
	// the message carries them. A field present several times is written
	// once, with its last value (protobuf's rule for scalars). A name that
	// is also a standard field's name is read as the standard field.
	Custom []CustomField
}

// AppendJSONLine is AppendJSON followed by a newline.
func AppendJSONLine(dst []byte, m *flowpb.FlowMessage, opts *JSONOptions) []byte {
	return append(AppendJSON(dst, m, opts), '\n')
}

// AppendJSON appends m as one JSON object in goflow2 v2.2's layout (checked
// byte for byte against goflow2 v2.2.6): the same field names, in the same
// order, with the same renderings (addresses as text, type, etype and
// proto as names, MACs as aa:bb:cc:dd:ee:ff, src_net/dst_net as the masked
// address prefix). The enrichment fields follow, each only when set, then
// the custom fields of opts. It does not allocate beyond growing dst.
//
// goflow2's renderings lose a few values, and so do these: an etype
// without a name is written "" (as goflow2's map lookup gives); proto uses
// IANA's keywords, and 146-255 and beyond only as "unassigned",
// "experimental", "reserved" or "unknown"; a src_net/dst_net that cannot
// form a prefix (no 4- or 16-byte address, or more bits than the address
// has) is goflow2's "invalid Prefix"; MACs keep their low 48 bits.
func AppendJSON(dst []byte, m *flowpb.FlowMessage, opts *JSONOptions) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendEnum(dst, flowTypeName(m.Type), int64(m.Type))
	dst = appendUintField(dst, `,"time_received_ns":`, m.TimeReceivedNs)
	dst = appendUintField(dst, `,"sequence_num":`, uint64(m.SequenceNum))
	dst = appendUintField(dst, `,"sampling_rate":`, m.SamplingRate)
	dst = appendAddrField(dst, `,"sampler_address":`, m.SamplerAddress)
	dst = appendUintField(dst, `,"time_flow_start_ns":`, m.TimeFlowStartNs)
	dst = appendUintField(dst, `,"time_flow_end_ns":`, m.TimeFlowEndNs)
	dst = appendUintField(dst, `,"bytes":`, m.Bytes)
	dst = appendUintField(dst, `,"packets":`, m.Packets)
	dst = appendAddrField(dst, `,"src_addr":`, m.SrcAddr)
	dst = appendAddrField(dst, `,"dst_addr":`, m.DstAddr)
	dst = append(dst, `,"etype":"`...)
	dst = append(dst, etypeName(m.Etype)...)
	dst = append(dst, `","proto":"`...)
	dst = append(dst, protoName(m.Proto)...)
	dst = append(dst, '"')
	dst = appendUintField(dst, `,"src_port":`, uint64(m.SrcPort))
	dst = appendUintField(dst, `,"dst_port":`, uint64(m.DstPort))
	dst = appendUintField(dst, `,"in_if":`, uint64(m.InIf))
	dst = appendUintField(dst, `,"out_if":`, uint64(m.OutIf))
	dst = appendMAC(append(dst, `,"src_mac":`...), m.SrcMac)
	dst = appendMAC(append(dst, `,"dst_mac":`...), m.DstMac)
	dst = appendUintField(dst, `,"src_vlan":`, uint64(m.SrcVlan))
	dst = appendUintField(dst, `,"dst_vlan":`, uint64(m.DstVlan))
	dst = appendUintField(dst, `,"vlan_id":`, uint64(m.VlanId))
	dst = appendUintField(dst, `,"ip_tos":`, uint64(m.IpTos))
	dst = appendUintField(dst, `,"forwarding_status":`, uint64(m.ForwardingStatus))
	dst = appendUintField(dst, `,"ip_ttl":`, uint64(m.IpTtl))
	dst = appendUintField(dst, `,"ip_flags":`, uint64(m.IpFlags))
	dst = appendUintField(dst, `,"tcp_flags":`, uint64(m.TcpFlags))
	dst = appendUintField(dst, `,"icmp_type":`, uint64(m.IcmpType))
	dst = appendUintField(dst, `,"icmp_code":`, uint64(m.IcmpCode))
	dst = appendUintField(dst, `,"ipv6_flow_label":`, uint64(m.Ipv6FlowLabel))
	dst = appendUintField(dst, `,"fragment_id":`, uint64(m.FragmentId))
	dst = appendUintField(dst, `,"fragment_offset":`, uint64(m.FragmentOffset))
	dst = appendUintField(dst, `,"src_as":`, uint64(m.SrcAs))
	dst = appendUintField(dst, `,"dst_as":`, uint64(m.DstAs))
	dst = appendAddrField(dst, `,"next_hop":`, m.NextHop)
	dst = appendUintField(dst, `,"next_hop_as":`, uint64(m.NextHopAs))
	dst = appendNet(append(dst, `,"src_net":`...), m.SrcAddr, m.SrcNet)
	dst = appendNet(append(dst, `,"dst_net":`...), m.DstAddr, m.DstNet)
	dst = appendAddrField(dst, `,"bgp_next_hop":`, m.BgpNextHop)
	dst = appendUints(append(dst, `,"bgp_communities":`...), m.BgpCommunities)
	dst = appendUints(append(dst, `,"as_path":`...), m.AsPath)
	dst = appendUints(append(dst, `,"mpls_ttl":`...), m.MplsTtl)
	dst = appendUints(append(dst, `,"mpls_label":`...), m.MplsLabel)
	dst = appendAddrs(append(dst, `,"mpls_ip":`...), m.MplsIp)
	dst = appendUintField(dst, `,"observation_domain_id":`, uint64(m.ObservationDomainId))
	dst = appendUintField(dst, `,"observation_point_id":`, uint64(m.ObservationPointId))
	dst = append(dst, `,"layer_stack":[`...)
	for i, l := range m.LayerStack {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendEnum(dst, layerName(l), int64(l))
	}
	dst = appendUints(append(dst, `],"layer_size":`...), m.LayerSize)
	dst = appendAddrs(append(dst, `,"ipv6_routing_header_addresses":`...), m.Ipv6RoutingHeaderAddresses)
	dst = appendUintField(dst, `,"ipv6_routing_header_seg_left":`, uint64(m.Ipv6RoutingHeaderSegLeft))
	dst = appendEnrichment(dst, m)
	if opts != nil && len(opts.Custom) > 0 {
		unknown := m.ProtoReflect().GetUnknown()
		for _, f := range opts.Custom {
			dst = appendCustom(dst, unknown, f)
		}
	}
	return append(dst, '}')
}

// appendEnrichment writes flowpipe's own fields, each only when set, so that
// records nobody enriched look exactly like goflow2's.
func appendEnrichment(dst []byte, m *flowpb.FlowMessage) []byte {
	dst = appendStringField(dst, `,"src_country":`, m.SrcCountry)
	dst = appendStringField(dst, `,"dst_country":`, m.DstCountry)
	dst = appendStringField(dst, `,"src_as_name":`, m.SrcAsName)
	dst = appendStringField(dst, `,"dst_as_name":`, m.DstAsName)
	dst = appendStringField(dst, `,"src_net_name":`, m.SrcNetName)
	dst = appendStringField(dst, `,"dst_net_name":`, m.DstNetName)
	if len(m.SrcNetLabels) > 0 {
		dst = appendLabels(append(dst, `,"src_net_labels":`...), m.SrcNetLabels)
	}
	if len(m.DstNetLabels) > 0 {
		dst = appendLabels(append(dst, `,"dst_net_labels":`...), m.DstNetLabels)
	}
	dst = appendStringField(dst, `,"src_net_prefix":`, m.SrcNetPrefix)
	dst = appendStringField(dst, `,"dst_net_prefix":`, m.DstNetPrefix)
	if m.FlowDirection != 0 {
		dst = appendEnum(append(dst, `,"flow_direction":`...), directionName(m.FlowDirection), int64(m.FlowDirection))
	}
	if m.BiflowReverse {
		dst = append(dst, `,"biflow_reverse":true`...)
	}
	return dst
}

func appendUintField(dst []byte, key string, v uint64) []byte {
	return strconv.AppendUint(append(dst, key...), v, 10)
}

func appendStringField(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	return appendQuoted(append(dst, key...), v)
}

func appendAddrField(dst []byte, key string, b []byte) []byte {
	return appendAddr(append(dst, key...), b)
}

// appendEnum writes an enum's name, or its number as a string when it has
// none, as protobuf-go's String() (which goflow2 prints) does.
func appendEnum(dst []byte, name string, v int64) []byte {
	dst = append(dst, '"')
	if name == "" {
		dst = strconv.AppendInt(dst, v, 10)
	} else {
		dst = append(dst, name...)
	}
	return append(dst, '"')
}

// appendAddr writes a quoted address; like goflow2's RenderIP, "" for
// anything but 4 or 16 bytes.
func appendAddr(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	switch len(b) {
	case 4:
		dst = netip.AddrFrom4([4]byte(b)).AppendTo(dst)
	case 16:
		dst = netip.AddrFrom16([16]byte(b)).AppendTo(dst)
	}
	return append(dst, '"')
}

func appendAddrs(dst []byte, list [][]byte) []byte {
	dst = append(dst, '[')
	for i, b := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendAddr(dst, b)
	}
	return append(dst, ']')
}

func appendUints(dst []byte, list []uint32) []byte {
	dst = append(dst, '[')
	for i, v := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(v), 10)
	}
	return append(dst, ']')
}

const hexDigits = "0123456789abcdef"

// appendMAC writes the low 48 bits as net.HardwareAddr.String does.
func appendMAC(dst []byte, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	dst = append(dst, '"')
	for i := 2; i < 8; i++ {
		if i > 2 {
			dst = append(dst, ':')
		}
		dst = append(dst, hexDigits[b[i]>>4], hexDigits[b[i]&0xf])
	}
	return append(dst, '"')
}

// appendNet writes the address masked to bits, as goflow2's NetworkRenderer
// does with netip.Addr.Prefix, including its "invalid Prefix".
func appendNet(dst []byte, addr []byte, bits uint32) []byte {
	var a netip.Addr
	switch len(addr) {
	case 4:
		a = netip.AddrFrom4([4]byte(addr))
	case 16:
		a = netip.AddrFrom16([16]byte(addr))
	}
	dst = append(dst, '"')
	p, _ := a.Prefix(int(min(bits, 255)))
	if p.IsValid() {
		dst = p.AppendTo(dst)
	} else {
		dst = append(dst, "invalid Prefix"...)
	}
	return append(dst, '"')
}

// appendLabels writes a label map with its keys in order, so that equal
// records give equal lines. Small maps are ordered by repeated scans, which
// needs no memory; large ones are rare enough to sort.
func appendLabels(dst []byte, labels map[string]string) []byte {
	dst = append(dst, '{')
	if len(labels) > 16 {
		return appendSortedLabels(dst, labels)
	}
	var last string
	for i := range len(labels) {
		var next string
		found := false
		for k := range labels {
			if (i == 0 || k > last) && (!found || k < next) {
				next, found = k, true
			}
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, next)
		dst = appendQuoted(append(dst, ':'), labels[next])
		last = next
	}
	return append(dst, '}')
}

func appendSortedLabels(dst []byte, labels map[string]string) []byte {
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, k)
		dst = appendQuoted(append(dst, ':'), labels[k])
	}
	return append(dst, '}')
}

// appendCustom writes f's last occurrence in the unknown fields, if any.
func appendCustom(dst []byte, unknown []byte, f CustomField) []byte {
	var val []byte
	var typ protowire.Type
	found := false
	for len(unknown) > 0 {
		num, t, n := protowire.ConsumeTag(unknown)
		if n < 0 {
			break
		}
		vn := protowire.ConsumeFieldValue(num, t, unknown[n:])
		if vn < 0 {
			break
		}
		if num == f.Number {
			val, typ, found = unknown[n:n+vn], t, true
		}
		unknown = unknown[n+vn:]
	}
	if !found {
		return dst
	}
	var u uint64
	var b []byte
	switch {
	case typ == protowire.VarintType && f.Render == RenderUint:
		u, _ = protowire.ConsumeVarint(val)
	case typ == protowire.Fixed32Type && f.Render == RenderUint:
		v, _ := protowire.ConsumeFixed32(val)
		u = uint64(v)
	case typ == protowire.Fixed64Type && f.Render == RenderUint:
		u, _ = protowire.ConsumeFixed64(val)
	case typ == protowire.BytesType && f.Render != RenderUint:
		b, _ = protowire.ConsumeBytes(val)
	default:
		return dst // a wire type the rendering cannot show
	}
	dst = appendQuoted(append(dst, ','), f.Name)
	dst = append(dst, ':')
	switch f.Render {
	case RenderUint:
		return strconv.AppendUint(dst, u, 10)
	case RenderHex:
		dst = append(dst, '"')
		for _, c := range b {
			dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
		}
		return append(dst, '"')
	case RenderIP:
		return appendAddr(dst, b)
	default:
		return appendQuoted(dst, unsafeString(b))
	}
}

// appendQuoted writes s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// written as the character itself so that reading the line back and
// writing it again gives the same bytes.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// unsafeString views b as a string without copying; the caller must not
// keep the string past b's lifetime nor let b change while using it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
