package framing

import (
	"fmt"
	"math"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// JSONError says where a JSON line stopped making sense.
type JSONError struct {
	Line   int // 1-based line of a stream; 0 from ParseJSON
	Column int // 1-based byte column
	Reason string
}

func (e *JSONError) Error() string {
	if e.Line > 0 { // inside a FrameError, which already says "framing:"
		return fmt.Sprintf("line %d: invalid JSON: %s at column %d", e.Line, e.Reason, e.Column)
	}
	return fmt.Sprintf("framing: invalid JSON: %s at column %d", e.Reason, e.Column)
}

func (e *JSONError) Unwrap() error { return ErrBadJSON }

// maxDepth bounds the nesting of skipped values: the skipper recurses.
const maxDepth = 64

// ParseJSON resets m and fills it from one JSON object: a line written by
// AppendJSON or by goflow2 v2 (names or numbers for type, etype, proto,
// layer_stack and flow_direction; address text; MAC text; src_net/dst_net
// as "addr/len" or a number; uint64 fields also as decimal strings and
// time_*_ns also as RFC 3339 text). Keys it does not know are skipped;
// those named in opts.Custom are appended to m's unknown fields.
//
// Errors are *JSONError (errors.Is ErrBadJSON); m then holds what was read
// before the error. Like vtprotobuf's UnmarshalVT, ParseJSON reuses the
// capacity of m's byte slices, lists and label maps, so it does not
// allocate once m has grown; do not pass a message whose slices share
// memory with data you still need.
func ParseJSON(line []byte, m *flowpb.FlowMessage, opts *JSONOptions) error {
	return parseJSON(line, m, opts, false)
}

// parseJSON with alias set makes m's strings point into line, as
// UnmarshalVTUnsafe does for frames.
func parseJSON(line []byte, m *flowpb.FlowMessage, opts *JSONOptions, alias bool) error {
	p := jsonParser{b: line, m: m, opts: opts, alias: alias,
		srcLabels: m.SrcNetLabels, dstLabels: m.DstNetLabels}
	custom := opts != nil && len(opts.Custom) > 0
	if custom {
		p.unknown = m.ProtoReflect().GetUnknown()[:0]
	}
	m.ResetVT()
	err := p.object()
	if custom && len(p.unknown) > 0 {
		m.ProtoReflect().SetUnknown(p.unknown)
	}
	return err
}

type jsonParser struct {
	b     []byte
	i     int
	m     *flowpb.FlowMessage
	opts  *JSONOptions
	alias bool

	// kept from m before its reset, for reuse
	srcLabels, dstLabels map[string]string
	unknown              []byte
}

func (p *jsonParser) fail(at int, reason string) error {
	return &JSONError{Column: at + 1, Reason: reason}
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *jsonParser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) object() error {
	p.ws()
	if !p.eat('{') {
		return p.fail(p.i, "expected '{'")
	}
	p.ws()
	if !p.eat('}') {
		var buf [64]byte // for keys with escapes
		for {
			p.ws()
			if p.peek() != '"' {
				return p.fail(p.i, "expected a key")
			}
			key, esc, err := p.str()
			if err != nil {
				return err
			}
			if esc {
				key = decodeString(buf[:0], key)
			}
			p.ws()
			if !p.eat(':') {
				return p.fail(p.i, "expected ':' after a key")
			}
			p.ws()
			if err := p.field(key); err != nil {
				if e, ok := err.(*JSONError); ok {
					e.Reason += fmt.Sprintf(" in %q", string(key))
				}
				return err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				break
			}
			return p.fail(p.i, "expected ',' or '}'")
		}
	}
	p.ws()
	if p.i < len(p.b) {
		return p.fail(p.i, "unexpected data after the object")
	}
	return nil
}

func (p *jsonParser) field(key []byte) error {
	m := p.m
	switch string(key) {
	case "type":
		return p.enum((*int32)(&m.Type), flowTypeNumber)
	case "time_received_ns":
		return p.time(&m.TimeReceivedNs)
	case "sequence_num":
		return p.u32(&m.SequenceNum)
	case "sampling_rate":
		return p.u64(&m.SamplingRate)
	case "sampler_address":
		return p.addr(&m.SamplerAddress)
	case "time_flow_start_ns":
		return p.time(&m.TimeFlowStartNs)
	case "time_flow_end_ns":
		return p.time(&m.TimeFlowEndNs)
	case "bytes":
		return p.u64(&m.Bytes)
	case "packets":
		return p.u64(&m.Packets)
	case "src_addr":
		return p.addr(&m.SrcAddr)
	case "dst_addr":
		return p.addr(&m.DstAddr)
	case "etype":
		return p.named(&m.Etype, etypeNumber, math.MaxUint32)
	case "proto":
		return p.named(&m.Proto, protoNumber, math.MaxUint32)
	case "src_port":
		return p.u32(&m.SrcPort)
	case "dst_port":
		return p.u32(&m.DstPort)
	case "in_if":
		return p.u32(&m.InIf)
	case "out_if":
		return p.u32(&m.OutIf)
	case "src_mac":
		return p.mac(&m.SrcMac)
	case "dst_mac":
		return p.mac(&m.DstMac)
	case "src_vlan":
		return p.u32(&m.SrcVlan)
	case "dst_vlan":
		return p.u32(&m.DstVlan)
	case "vlan_id":
		return p.u32(&m.VlanId)
	case "ip_tos":
		return p.u32(&m.IpTos)
	case "forwarding_status":
		return p.u32(&m.ForwardingStatus)
	case "ip_ttl":
		return p.u32(&m.IpTtl)
	case "ip_flags":
		return p.u32(&m.IpFlags)
	case "tcp_flags":
		return p.u32(&m.TcpFlags)
	case "icmp_type":
		return p.u32(&m.IcmpType)
	case "icmp_code":
		return p.u32(&m.IcmpCode)
	case "ipv6_flow_label":
		return p.u32(&m.Ipv6FlowLabel)
	case "fragment_id":
		return p.u32(&m.FragmentId)
	case "fragment_offset":
		return p.u32(&m.FragmentOffset)
	case "src_as":
		return p.u32(&m.SrcAs)
	case "dst_as":
		return p.u32(&m.DstAs)
	case "next_hop":
		return p.addr(&m.NextHop)
	case "next_hop_as":
		return p.u32(&m.NextHopAs)
	case "src_net":
		return p.net(&m.SrcNet)
	case "dst_net":
		return p.net(&m.DstNet)
	case "bgp_next_hop":
		return p.addr(&m.BgpNextHop)
	case "bgp_communities":
		return p.uints(&m.BgpCommunities)
	case "as_path":
		return p.uints(&m.AsPath)
	case "mpls_ttl":
		return p.uints(&m.MplsTtl)
	case "mpls_label":
		return p.uints(&m.MplsLabel)
	case "mpls_ip":
		return p.addrs(&m.MplsIp)
	case "observation_domain_id":
		return p.u32(&m.ObservationDomainId)
	case "observation_point_id":
		return p.u32(&m.ObservationPointId)
	case "layer_stack":
		return p.layers(&m.LayerStack)
	case "layer_size":
		return p.uints(&m.LayerSize)
	case "ipv6_routing_header_addresses":
		return p.addrs(&m.Ipv6RoutingHeaderAddresses)
	case "ipv6_routing_header_seg_left":
		return p.u32(&m.Ipv6RoutingHeaderSegLeft)
	case "src_country":
		return p.string(&m.SrcCountry)
	case "dst_country":
		return p.string(&m.DstCountry)
	case "src_as_name":
		return p.string(&m.SrcAsName)
	case "dst_as_name":
		return p.string(&m.DstAsName)
	case "src_net_name":
		return p.string(&m.SrcNetName)
	case "dst_net_name":
		return p.string(&m.DstNetName)
	case "src_net_labels":
		return p.labels(&m.SrcNetLabels, p.srcLabels)
	case "dst_net_labels":
		return p.labels(&m.DstNetLabels, p.dstLabels)
	case "src_net_prefix":
		return p.string(&m.SrcNetPrefix)
	case "dst_net_prefix":
		return p.string(&m.DstNetPrefix)
	case "flow_direction":
		return p.enum((*int32)(&m.FlowDirection), directionNumber)
	case "biflow_reverse":
		return p.bool(&m.BiflowReverse)
	}
	if p.opts != nil {
		for _, f := range p.opts.Custom {
			if f.Name == string(key) {
				return p.custom(f)
			}
		}
	}
	return p.skip(0)
}
