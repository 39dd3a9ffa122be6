package flowbin

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// TestAppendMessage sets each field of the descriptor alone, then all of
// them together, and requires AppendMessage to write flowpb's
// AppendDelimited's bytes: a field added to flow.proto but not here fails.
func TestAppendMessage(t *testing.T) {
	fields := (&flowpb.FlowMessage{}).ProtoReflect().Descriptor().Fields()
	all := &flowpb.FlowMessage{}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		one := &flowpb.FlowMessage{}
		setField(one.ProtoReflect(), fd, 1)
		setField(all.ProtoReflect(), fd, 2)
		checkSame(t, string(fd.Name()), one)
	}
	checkSame(t, "all fields", all)
	unknown := protowire.AppendTag(nil, 1200, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("ge-0/0/1"))
	all.ProtoReflect().SetUnknown(unknown)
	checkSame(t, "all fields and an unknown one", all)
	checkSame(t, "empty", &flowpb.FlowMessage{})
	checkSame(t, "empty repeated bytes item", &flowpb.FlowMessage{MplsIp: [][]byte{{}, {1, 2, 3, 4}}})
	checkSame(t, "long address", &flowpb.FlowMessage{SrcAddr: bytes.Repeat([]byte{7}, 300)})
}

func TestAppendRandomMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		checkSame(t, "random", randomMessage(r))
	}
}

// TestFramePrefixWidths: every body length around the prefix widths, with
// both guesses, after something already in the buffer.
func TestFramePrefixWidths(t *testing.T) {
	for _, n := range []int{0, 1, 100, 126, 127, 128, 129, 200, 16381, 16383, 16384, 16385, 20000, 3 << 20} {
		body := bytes.Repeat([]byte{'x'}, n)
		for _, wide := range []bool{false, true} {
			b, start := Open([]byte("prefix"), wide)
			b = append(b, body...)
			b, next := Close(b, start, wide)
			want := append(binary.AppendUvarint([]byte("prefix"), uint64(n)), body...)
			if !bytes.Equal(b, want) {
				t.Fatalf("body of %d, wide %v: frame differs", n, wide)
			}
			if next != (n >= 128) {
				t.Errorf("body of %d: next guess wide=%v", n, next)
			}
		}
	}
}

func TestVarint(t *testing.T) {
	for shift := 0; shift < 64; shift++ {
		for _, d := range []int64{-1, 0, 1} {
			v := uint64(1)<<shift + uint64(d)
			if got, want := Varint(nil, v), binary.AppendUvarint(nil, v); !bytes.Equal(got, want) {
				t.Fatalf("%d: % x, want % x", v, got, want)
			}
			if VarintLen(v) != len(binary.AppendUvarint(nil, v)) {
				t.Fatalf("VarintLen(%d)", v)
			}
		}
	}
	if got, want := Varint(nil, ^uint64(0)), binary.AppendUvarint(nil, ^uint64(0)); !bytes.Equal(got, want) {
		t.Fatalf("max: % x, want % x", got, want)
	}
}

func TestKey2(t *testing.T) {
	for num := protowire.Number(16); num < 2048; num++ {
		for _, typ := range []protowire.Type{protowire.VarintType, protowire.BytesType} {
			k := Key2(num, typ)
			want := protowire.AppendTag(nil, num, typ)
			if got := []byte{byte(k), byte(k >> 8)}; !bytes.Equal(got, want) {
				t.Fatalf("field %d type %d: % x, want % x", num, typ, got, want)
			}
		}
	}
}

// TestKeys holds each Key constant to the tag protowire writes for its
// flowpb field, with the wire type of the field's kind.
func TestKeys(t *testing.T) {
	one := map[byte]protowire.Number{
		KeyType: flowpb.FieldType, KeySamplingRate: flowpb.FieldSamplingRate, KeySequenceNum: flowpb.FieldSequenceNum,
		KeySrcAddr: flowpb.FieldSrcAddr, KeyDstAddr: flowpb.FieldDstAddr, KeyBytes: flowpb.FieldBytes,
		KeyPackets: flowpb.FieldPackets, KeySamplerAddress: flowpb.FieldSamplerAddress, KeyNextHop: flowpb.FieldNextHop,
		KeyNextHopAs: flowpb.FieldNextHopAs, KeySrcAs: flowpb.FieldSrcAs, KeyDstAs: flowpb.FieldDstAs,
	}
	two := map[uint16]protowire.Number{
		KeySrcNet: flowpb.FieldSrcNet, KeyDstNet: flowpb.FieldDstNet, KeyInIf: flowpb.FieldInIf, KeyOutIf: flowpb.FieldOutIf,
		KeyProto: flowpb.FieldProto, KeySrcPort: flowpb.FieldSrcPort, KeyDstPort: flowpb.FieldDstPort,
		KeyIpTos: flowpb.FieldIpTos, KeyForwardingStatus: flowpb.FieldForwardingStatus, KeyIpTtl: flowpb.FieldIpTtl,
		KeyTcpFlags: flowpb.FieldTcpFlags, KeySrcMac: flowpb.FieldSrcMac, KeyDstMac: flowpb.FieldDstMac,
		KeyVlanId: flowpb.FieldVlanId, KeyEtype: flowpb.FieldEtype, KeyIcmpType: flowpb.FieldIcmpType,
		KeyIcmpCode: flowpb.FieldIcmpCode, KeySrcVlan: flowpb.FieldSrcVlan, KeyDstVlan: flowpb.FieldDstVlan,
		KeyFragmentId: flowpb.FieldFragmentId, KeyFragmentOffset: flowpb.FieldFragmentOffset,
		KeyIpv6FlowLabel: flowpb.FieldIpv6FlowLabel, KeyIpFlags: flowpb.FieldIpFlags,
		KeyObservationDomainId: flowpb.FieldObservationDomainId, KeyObservationPointId: flowpb.FieldObservationPointId,
		KeyMplsTtl: flowpb.FieldMplsTtl, KeyMplsLabel: flowpb.FieldMplsLabel, KeyMplsIp: flowpb.FieldMplsIp,
		KeyBgpNextHop: flowpb.FieldBgpNextHop, KeyBgpCommunities: flowpb.FieldBgpCommunities, KeyAsPath: flowpb.FieldAsPath,
		KeyLayerStack: flowpb.FieldLayerStack, KeyLayerSize: flowpb.FieldLayerSize,
		KeyIpv6RoutingAddrs: flowpb.FieldIpv6RoutingHeaderAddresses, KeyIpv6RoutingSegLeft: flowpb.FieldIpv6RoutingHeaderSegLeft,
		KeyTimeReceivedNs: flowpb.FieldTimeReceivedNs, KeyTimeFlowStartNs: flowpb.FieldTimeFlowStartNs,
		KeyTimeFlowEndNs: flowpb.FieldTimeFlowEndNs, KeyBiflowReverse: flowpb.FieldBiflowReverse,
		KeyPostNatSrcAddr: flowpb.FieldPostNatSrcAddr, KeyPostNatDstAddr: flowpb.FieldPostNatDstAddr,
		KeyPostNaptSrcPort: flowpb.FieldPostNaptSrcPort, KeyPostNaptDstPort: flowpb.FieldPostNaptDstPort,
		KeyNatEvent: flowpb.FieldNatEvent, KeyNatPortRangeStart: flowpb.FieldNatPortRangeStart,
		KeyNatPortRangeEnd: flowpb.FieldNatPortRangeEnd, KeyNatInstanceId: flowpb.FieldNatInstanceId,
		KeyNatPoolId: flowpb.FieldNatPoolId,
	}
	if len(one) != 12 || len(two) != 48 {
		t.Fatalf("%d one-byte and %d two-byte keys: two constants are equal", len(one), len(two))
	}
	tag := func(num protowire.Number) []byte {
		f, ok := flowpb.FieldByNumber(num)
		if !ok {
			t.Fatalf("field %d is not in flow.proto", num)
		}
		typ := protowire.VarintType
		if f.List || f.Map || f.Kind == protoreflect.BytesKind || f.Kind == protoreflect.StringKind {
			typ = protowire.BytesType
		}
		return protowire.AppendTag(nil, num, typ)
	}
	for k, num := range one {
		if want := tag(num); !bytes.Equal([]byte{k}, want) {
			t.Errorf("key of field %d: % x, want % x", num, k, want)
		}
	}
	for k, num := range two {
		if want := tag(num); !bytes.Equal([]byte{byte(k), byte(k >> 8)}, want) {
			t.Errorf("key of field %d: % x, want % x", num, []byte{byte(k), byte(k >> 8)}, want)
		}
	}
}

func TestAppendMessageAllocs(t *testing.T) {
	m := randomMessage(rand.New(rand.NewPCG(3, 4)))
	m.SrcNetLabels, m.DstNetLabels = nil, nil
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendMessage(buf[:0], m, nil, true) }); n != 0 {
		t.Fatalf("AppendMessage allocates %v times", n)
	}
}

func checkSame(t *testing.T, name string, m *flowpb.FlowMessage) {
	t.Helper()
	if len(m.SrcNetLabels)+len(m.DstNetLabels) > 2 {
		t.Fatal("more than one label per map: iteration order would differ")
	}
	want := m.AppendDelimited([]byte("x"))
	for _, wide := range []bool{false, true} {
		got, _ := AppendMessage([]byte("x"), m, m.ProtoReflect().GetUnknown(), wide)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s (wide %v): AppendMessage\n got % x\nwant % x", name, wide, got, want)
		}
	}
	// AppendDecoded: the same without the enrichment fields.
	d := m.CloneVT()
	biflow := d.BiflowReverse
	d.SrcCountry, d.DstCountry, d.SrcAsName, d.DstAsName, d.SrcNetName, d.DstNetName = "", "", "", "", "", ""
	d.SrcNetLabels, d.DstNetLabels, d.SrcNetPrefix, d.DstNetPrefix, d.FlowDirection = nil, nil, "", "", 0
	d.SrcUser, d.DstUser, d.SrcSessionId, d.DstSessionId, d.SrcCallingStationId, d.DstCallingStationId = "", "", "", "", "", ""
	d.BiflowReverse = biflow
	want = d.AppendDelimited([]byte("x"))
	if got, _ := AppendDecoded([]byte("x"), m, m.ProtoReflect().GetUnknown(), true); !bytes.Equal(got, want) {
		t.Fatalf("%s: AppendDecoded\n got % x\nwant % x", name, got, want)
	}
}

func setField(m protoreflect.Message, fd protoreflect.FieldDescriptor, seed int) {
	scalar := func() protoreflect.Value {
		switch fd.Kind() {
		case protoreflect.BoolKind:
			return protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			return protoreflect.ValueOfEnum(fd.Enum().Values().Get(fd.Enum().Values().Len() - 1).Number())
		case protoreflect.Uint32Kind:
			return protoreflect.ValueOfUint32(uint32(300 * seed))
		case protoreflect.Uint64Kind:
			return protoreflect.ValueOfUint64(uint64(1<<40) * uint64(seed))
		case protoreflect.BytesKind:
			return protoreflect.ValueOfBytes(bytes.Repeat([]byte{byte(seed)}, 4*seed))
		case protoreflect.StringKind:
			return protoreflect.ValueOfString(string(bytes.Repeat([]byte{'a'}, 3*seed)))
		}
		panic("kind not covered by the test: " + fd.Kind().String())
	}
	switch {
	case fd.IsMap():
		m.Mutable(fd).Map().Set(protoreflect.ValueOfString("site").MapKey(), protoreflect.ValueOfString("ams1"))
	case fd.IsList():
		l := m.Mutable(fd).List()
		for range 3 {
			l.Append(scalar())
		}
	default:
		m.Set(fd, scalar())
	}
}

// randomMessage fills the fields decoders set with values of every varint
// width, and some repeated and enrichment fields.
func randomMessage(r *rand.Rand) *flowpb.FlowMessage {
	v := func(bits uint) uint64 {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.Uint64() >> (64 - r.UintN(bits) - 1)
	}
	addr := func() []byte {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return []byte{10, byte(r.IntN(256)), 0, 1}
		}
		b := make([]byte, 16)
		b[0], b[15] = 0x20, byte(r.IntN(256))
		return b
	}
	m := &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_FlowType(r.IntN(5)), SamplingRate: v(32), SequenceNum: uint32(v(32)),
		SrcAddr: addr(), DstAddr: addr(), Bytes: v(64), Packets: v(40), SamplerAddress: addr(), NextHop: addr(),
		NextHopAs: uint32(v(32)), SrcAs: uint32(v(32)), DstAs: uint32(v(32)), SrcNet: uint32(v(7)), DstNet: uint32(v(7)),
		InIf: uint32(v(32)), OutIf: uint32(v(32)), Proto: uint32(v(8)), SrcPort: uint32(v(16)), DstPort: uint32(v(16)),
		IpTos: uint32(v(8)), ForwardingStatus: uint32(v(8)), IpTtl: uint32(v(8)), TcpFlags: uint32(v(9)),
		SrcMac: v(48), DstMac: v(48), VlanId: uint32(v(12)), Etype: uint32(v(16)), IcmpType: uint32(v(8)), IcmpCode: uint32(v(8)),
		SrcVlan: uint32(v(12)), DstVlan: uint32(v(12)), FragmentId: uint32(v(32)), FragmentOffset: uint32(v(13)),
		Ipv6FlowLabel: uint32(v(20)), IpFlags: uint32(v(3)), ObservationDomainId: uint32(v(32)), ObservationPointId: uint32(v(32)),
		BgpNextHop: addr(), Ipv6RoutingHeaderSegLeft: uint32(v(8)),
		TimeReceivedNs: v(63), TimeFlowStartNs: v(64), TimeFlowEndNs: v(63),
		PostNatSrcAddr: addr(), PostNatDstAddr: addr(), PostNaptSrcPort: uint32(v(16)), PostNaptDstPort: uint32(v(16)),
		NatEvent: uint32(v(8)), NatPortRangeStart: uint32(v(16)), NatPortRangeEnd: uint32(v(16)), NatInstanceId: uint32(v(32)), NatPoolId: uint32(v(32)),
		BiflowReverse: r.IntN(4) == 0,
	}
	for range r.IntN(4) {
		m.AsPath = append(m.AsPath, uint32(v(32)))
		m.BgpCommunities = append(m.BgpCommunities, uint32(v(32)))
		m.MplsLabel = append(m.MplsLabel, uint32(v(20)))
		m.MplsTtl = append(m.MplsTtl, uint32(v(8)))
		m.LayerStack = append(m.LayerStack, flowpb.FlowMessage_LayerStack(r.IntN(14)))
		m.LayerSize = append(m.LayerSize, uint32(v(16)))
		m.MplsIp = append(m.MplsIp, addr())
		m.Ipv6RoutingHeaderAddresses = append(m.Ipv6RoutingHeaderAddresses, addr())
	}
	if r.IntN(4) == 0 {
		m.SrcNetLabels = map[string]string{"role": "edge"}
		m.SrcCountry, m.DstAsName, m.FlowDirection = "NL", "EXAMPLE", flowpb.FlowMessage_FlowDirection(r.IntN(3))
	}
	if r.IntN(4) == 0 {
		m.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 1201, protowire.VarintType), v(64)))
	}
	return m
}

func BenchmarkAppendMessage(b *testing.B) {
	m := randomMessage(rand.New(rand.NewPCG(5, 6)))
	m.SrcNetLabels = nil
	buf := make([]byte, 0, 4096)
	b.Run("flowbin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = AppendMessage(buf[:0], m, nil, true)
		}
	})
	b.Run("flowpb", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = m.AppendDelimited(buf[:0])
		}
	})
}

// TestWindow writes the same random fields through a Window and through
// the append functions: same frames, with bodies on both sides of the
// one-byte prefix, after something already in the buffer.
func TestWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	c := NewConst([]byte{KeyType, 2, KeySequenceNum, 0x81, 1})
	for i := range 3000 {
		prefix := []byte("abc")
		if i%2 == 0 {
			prefix = make([]byte, 3, 3+WindowLen) // room already there
			copy(prefix, "abc")
		}
		b, w, n := OpenWindow(prefix)
		want, start := Open([]byte("abc"), true)
		n = w.Const(n, &c)
		want = append(want, c.Bytes()...)
		for range r.IntN(12) {
			v := r.Uint64() >> r.UintN(64)
			if r.IntN(4) == 0 {
				v = 0
			}
			switch r.IntN(3) {
			case 0:
				n = w.Uint1(n, KeyBytes, v)
				want = Uint1(want, KeyBytes, v)
			case 1:
				n = w.Uint2(n, KeyTimeFlowEndNs, v)
				want = Uint2(want, KeyTimeFlowEndNs, v)
			default:
				a := [][]byte{nil, {10, 0, 0, 1}, bytes.Repeat([]byte{0x20}, 16), {1, 2, 3}}[r.IntN(4)]
				n = w.Addr1(n, KeySrcAddr, a)
				want = Bytes1(want, KeySrcAddr, a)
			}
		}
		got := CloseWindow(b, w, n)
		want, _ = Close(want, start, true)
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got % x\nwant % x", i, got, want)
		}
	}
}
