package flowbin

import "github.com/flowpipe/flowpipe/pkg/flowpb"

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
// the enrichment fields (1000 to 1135, biflow_reverse aside), which only
// flowenrich sets.
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
			b = append(b, byte(KeyBiflowReverse), byte(KeyBiflowReverse>>8), 1)
		}
	} else if m.SrcCountry != "" || m.DstCountry != "" || m.SrcAsName != "" || m.DstAsName != "" ||
		m.SrcNetName != "" || m.DstNetName != "" || len(m.SrcNetLabels) > 0 || len(m.DstNetLabels) > 0 ||
		m.SrcNetPrefix != "" || m.DstNetPrefix != "" || m.FlowDirection != 0 || m.BiflowReverse ||
		m.SrcUser != "" || m.DstUser != "" || m.SrcSessionId != "" || m.DstSessionId != "" ||
		m.SrcCallingStationId != "" || m.DstCallingStationId != "" {
		b = appendEnrichment(b, m)
	}
	b = Bytes2(b, keyPostNatSrcAddr, m.PostNatSrcAddr)
	b = Bytes2(b, keyPostNatDstAddr, m.PostNatDstAddr)
	b = Uint2(b, keyPostNaptSrcPort, uint64(m.PostNaptSrcPort))
	b = Uint2(b, keyPostNaptDstPort, uint64(m.PostNaptDstPort))
	b = Uint2(b, keyNatEvent, uint64(m.NatEvent))
	b = Uint2(b, keyNatPortRangeStart, uint64(m.NatPortRangeStart))
	b = Uint2(b, keyNatPortRangeEnd, uint64(m.NatPortRangeEnd))
	b = Uint2(b, keyNatInstanceId, uint64(m.NatInstanceId))
	b = Uint2(b, keyNatPoolId, uint64(m.NatPoolId))
	b = append(b, unknown...)
	return Close(b, start, wide)
}

// Keys of the fields past 1000. Decoders set only the NAT ones and
// biflow_reverse; the enrichment fields are here so that AppendMessage
// encodes any message.
var (
	keySrcCountry          = Key2(1000, 2)
	keyDstCountry          = Key2(1001, 2)
	keySrcAsName           = Key2(1100, 2)
	keyDstAsName           = Key2(1101, 2)
	keySrcNetName          = Key2(1102, 2)
	keyDstNetName          = Key2(1103, 2)
	keySrcNetLabels        = Key2(1104, 2)
	keyDstNetLabels        = Key2(1105, 2)
	keySrcNetPrefix        = Key2(1106, 2)
	keyDstNetPrefix        = Key2(1107, 2)
	keyFlowDirection       = Key2(1108, 0)
	KeyBiflowReverse       = Key2(1120, 0)
	keySrcUser             = Key2(1130, 2)
	keyDstUser             = Key2(1131, 2)
	keySrcSessionId        = Key2(1132, 2)
	keyDstSessionId        = Key2(1133, 2)
	keySrcCallingStationId = Key2(1134, 2)
	keyDstCallingStationId = Key2(1135, 2)
	keyPostNatSrcAddr      = Key2(1140, 2)
	keyPostNatDstAddr      = Key2(1141, 2)
	keyPostNaptSrcPort     = Key2(1142, 0)
	keyPostNaptDstPort     = Key2(1143, 0)
	keyNatEvent            = Key2(1144, 0)
	keyNatPortRangeStart   = Key2(1145, 0)
	keyNatPortRangeEnd     = Key2(1146, 0)
	keyNatInstanceId       = Key2(1147, 0)
	keyNatPoolId           = Key2(1148, 0)
)

// appendEnrichment writes the fields 1000-1135, which no decoder sets.
func appendEnrichment(b []byte, m *flowpb.FlowMessage) []byte {
	b = appendString(b, keySrcCountry, m.SrcCountry)
	b = appendString(b, keyDstCountry, m.DstCountry)
	b = appendString(b, keySrcAsName, m.SrcAsName)
	b = appendString(b, keyDstAsName, m.DstAsName)
	b = appendString(b, keySrcNetName, m.SrcNetName)
	b = appendString(b, keyDstNetName, m.DstNetName)
	b = appendStringMap(b, keySrcNetLabels, m.SrcNetLabels)
	b = appendStringMap(b, keyDstNetLabels, m.DstNetLabels)
	b = appendString(b, keySrcNetPrefix, m.SrcNetPrefix)
	b = appendString(b, keyDstNetPrefix, m.DstNetPrefix)
	b = Uint2(b, keyFlowDirection, uint64(m.FlowDirection))
	if m.BiflowReverse {
		b = append(b, byte(KeyBiflowReverse), byte(KeyBiflowReverse>>8), 1)
	}
	b = appendString(b, keySrcUser, m.SrcUser)
	b = appendString(b, keyDstUser, m.DstUser)
	b = appendString(b, keySrcSessionId, m.SrcSessionId)
	b = appendString(b, keyDstSessionId, m.DstSessionId)
	b = appendString(b, keySrcCallingStationId, m.SrcCallingStationId)
	return appendString(b, keyDstCallingStationId, m.DstCallingStationId)
}

func appendString(b []byte, key uint16, s string) []byte {
	if s == "" {
		return b
	}
	b = Varint(append(b, byte(key), byte(key>>8)), uint64(len(s)))
	return append(b, s...)
}

// appendStringMap writes a map as MarshalVT does: one {1: key, 2: value}
// entry per pair, in map iteration order.
func appendStringMap(b []byte, key uint16, m map[string]string) []byte {
	for k, v := range m {
		n := 1 + VarintLen(uint64(len(k))) + len(k) + 1 + VarintLen(uint64(len(v))) + len(v)
		b = Varint(append(b, byte(key), byte(key>>8)), uint64(n))
		b = append(Varint(append(b, 1<<3|2), uint64(len(k))), k...)
		b = append(Varint(append(b, 2<<3|2), uint64(len(v))), v...)
	}
	return b
}
