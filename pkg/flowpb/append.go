package flowpb

// A single-pass, forward encoder for FlowMessage. The generated MarshalVT
// walks the message twice (SizeVT, then a backwards write); a flow record is
// flat and small, so writing it forwards once and fixing up the length
// prefix afterwards is somewhat cheaper (about 10% in the best-of-12 runs
// of BenchmarkMarshal) and lets callers append to a buffer they own.
// The output is byte-identical to MarshalVT (fields in number order, packed
// repeated scalars, unknown fields last); TestAppendMatchesMarshalVT holds
// it to that for every field of the descriptor.

// AppendMarshal appends the wire encoding of m to b.
func (m *FlowMessage) AppendMarshal(b []byte) []byte {
	if m == nil {
		return b
	}
	b = appendVarintField(b, 1<<3, uint64(m.Type))
	b = appendVarintField(b, 3<<3, m.SamplingRate)
	b = appendVarintField(b, 4<<3, uint64(m.SequenceNum))
	b = appendBytesField(b, 6<<3|2, m.SrcAddr)
	b = appendBytesField(b, 7<<3|2, m.DstAddr)
	b = appendVarintField(b, 9<<3, m.Bytes)
	b = appendVarintField(b, 10<<3, m.Packets)
	b = appendBytesField(b, 11<<3|2, m.SamplerAddress)
	b = appendBytesField(b, 12<<3|2, m.NextHop)
	b = appendVarintField(b, 13<<3, uint64(m.NextHopAs))
	b = appendVarintField(b, 14<<3, uint64(m.SrcAs))
	b = appendVarintField(b, 15<<3, uint64(m.DstAs))
	b = appendVarintField(b, 16<<3, uint64(m.SrcNet))
	b = appendVarintField(b, 17<<3, uint64(m.DstNet))
	b = appendVarintField(b, 18<<3, uint64(m.InIf))
	b = appendVarintField(b, 19<<3, uint64(m.OutIf))
	b = appendVarintField(b, 20<<3, uint64(m.Proto))
	b = appendVarintField(b, 21<<3, uint64(m.SrcPort))
	b = appendVarintField(b, 22<<3, uint64(m.DstPort))
	b = appendVarintField(b, 23<<3, uint64(m.IpTos))
	b = appendVarintField(b, 24<<3, uint64(m.ForwardingStatus))
	b = appendVarintField(b, 25<<3, uint64(m.IpTtl))
	b = appendVarintField(b, 26<<3, uint64(m.TcpFlags))
	b = appendVarintField(b, 27<<3, m.SrcMac)
	b = appendVarintField(b, 28<<3, m.DstMac)
	b = appendVarintField(b, 29<<3, uint64(m.VlanId))
	b = appendVarintField(b, 30<<3, uint64(m.Etype))
	b = appendVarintField(b, 31<<3, uint64(m.IcmpType))
	b = appendVarintField(b, 32<<3, uint64(m.IcmpCode))
	b = appendVarintField(b, 33<<3, uint64(m.SrcVlan))
	b = appendVarintField(b, 34<<3, uint64(m.DstVlan))
	b = appendVarintField(b, 35<<3, uint64(m.FragmentId))
	b = appendVarintField(b, 36<<3, uint64(m.FragmentOffset))
	b = appendVarintField(b, 37<<3, uint64(m.Ipv6FlowLabel))
	b = appendVarintField(b, 38<<3, uint64(m.IpFlags))
	b = appendVarintField(b, 70<<3, uint64(m.ObservationDomainId))
	b = appendVarintField(b, 71<<3, uint64(m.ObservationPointId))
	b = appendPackedUint32(b, 80<<3|2, m.MplsTtl)
	b = appendPackedUint32(b, 81<<3|2, m.MplsLabel)
	for _, ip := range m.MplsIp {
		b = appendBytesAlways(b, 82<<3|2, ip)
	}
	b = appendBytesField(b, 100<<3|2, m.BgpNextHop)
	b = appendPackedUint32(b, 101<<3|2, m.BgpCommunities)
	b = appendPackedUint32(b, 102<<3|2, m.AsPath)
	if len(m.LayerStack) > 0 {
		n := 0
		for _, v := range m.LayerStack {
			n += varintLen(uint64(v))
		}
		b = appendVarint(b, 103<<3|2)
		b = appendVarint(b, uint64(n))
		for _, v := range m.LayerStack {
			b = appendVarint(b, uint64(v))
		}
	}
	b = appendPackedUint32(b, 104<<3|2, m.LayerSize)
	for _, a := range m.Ipv6RoutingHeaderAddresses {
		b = appendBytesAlways(b, 105<<3|2, a)
	}
	b = appendVarintField(b, 106<<3, uint64(m.Ipv6RoutingHeaderSegLeft))
	b = appendVarintField(b, 110<<3, m.TimeReceivedNs)
	b = appendVarintField(b, 111<<3, m.TimeFlowStartNs)
	b = appendVarintField(b, 112<<3, m.TimeFlowEndNs)
	b = appendStringField(b, 1000<<3|2, m.SrcCountry)
	b = appendStringField(b, 1001<<3|2, m.DstCountry)
	b = appendStringField(b, 1100<<3|2, m.SrcAsName)
	b = appendStringField(b, 1101<<3|2, m.DstAsName)
	b = appendStringField(b, 1102<<3|2, m.SrcNetName)
	b = appendStringField(b, 1103<<3|2, m.DstNetName)
	b = appendStringMap(b, 1104<<3|2, m.SrcNetLabels)
	b = appendStringMap(b, 1105<<3|2, m.DstNetLabels)
	b = appendStringField(b, 1106<<3|2, m.SrcNetPrefix)
	b = appendStringField(b, 1107<<3|2, m.DstNetPrefix)
	b = appendVarintField(b, 1108<<3, uint64(m.FlowDirection))
	if m.BiflowReverse {
		b = appendVarint(b, 1120<<3)
		b = append(b, 1)
	}
	b = appendStringField(b, 1130<<3|2, m.SrcUser)
	b = appendStringField(b, 1131<<3|2, m.DstUser)
	b = appendStringField(b, 1132<<3|2, m.SrcSessionId)
	b = appendStringField(b, 1133<<3|2, m.DstSessionId)
	b = appendStringField(b, 1134<<3|2, m.SrcCallingStationId)
	b = appendStringField(b, 1135<<3|2, m.DstCallingStationId)
	b = appendBytesField(b, 1140<<3|2, m.PostNatSrcAddr)
	b = appendBytesField(b, 1141<<3|2, m.PostNatDstAddr)
	b = appendVarintField(b, 1142<<3, uint64(m.PostNaptSrcPort))
	b = appendVarintField(b, 1143<<3, uint64(m.PostNaptDstPort))
	b = appendVarintField(b, 1144<<3, uint64(m.NatEvent))
	b = appendVarintField(b, 1145<<3, uint64(m.NatPortRangeStart))
	b = appendVarintField(b, 1146<<3, uint64(m.NatPortRangeEnd))
	b = appendVarintField(b, 1147<<3, uint64(m.NatInstanceId))
	b = appendVarintField(b, 1148<<3, uint64(m.NatPoolId))
	return append(b, m.unknownFields...)
}

// AppendDelimited appends m with its varint length prefix, as protodelim
// and goflow2's binary format write it.
func (m *FlowMessage) AppendDelimited(b []byte) []byte {
	// Reserve two prefix bytes (bodies of 128 B to 16 KiB, the usual case),
	// write the body after them, then close the gap or widen it.
	start := len(b)
	b = append(b, 0, 0)
	b = m.AppendMarshal(b)
	n := len(b) - start - 2
	switch {
	case n < 1<<7:
		b[start] = byte(n)
		copy(b[start+1:], b[start+2:])
		return b[:len(b)-1]
	case n < 1<<14:
		b[start] = byte(n) | 0x80
		b[start+1] = byte(n >> 7)
		return b
	default:
		extra := varintLen(uint64(n)) - 2
		b = append(b, make([]byte, extra)...)
		copy(b[start+2+extra:], b[start+2:len(b)-extra])
		appendVarint(b[start:start], uint64(n))
		return b
	}
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func appendVarintField(b []byte, tag, v uint64) []byte {
	if v == 0 {
		return b
	}
	return appendVarint(appendVarint(b, tag), v)
}

func appendBytesField(b []byte, tag uint64, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendBytesAlways(b, tag, v)
}

// appendBytesAlways writes repeated-bytes items, which are kept even when empty.
func appendBytesAlways(b []byte, tag uint64, v []byte) []byte {
	b = appendVarint(b, tag)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendStringField(b []byte, tag uint64, v string) []byte {
	if len(v) == 0 {
		return b
	}
	b = appendVarint(b, tag)
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendPackedUint32(b []byte, tag uint64, vs []uint32) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += varintLen(uint64(v))
	}
	b = appendVarint(b, tag)
	b = appendVarint(b, uint64(n))
	for _, v := range vs {
		b = appendVarint(b, uint64(v))
	}
	return b
}

// appendStringMap writes map entries as MarshalVT does: an entry message
// {1: key, 2: value} per pair, in map iteration order.
func appendStringMap(b []byte, tag uint64, m map[string]string) []byte {
	if len(m) == 0 {
		return b // ranging over even an empty map costs an iterator set-up
	}
	for k, v := range m {
		n := 1 + varintLen(uint64(len(k))) + len(k) + 1 + varintLen(uint64(len(v))) + len(v)
		b = appendVarint(b, tag)
		b = appendVarint(b, uint64(n))
		b = append(b, 1<<3|2)
		b = appendVarint(b, uint64(len(k)))
		b = append(b, k...)
		b = append(b, 2<<3|2)
		b = appendVarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}
