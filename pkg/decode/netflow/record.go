package netflow

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// record is the per-record state that needs the whole record before it
// becomes message fields.
type record struct {
	startUp, endUp              uint32
	hasStartUp, hasEndUp        bool
	startDelta, endDelta        uint64
	hasStartDelta, hasEndDelta  bool
	systemInitMs                uint64
	revBytes, revPackets        uint64
	revFlags                    uint32
	totalBytes, totalPackets    uint64
	samplerID                   uint64
	hasSamplerID                bool
	ipVersion                   uint8
	mplsMask                    uint16
	mpls                        [10]uint32
	interval, randomInterval    uint64
	packetInterval, packetSpace uint64
	sampleSize, population      uint64
	probability                 float64
	frameSize                   uint64
	observedNs                  uint64
	hasFrameSize, hasSection    bool
	sectionLen, sectionIPLen    int // the section's length; its IP packet's (with what precedes it)
}

// record decodes one record at the start of b and returns its length;
// ok is false when a variable-length field runs past b.
func (d *Decoder) record(c *pktCtx, p *program, samp *samplingState, b []byte, emit decode.Emit) (int, bool) {
	m := &d.msg
	resetMsg(m, p.section.op != noOp, p.hasNAT)
	d.rec = record{}
	r := &d.rec
	d.unknown, d.mapped, d.secUnknown = d.unknown[:0], d.mapped[:0], d.secUnknown[:0]
	secAt := 0 // where the section's custom fields go: after those of the elements before it, as goflow2 orders them
	if p.section.op != noOp {
		d.section(p, b, r, c.version) // first: the record's own elements then overwrite it
		if d.packet != nil {          // custom fields of the mapping's sflow section
			d.secUnknown = append(d.secUnknown, m.ProtoReflect().GetUnknown()...)
		}
	}
	off := 0
	ops := p.ops // a local: the loop's stores could alias p, which would reload it
	for i := range ops {
		o := &ops[i]
		off += int(o.skip)
		l := int(o.length)
		if o.length == template.VariableLength {
			if off >= len(b) {
				return 0, false
			}
			l = int(b[off])
			off++
			if l == 255 {
				if off+2 > len(b) {
					return 0, false
				}
				l = int(binary.BigEndian.Uint16(b[off:]))
				off += 2
			}
		}
		if off+l > len(b) {
			return 0, false
		}
		v := b[off : off+l]
		off += l
		if o.mapIdx >= 0 && l > 0 {
			if e := d.mapping.Entry(c.version, int(o.mapIdx)); e.Standard {
				d.mapped = append(d.mapped, mappedValue{e, v}) // set once the record is whole
			} else {
				d.unknown = e.Append(d.unknown, v)
				if i < p.section.op {
					secAt = len(d.unknown)
				}
			}
		}
		if o.target == tSkip || l == 0 {
			continue
		}
		switch o.target {
		case tBytes:
			m.Bytes = be(v)
		case tPackets:
			m.Packets = be(v)
		case tProto:
			m.Proto = uint32(be(v))
		case tTOS:
			m.IpTos = uint32(be(v))
		case tTCPFlags:
			m.TcpFlags = uint32(be(v))
		case tSrcPort:
			m.SrcPort = uint32(be(v))
		case tDstPort:
			m.DstPort = uint32(be(v))
		case tSrcAddr4, tSrcAddr6:
			if addrOK(o.target == tSrcAddr6, v) && (len(m.SrcAddr) == 0 || !allZero(v)) {
				m.SrcAddr = append(m.SrcAddr[:0], v...)
			}
		case tDstAddr4, tDstAddr6:
			if addrOK(o.target == tDstAddr6, v) && (len(m.DstAddr) == 0 || !allZero(v)) {
				m.DstAddr = append(m.DstAddr[:0], v...)
			}
		case tSrcMask:
			m.SrcNet = uint32(be(v))
		case tDstMask:
			m.DstNet = uint32(be(v))
		case tInIf:
			m.InIf = uint32(be(v))
		case tOutIf:
			m.OutIf = uint32(be(v))
		case tNextHop:
			if (l == 4 || l == 16) && (len(m.NextHop) == 0 || !allZero(v)) {
				m.NextHop = append(m.NextHop[:0], v...)
			}
		case tBGPNextHop:
			if (l == 4 || l == 16) && (len(m.BgpNextHop) == 0 || !allZero(v)) {
				m.BgpNextHop = append(m.BgpNextHop[:0], v...)
			}
		case tSrcAS:
			m.SrcAs = uint32(be(v))
		case tDstAS:
			m.DstAs = uint32(be(v))
		case tSrcMAC:
			m.SrcMac = be(v)
		case tDstMAC:
			m.DstMac = be(v)
		case tSrcVLAN:
			m.SrcVlan = uint32(be(v))
			m.VlanId = m.SrcVlan
		case tDstVLAN:
			m.DstVlan = uint32(be(v))
		case tVLAN:
			m.VlanId = uint32(be(v))
		case tForwardingStatus:
			m.ForwardingStatus = uint32(be(v))
		case tICMPTypeCode:
			tc := be(v)
			m.IcmpType, m.IcmpCode = uint32(tc>>8)&0xff, uint32(tc)&0xff
		case tICMPType:
			m.IcmpType = uint32(be(v))
		case tICMPCode:
			m.IcmpCode = uint32(be(v))
		case tFlowLabel:
			m.Ipv6FlowLabel = uint32(be(v))
		case tFragmentID:
			m.FragmentId = uint32(be(v))
		case tFragmentOffset:
			m.FragmentOffset = uint32(be(v))
		case tFragmentFlags:
			m.IpFlags = uint32(be(v)) >> 5
		case tTTL:
			m.IpTtl = uint32(be(v))
		case tObservationPointID:
			m.ObservationPointId = uint32(be(v))
		case tStartSec:
			m.TimeFlowStartNs = be(v) * 1e9
		case tEndSec:
			m.TimeFlowEndNs = be(v) * 1e9
		case tStartMs:
			m.TimeFlowStartNs = be(v) * 1e6
		case tEndMs:
			m.TimeFlowEndNs = be(v) * 1e6
		case tStartNTP:
			m.TimeFlowStartNs = ntpTime(v)
		case tEndNTP:
			m.TimeFlowEndNs = ntpTime(v)
		case tPostNATSrc4, tPostNATSrc6:
			if addrOK(o.target == tPostNATSrc6, v) && (len(m.PostNatSrcAddr) == 0 || !allZero(v)) {
				m.PostNatSrcAddr = append(m.PostNatSrcAddr[:0], v...)
			}
		case tPostNATDst4, tPostNATDst6:
			if addrOK(o.target == tPostNATDst6, v) && (len(m.PostNatDstAddr) == 0 || !allZero(v)) {
				m.PostNatDstAddr = append(m.PostNatDstAddr[:0], v...)
			}
		case tPostNAPTSrcPort:
			m.PostNaptSrcPort = uint32(be(v))
		case tPostNAPTDstPort:
			m.PostNaptDstPort = uint32(be(v))
		case tNATEvent:
			m.NatEvent = uint32(be(v))
		case tNATPoolID:
			m.NatPoolId = uint32(be(v))
		case tNATInstanceID:
			m.NatInstanceId = uint32(be(v))
		case tPortRangeStart:
			m.NatPortRangeStart = uint32(be(v))
		case tPortRangeEnd:
			m.NatPortRangeEnd = uint32(be(v))
		default:
			r.setAux(o.target, o.arg, v)
		}
	}
	if len(d.secUnknown) > 0 {
		d.unknown = slices.Insert(d.unknown, secAt, d.secUnknown...)
	}
	if p.options {
		d.options(samp, r, c.receivedNs)
		return off, true
	}
	d.finish(c, p, samp, r)
	for _, mv := range d.mapped { // a mapping overrides what the decoder found
		mv.entry.Set(m, mv.v)
	}
	hasReverse := p.hasReverse && (r.revBytes != 0 || r.revPackets != 0)
	// A biflow whose forward direction saw nothing yields only its reverse.
	if !hasReverse || m.Bytes != 0 || m.Packets != 0 {
		d.put(emit, d.unknown)
	}
	if hasReverse {
		reverse(m, r)
		d.put(emit, d.unknown)
	}
	return off, true
}

// mappedValue is an element a mapping sends to a flow.proto field.
type mappedValue struct {
	entry *mapping.Entry
	v     []byte
}

// setAux keeps a field that becomes message fields only once the whole
// record is read (counters' fallbacks, times, sampling, MPLS, IP version).
func (r *record) setAux(t target, arg uint8, v []byte) {
	switch t {
	case tTotalBytes:
		r.totalBytes = be(v)
	case tTotalPackets:
		r.totalPackets = be(v)
	case tRevBytes:
		r.revBytes = be(v)
	case tRevPackets:
		r.revPackets = be(v)
	case tRevTCPFlags:
		r.revFlags = uint32(be(v))
	case tIPVersion:
		r.ipVersion = uint8(be(v))
	case tMPLS:
		r.mpls[arg] = uint32(be(v)) >> 4
		r.mplsMask |= 1 << arg
	case tStartDeltaUs:
		r.startDelta, r.hasStartDelta = be(v), true
	case tEndDeltaUs:
		r.endDelta, r.hasEndDelta = be(v), true
	case tStartUptime:
		r.startUp, r.hasStartUp = uint32(be(v)), true
	case tEndUptime:
		r.endUp, r.hasEndUp = uint32(be(v)), true
	case tSystemInitMs:
		r.systemInitMs = be(v)
	case tSamplingInterval:
		r.interval = be(v)
	case tSamplerRandomInterval:
		r.randomInterval = be(v)
	case tSamplingPacketInterval:
		r.packetInterval = be(v)
	case tSamplingPacketSpace:
		r.packetSpace = be(v)
	case tSamplingSize:
		r.sampleSize = be(v)
	case tSamplingPopulation:
		r.population = be(v)
	case tSamplingProbability:
		r.probability = float(v)
	case tSamplerID:
		r.samplerID, r.hasSamplerID = be(v), true
	case tFrameSize:
		r.frameSize, r.hasFrameSize = be(v), true
	case tObsSec:
		r.observedNs = be(v) * 1e9
	case tObsMs:
		r.observedNs = be(v) * 1e6
	case tObsNTP:
		r.observedNs = ntpTime(v)
	}
}

// section decodes the record's packet section into the message.
func (d *Decoder) section(p *program, b []byte, r *record, version uint16) {
	s := &p.section
	v := p.locate(b, s.op)
	if len(v) == 0 {
		return
	}
	if s.frameType != noOp {
		if t := p.locate(b, s.frameType); len(t) > 0 && be(t) != dataLinkEthernet {
			return // an 802.11 frame, or a type unknown to the parser
		}
	}
	if s.offset != noOp {
		if o := p.locate(b, s.offset); len(o) > 0 && be(o) != 0 {
			return // not the frame's first bytes: where its layers start is unknown
		}
	}
	first := s.first
	if first == packet.None {
		switch v[0] >> 4 {
		case 4:
			first = packet.IPv4
		case 6:
			first = packet.IPv6
		default:
			return
		}
	}
	opts := d.packet
	if version != 10 { // as goflow2: the sflow section applies to IPFIX sections only
		opts = nil
	}
	info := packet.ParseWith(&d.msg, v, first, sectionMaxLabels, opts)
	r.hasSection, r.sectionLen = true, len(v)
	if info.IPLength > 0 {
		r.sectionIPLen = info.IPOffset + info.IPLength
	}
}

// float reads an IEEE 754 float64, or float32 in reduced-size encoding.
func float(v []byte) float64 {
	switch len(v) {
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(v))
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
	}
	return 0
}

func addrOK(v6 bool, v []byte) bool {
	if v6 {
		return len(v) == 16
	}
	return len(v) == 4
}

// ntpTime converts an NTP timestamp (dateTimeMicroseconds and
// dateTimeNanoseconds) to Unix ns. pmacct has been seen sending these
// elements 16 bytes long: seconds and fraction then sit in the first 8.
func ntpTime(v []byte) uint64 {
	if len(v) == 16 {
		v = v[:8]
	}
	if len(v) != 8 {
		return 0
	}
	t := binary.BigEndian.Uint64(v)
	secs := t >> 32
	if secs < ntpUnixOffset {
		return 0
	}
	return (secs-ntpUnixOffset)*1e9 + (t&0xffffffff)*1e9>>32
}

// ntpUnixOffset is 1970-01-01 in seconds since 1900-01-01.
const ntpUnixOffset = 2208988800

// finish turns the collected state into message fields.
func (d *Decoder) finish(c *pktCtx, p *program, samp *samplingState, r *record) {
	m := &d.msg
	m.Type = c.ftype
	m.TimeReceivedNs = c.receivedNs
	m.SequenceNum = c.seq
	m.ObservationDomainId = c.domain
	m.SamplerAddress = append(m.SamplerAddress[:0], c.sampler[:c.samplerLen]...)
	m.Etype = etypeOf(r.ipVersion, len(m.SrcAddr), len(m.DstAddr), m.Etype)
	m.Bytes, m.Packets = r.counters(m.Bytes, m.Packets)
	if r.mplsMask != 0 {
		// The record's own labels replace the section's (whose TTLs then
		// no longer belong to them).
		m.MplsLabel, m.MplsTtl = append(m.MplsLabel[:0], r.labels()...), m.MplsTtl[:0]
	}
	if p.hasTimes {
		m.TimeFlowStartNs, m.TimeFlowEndNs = flowTimes(c, samp, r, m.TimeFlowStartNs, m.TimeFlowEndNs)
	}
	m.SamplingRate = r.samplingRate(p, samp)
	if len(d.unknown) > 0 {
		m.ProtoReflect().SetUnknown(protoreflect.RawFields(d.unknown))
	}
}

// etypeOf is the record's etype: from its IP version element, else from
// its addresses' length, else cur (what a packet section said).
func etypeOf(ipVersion uint8, srcLen, dstLen int, cur uint32) uint32 {
	switch ipVersion {
	case 4:
		return 0x800
	case 6:
		return 0x86dd
	}
	switch {
	case srcLen == 16 || dstLen == 16:
		return 0x86dd
	case srcLen == 4 || dstLen == 4:
		return 0x800
	}
	return cur
}

// counters applies the fallbacks of the byte and packet counts: the total
// counters, then for a record of one sampled packet (RFC 7133, without
// counters) its frame size or section length, and one packet.
func (r *record) counters(bytes, packets uint64) (uint64, uint64) {
	if bytes == 0 && r.totalBytes != 0 {
		bytes = r.totalBytes
	}
	if packets == 0 && r.totalPackets != 0 {
		packets = r.totalPackets
	}
	if r.hasSection || r.hasFrameSize {
		if bytes == 0 {
			switch {
			case r.frameSize != 0:
				bytes = r.frameSize
			case r.hasSection:
				bytes = uint64(max(r.sectionLen, r.sectionIPLen))
			}
		}
		if packets == 0 {
			packets = 1
		}
	}
	return bytes, packets
}

// labels are the record's MPLS labels, up to the deepest one it carries.
func (r *record) labels() []uint32 { return r.mpls[:bits.Len16(r.mplsMask)] }

// samplingRate is the record's own rate, else its sampler's, else the
// exporter's (its domain's default).
func (r *record) samplingRate(p *program, samp *samplingState) uint64 {
	var rate uint64
	if p.hasRate {
		rate = r.rate()
	}
	if rate == 0 && samp != nil {
		rate = samp.rate
		if r.hasSamplerID && samp.byID != nil {
			if x, ok := samp.byID[r.samplerID]; ok {
				rate = x
			}
		}
	}
	return rate
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// rate is the 1-in-N sampling rate a record's sampling elements give, 0
// when it has none: systematic count-based (305/306, RFC 5477), random
// n-out-of-N (309/310), a probability (311), then the older random
// interval (50) and interval (34).
func (r *record) rate() uint64 {
	switch {
	case r.packetInterval != 0:
		return (r.packetInterval + r.packetSpace) / r.packetInterval
	case r.sampleSize != 0 && r.population != 0:
		return (r.population + r.sampleSize/2) / r.sampleSize
	case r.probability > 0 && r.probability <= 1:
		return uint64(math.Round(1 / r.probability))
	case r.randomInterval != 0:
		return r.randomInterval
	case r.interval != 0:
		return r.interval
	}
	return 0
}

// options records what an options data record says about sampling.
func (d *Decoder) options(samp *samplingState, r *record, nowNs uint64) {
	if samp == nil {
		return
	}
	changed := false
	if r.systemInitMs != 0 && r.systemInitMs != samp.systemInitMs {
		samp.systemInitMs, changed = r.systemInitMs, true
	}
	if samp.set(r.rate(), r.samplerID, r.hasSamplerID) {
		changed = true
	}
	d.sampling.publish(samp, changed, nowNs)
}

// reverse turns an emitted forward biflow record into its reverse half.
func reverse(m *flowpb.FlowMessage, r *record) {
	m.SrcAddr, m.DstAddr = m.DstAddr, m.SrcAddr
	m.SrcPort, m.DstPort = m.DstPort, m.SrcPort
	m.SrcAs, m.DstAs = m.DstAs, m.SrcAs
	m.SrcNet, m.DstNet = m.DstNet, m.SrcNet
	m.InIf, m.OutIf = m.OutIf, m.InIf
	m.SrcMac, m.DstMac = m.DstMac, m.SrcMac
	m.SrcVlan, m.DstVlan = m.DstVlan, m.SrcVlan
	m.Bytes, m.Packets = r.revBytes, r.revPackets
	m.TcpFlags = r.revFlags
	m.PostNatSrcAddr, m.PostNatDstAddr = m.PostNatDstAddr, m.PostNatSrcAddr
	m.PostNaptSrcPort, m.PostNaptDstPort = m.PostNaptDstPort, m.PostNaptSrcPort
	m.BiflowReverse = true
}

// resetMsg clears m keeping its slices' capacity, like ResetVT without the
// reflection bookkeeping of Reset (measurable per record). The slices only
// packet sections (layers) and NAT elements fill are kept only for the
// programs that fill them: keeping a slice costs a write per record.
func resetMsg(m *flowpb.FlowMessage, layers, nat bool) {
	src, dst, sampler, nh, bgp, labels := m.SrcAddr[:0], m.DstAddr[:0], m.SamplerAddress[:0], m.NextHop[:0], m.BgpNextHop[:0], m.MplsLabel[:0]
	if !layers && !nat {
		*m = flowpb.FlowMessage{}
		m.SrcAddr, m.DstAddr, m.SamplerAddress, m.NextHop, m.BgpNextHop, m.MplsLabel = src, dst, sampler, nh, bgp, labels
		return
	}
	ttls, stack, sizes, srh := m.MplsTtl[:0], m.LayerStack[:0], m.LayerSize[:0], m.Ipv6RoutingHeaderAddresses[:0]
	natSrc, natDst := m.PostNatSrcAddr[:0], m.PostNatDstAddr[:0]
	*m = flowpb.FlowMessage{}
	m.SrcAddr, m.DstAddr, m.SamplerAddress, m.NextHop, m.BgpNextHop, m.MplsLabel = src, dst, sampler, nh, bgp, labels
	if layers {
		m.MplsTtl, m.LayerStack, m.LayerSize, m.Ipv6RoutingHeaderAddresses = ttls, stack, sizes, srh
	}
	if nat {
		m.PostNatSrcAddr, m.PostNatDstAddr = natSrc, natDst
	}
}

// flowTimes applies the record's relative and event times to its flow
// start and end.
func flowTimes(c *pktCtx, samp *samplingState, r *record, start, end uint64) (uint64, uint64) {
	exportNs := uint64(c.exportSecs) * 1e9
	if r.hasStartDelta {
		start = sub(exportNs, r.startDelta*1e3)
	}
	if r.hasEndDelta {
		end = sub(exportNs, r.endDelta*1e3)
	}
	if r.hasStartUp || r.hasEndUp {
		if c.version == 9 {
			if r.hasStartUp {
				start = uptimeTime(exportNs, c.uptimeMs, r.startUp)
			}
			if r.hasEndUp {
				end = uptimeTime(exportNs, c.uptimeMs, r.endUp)
			}
		} else {
			init := r.systemInitMs
			if init == 0 && samp != nil {
				init = samp.systemInitMs
			}
			if init != 0 {
				if r.hasStartUp {
					start = (init + uint64(r.startUp)) * 1e6
				}
				if r.hasEndUp {
					end = (init + uint64(r.endUp)) * 1e6
				}
			}
		}
	}
	// An event's one instant (NAT events carry no flow times).
	if r.observedNs != 0 {
		if start == 0 {
			start = r.observedNs
		}
		if end == 0 {
			end = r.observedNs
		}
	}
	return start, end
}
