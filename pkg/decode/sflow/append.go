package sflow

import (
	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/flowbin"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// AppendRecords decodes p as Decode does and appends each flow Decode
// would emit to dst as a frame of the bin stream (the bytes flowpb's
// AppendDelimited writes for it), returning dst and the number of flows.
// A flow is still gathered in a FlowMessage (the sampled header's parser
// fills one), but encoded by appendSample, which writes only the fields an
// sFlow flow can have and what a datagram's flows share once per datagram.
func (d *Decoder) AppendRecords(dst []byte, p decode.Packet) ([]byte, int, error) {
	d.out, d.outN, d.appendTo = dst, 0, true
	err := d.Decode(p, nil)
	out, n := d.out, d.outN
	d.out, d.appendTo = nil, false
	return out, n, err
}

var _ decode.Appender = (*Decoder)(nil)

// sampleConsts are the bytes every flow of a datagram shares: its
// sequence number and agent address, and its receive time, which is also
// every flow's start and end (fields 110-112).
type sampleConsts struct {
	ready      bool // filled for the datagram being decoded
	custom     bool // a mapping may add custom fields (Config.Packet)
	seq, agent flowbin.Const
	times      [3 * (2 + flowbin.MaxVarintLen)]byte
	timesLen   int
}

func (k *sampleConsts) fill(dg *datagram) {
	k.ready = true
	var buf [flowbin.ConstLen]byte
	k.seq = flowbin.NewConst(flowbin.Uint1(buf[:0], flowbin.KeySequenceNum, uint64(dg.seq)))
	k.agent = flowbin.NewConst(append(append(buf[:0], flowbin.KeySamplerAddress, byte(dg.agentLen)), dg.agent[:dg.agentLen]...))
	t := flowbin.Uint2(k.times[:0], flowbin.KeyTimeReceivedNs, dg.receivedNs)
	t = flowbin.Uint2(t, flowbin.KeyTimeFlowStartNs, dg.receivedNs)
	t = flowbin.Uint2(t, flowbin.KeyTimeFlowEndNs, dg.receivedNs)
	k.timesLen = len(t)
}

// appendSample writes a flow sample's message m as flowSample filled it:
// the fields below are every one flowSample, flowRecord, gateway and the
// packet parser set (TestAppendSampleFields keeps it so), in number order,
// with the datagram's shared ones from k.
func appendSample(b []byte, m *flowpb.FlowMessage, k *sampleConsts, wide bool) ([]byte, bool) {
	b, start := flowbin.Open(b, wide)
	b = append(b, flowbin.KeyType, byte(flowpb.FlowMessage_SFLOW_5))
	b = flowbin.Uint1(b, flowbin.KeySamplingRate, m.SamplingRate)
	b = append(b, k.seq.Bytes()...)
	b = flowbin.Bytes1(b, flowbin.KeySrcAddr, m.SrcAddr)
	b = flowbin.Bytes1(b, flowbin.KeyDstAddr, m.DstAddr)
	b = flowbin.Uint1(b, flowbin.KeyBytes, m.Bytes)
	b = flowbin.Uint1(b, flowbin.KeyPackets, m.Packets)
	b = append(b, k.agent.Bytes()...)
	b = flowbin.Bytes1(b, flowbin.KeyNextHop, m.NextHop)
	b = flowbin.Uint1(b, flowbin.KeyNextHopAs, uint64(m.NextHopAs))
	b = flowbin.Uint1(b, flowbin.KeySrcAs, uint64(m.SrcAs))
	b = flowbin.Uint1(b, flowbin.KeyDstAs, uint64(m.DstAs))
	b = flowbin.Uint2(b, flowbin.KeySrcNet, uint64(m.SrcNet))
	b = flowbin.Uint2(b, flowbin.KeyDstNet, uint64(m.DstNet))
	b = flowbin.Uint2(b, flowbin.KeyInIf, uint64(m.InIf))
	b = flowbin.Uint2(b, flowbin.KeyOutIf, uint64(m.OutIf))
	b = flowbin.Uint2(b, flowbin.KeyProto, uint64(m.Proto))
	b = flowbin.Uint2(b, flowbin.KeySrcPort, uint64(m.SrcPort))
	b = flowbin.Uint2(b, flowbin.KeyDstPort, uint64(m.DstPort))
	b = flowbin.Uint2(b, flowbin.KeyIpTos, uint64(m.IpTos))
	b = flowbin.Uint2(b, flowbin.KeyForwardingStatus, uint64(m.ForwardingStatus))
	b = flowbin.Uint2(b, flowbin.KeyIpTtl, uint64(m.IpTtl))
	b = flowbin.Uint2(b, flowbin.KeyTcpFlags, uint64(m.TcpFlags))
	b = flowbin.Uint2(b, flowbin.KeySrcMac, m.SrcMac)
	b = flowbin.Uint2(b, flowbin.KeyDstMac, m.DstMac)
	b = flowbin.Uint2(b, flowbin.KeyVlanId, uint64(m.VlanId))
	b = flowbin.Uint2(b, flowbin.KeyEtype, uint64(m.Etype))
	b = flowbin.Uint2(b, flowbin.KeyIcmpType, uint64(m.IcmpType))
	b = flowbin.Uint2(b, flowbin.KeyIcmpCode, uint64(m.IcmpCode))
	b = flowbin.Uint2(b, flowbin.KeySrcVlan, uint64(m.SrcVlan))
	b = flowbin.Uint2(b, flowbin.KeyDstVlan, uint64(m.DstVlan))
	b = flowbin.Uint2(b, flowbin.KeyFragmentId, uint64(m.FragmentId))
	b = flowbin.Uint2(b, flowbin.KeyFragmentOffset, uint64(m.FragmentOffset))
	b = flowbin.Uint2(b, flowbin.KeyIpv6FlowLabel, uint64(m.Ipv6FlowLabel))
	b = flowbin.Uint2(b, flowbin.KeyIpFlags, uint64(m.IpFlags))
	b = flowbin.Packed2(b, flowbin.KeyMplsTtl, m.MplsTtl)
	b = flowbin.Packed2(b, flowbin.KeyMplsLabel, m.MplsLabel)
	b = flowbin.Bytes2(b, flowbin.KeyBgpNextHop, m.BgpNextHop)
	b = flowbin.Packed2(b, flowbin.KeyBgpCommunities, m.BgpCommunities)
	b = flowbin.Packed2(b, flowbin.KeyAsPath, m.AsPath)
	b = flowbin.Packed2(b, flowbin.KeyLayerStack, m.LayerStack)
	b = flowbin.Packed2(b, flowbin.KeyLayerSize, m.LayerSize)
	for _, a := range m.Ipv6RoutingHeaderAddresses {
		b = flowbin.BytesItem2(b, flowbin.KeyIpv6RoutingAddrs, a)
	}
	b = flowbin.Uint2(b, flowbin.KeyIpv6RoutingSegLeft, uint64(m.Ipv6RoutingHeaderSegLeft))
	b = append(b, k.times[:k.timesLen]...)
	// Fields of a --mapping go here: unknown fields come after every field
	// of flow.proto (AppendDelimited's order).
	if k.custom {
		b = append(b, m.ProtoReflect().GetUnknown()...)
	}
	return flowbin.Close(b, start, wide)
}

// resetSample clears the message for the next flow, keeping its slices'
// capacity, without the bookkeeping of Reset.
func resetSample(m *flowpb.FlowMessage) {
	src, dst, sampler, nh, bgp := m.SrcAddr[:0], m.DstAddr[:0], m.SamplerAddress[:0], m.NextHop[:0], m.BgpNextHop[:0]
	ttls, labels, comms, path := m.MplsTtl[:0], m.MplsLabel[:0], m.BgpCommunities[:0], m.AsPath[:0]
	stack, sizes, srh := m.LayerStack[:0], m.LayerSize[:0], m.Ipv6RoutingHeaderAddresses[:0]
	*m = flowpb.FlowMessage{}
	m.SrcAddr, m.DstAddr, m.SamplerAddress, m.NextHop, m.BgpNextHop = src, dst, sampler, nh, bgp
	m.MplsTtl, m.MplsLabel, m.BgpCommunities, m.AsPath = ttls, labels, comms, path
	m.LayerStack, m.LayerSize, m.Ipv6RoutingHeaderAddresses = stack, sizes, srh
}
