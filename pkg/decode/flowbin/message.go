package flowbin

import (
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// AppendMessage appends m as a frame of the bin stream, with unknown (raw
// protobuf fields, e.g. those of a --mapping) in place of m's own unknown
// fields, which it does not read. wide is Open's guess; the returned
// bool is the guess for the next frame.
//
// The bytes are flowpb's AppendDelimited's; TestAppendMessage holds it to
// that for every field of the descriptor.
func AppendMessage(b []byte, m *flowpb.FlowMessage, unknown []byte, wide bool) ([]byte, bool) {
	return appendMessage(b, m, unknown, wide, true)
}

// AppendDecoded is AppendMessage for a message a decoder filled: it skips
// the enrichment fields (1000 to 1135: names, countries, subscribers;
// biflow_reverse aside), which only flowenrich sets.
func AppendDecoded(b []byte, m *flowpb.FlowMessage, unknown []byte, wide bool) ([]byte, bool) {
	return appendMessage(b, m, unknown, wide, false)
}

func appendMessage(b []byte, m *flowpb.FlowMessage, unknown []byte, wide, enriched bool) ([]byte, bool) {
	b, start := Open(b, wide)
	b = Uint1(b, KeyType, uint64(m.Type))
	b = Uint1(b, KeySamplingRate, m.SamplingRate)
	b = Uint1(b, KeySequenceNum, uint64(m.SequenceNum))
	b = Bytes1(b, KeySrcAddr, m.SrcAddr)
	b = Bytes1(b, KeyDstAddr, m.DstAddr)
	b = Uint1(b, KeyBytes, m.Bytes)
	b = Uint1(b, KeyPackets, m.Packets)
	b = Bytes1(b, KeySamplerAddress, m.SamplerAddress)
	b = Bytes1(b, KeyNextHop, m.NextHop)
	b = Uint1(b, KeyNextHopAs, uint64(m.NextHopAs))
	b = Uint1(b, KeySrcAs, uint64(m.SrcAs))
	b = Uint1(b, KeyDstAs, uint64(m.DstAs))
	b = Uint2(b, KeySrcNet, uint64(m.SrcNet))
	b = Uint2(b, KeyDstNet, uint64(m.DstNet))
	b = Uint2(b, KeyInIf, uint64(m.InIf))
	b = Uint2(b, KeyOutIf, uint64(m.OutIf))
	b = Uint2(b, KeyProto, uint64(m.Proto))
	b = Uint2(b, KeySrcPort, uint64(m.SrcPort))
	b = Uint2(b, KeyDstPort, uint64(m.DstPort))
	b = Uint2(b, KeyIpTos, uint64(m.IpTos))
	b = Uint2(b, KeyForwardingStatus, uint64(m.ForwardingStatus))
	b = Uint2(b, KeyIpTtl, uint64(m.IpTtl))
	b = Uint2(b, KeyTcpFlags, uint64(m.TcpFlags))
	b = Uint2(b, KeySrcMac, m.SrcMac)
	b = Uint2(b, KeyDstMac, m.DstMac)
	b = Uint2(b, KeyVlanId, uint64(m.VlanId))
	b = Uint2(b, KeyEtype, uint64(m.Etype))
	b = Uint2(b, KeyIcmpType, uint64(m.IcmpType))
	b = Uint2(b, KeyIcmpCode, uint64(m.IcmpCode))
	b = Uint2(b, KeySrcVlan, uint64(m.SrcVlan))
	b = Uint2(b, KeyDstVlan, uint64(m.DstVlan))
	b = Uint2(b, KeyFragmentId, uint64(m.FragmentId))
	b = Uint2(b, KeyFragmentOffset, uint64(m.FragmentOffset))
	b = Uint2(b, KeyIpv6FlowLabel, uint64(m.Ipv6FlowLabel))
	b = Uint2(b, KeyIpFlags, uint64(m.IpFlags))
	b = Uint2(b, KeyObservationDomainId, uint64(m.ObservationDomainId))
	b = Uint2(b, KeyObservationPointId, uint64(m.ObservationPointId))
	b = Packed2(b, KeyMplsTtl, m.MplsTtl)
	b = Packed2(b, KeyMplsLabel, m.MplsLabel)
	for _, ip := range m.MplsIp {
		b = BytesItem2(b, KeyMplsIp, ip)
	}
	b = Bytes2(b, KeyBgpNextHop, m.BgpNextHop)
	b = Packed2(b, KeyBgpCommunities, m.BgpCommunities)
	b = Packed2(b, KeyAsPath, m.AsPath)
	b = Packed2(b, KeyLayerStack, m.LayerStack)
	b = Packed2(b, KeyLayerSize, m.LayerSize)
	for _, a := range m.Ipv6RoutingHeaderAddresses {
		b = BytesItem2(b, KeyIpv6RoutingAddrs, a)
	}
	b = Uint2(b, KeyIpv6RoutingSegLeft, uint64(m.Ipv6RoutingHeaderSegLeft))
	b = Uint2(b, KeyTimeReceivedNs, m.TimeReceivedNs)
	b = Uint2(b, KeyTimeFlowStartNs, m.TimeFlowStartNs)
	b = Uint2(b, KeyTimeFlowEndNs, m.TimeFlowEndNs)
	if !enriched {
		if m.BiflowReverse {
			b = append(b, byte(KeyBiflowReverse&0xff), byte(KeyBiflowReverse>>8), 1)
		}
	} else if m.SrcCountry != "" || m.DstCountry != "" || m.SrcAsName != "" || m.DstAsName != "" ||
		m.SrcNetName != "" || m.DstNetName != "" || len(m.SrcNetLabels) > 0 || len(m.DstNetLabels) > 0 ||
		m.SrcNetPrefix != "" || m.DstNetPrefix != "" || m.FlowDirection != 0 || m.BiflowReverse ||
		m.SrcUser != "" || m.DstUser != "" || m.SrcSessionId != "" || m.DstSessionId != "" ||
		m.SrcCallingStationId != "" || m.DstCallingStationId != "" {
		b = appendEnrichment(b, m)
	}
	b = Bytes2(b, KeyPostNatSrcAddr, m.PostNatSrcAddr)
	b = Bytes2(b, KeyPostNatDstAddr, m.PostNatDstAddr)
	b = Uint2(b, KeyPostNaptSrcPort, uint64(m.PostNaptSrcPort))
	b = Uint2(b, KeyPostNaptDstPort, uint64(m.PostNaptDstPort))
	b = Uint2(b, KeyNatEvent, uint64(m.NatEvent))
	b = Uint2(b, KeyNatPortRangeStart, uint64(m.NatPortRangeStart))
	b = Uint2(b, KeyNatPortRangeEnd, uint64(m.NatPortRangeEnd))
	b = Uint2(b, KeyNatInstanceId, uint64(m.NatInstanceId))
	b = Uint2(b, KeyNatPoolId, uint64(m.NatPoolId))
	b = append(b, unknown...)
	return Close(b, start, wide)
}

// appendEnrichment writes the fields 1000-1135, which no decoder sets, with
// pkg/wire's writers (this is not a decoder's path).
func appendEnrichment(b []byte, m *flowpb.FlowMessage) []byte {
	b = wire.AppendStringField(b, flowpb.FieldSrcCountry, m.SrcCountry)
	b = wire.AppendStringField(b, flowpb.FieldDstCountry, m.DstCountry)
	b = wire.AppendStringField(b, flowpb.FieldSrcAsName, m.SrcAsName)
	b = wire.AppendStringField(b, flowpb.FieldDstAsName, m.DstAsName)
	b = wire.AppendStringField(b, flowpb.FieldSrcNetName, m.SrcNetName)
	b = wire.AppendStringField(b, flowpb.FieldDstNetName, m.DstNetName)
	b = wire.AppendStringMapField(b, flowpb.FieldSrcNetLabels, m.SrcNetLabels)
	b = wire.AppendStringMapField(b, flowpb.FieldDstNetLabels, m.DstNetLabels)
	b = wire.AppendStringField(b, flowpb.FieldSrcNetPrefix, m.SrcNetPrefix)
	b = wire.AppendStringField(b, flowpb.FieldDstNetPrefix, m.DstNetPrefix)
	b = wire.AppendVarintField(b, flowpb.FieldFlowDirection, uint64(m.FlowDirection))
	b = wire.AppendBoolField(b, flowpb.FieldBiflowReverse, m.BiflowReverse)
	b = wire.AppendStringField(b, flowpb.FieldSrcUser, m.SrcUser)
	b = wire.AppendStringField(b, flowpb.FieldDstUser, m.DstUser)
	b = wire.AppendStringField(b, flowpb.FieldSrcSessionId, m.SrcSessionId)
	b = wire.AppendStringField(b, flowpb.FieldDstSessionId, m.DstSessionId)
	b = wire.AppendStringField(b, flowpb.FieldSrcCallingStationId, m.SrcCallingStationId)
	return wire.AppendStringField(b, flowpb.FieldDstCallingStationId, m.DstCallingStationId)
}
