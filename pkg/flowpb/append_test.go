package flowpb

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestAppendMatchesMarshalVT sets each field of the descriptor alone, then
// all of them together, and requires AppendMarshal to produce MarshalVT's
// exact bytes: a field added to flow.proto but not to append.go fails here.
func TestAppendMatchesMarshalVT(t *testing.T) {
	fields := (&FlowMessage{}).ProtoReflect().Descriptor().Fields()
	all := &FlowMessage{}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		one := &FlowMessage{}
		setField(one.ProtoReflect(), fd, 1)
		setField(all.ProtoReflect(), fd, 2)
		checkSame(t, string(fd.Name()), one)
	}
	checkSame(t, "all fields", all)
	all.unknownFields = protowire.AppendTag(nil, 1200, protowire.BytesType)
	all.unknownFields = protowire.AppendBytes(all.unknownFields, []byte("ge-0/0/1"))
	checkSame(t, "all fields and an unknown one", all)
	checkSame(t, "empty", &FlowMessage{})
	checkSame(t, "empty repeated bytes item", &FlowMessage{MplsIp: [][]byte{{}, {1, 2, 3, 4}}})
}

func TestAppendRandomMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		m := randomMessage(r)
		checkSame(t, "random", m)
		got := m.AppendDelimited([]byte("prefix"))
		want := binary.AppendUvarint([]byte("prefix"), uint64(m.SizeVT()))
		body, _ := m.MarshalVT()
		want = append(want, body...)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d: AppendDelimited differs from prefix+MarshalVT", i)
		}
	}
}

func TestAppendDelimitedPrefixWidths(t *testing.T) {
	for _, n := range []int{0, 1, 100, 124, 125, 126, 127, 128, 200, 16370, 16380, 16383, 16384, 20000, 3 << 20} {
		m := &FlowMessage{SrcAsName: string(bytes.Repeat([]byte{'x'}, n))}
		got := m.AppendDelimited(nil)
		size, k := binary.Uvarint(got)
		if k <= 0 || int(size) != len(got)-k || int(size) != m.SizeVT() {
			t.Fatalf("name of %d bytes: prefix %d (%d bytes) for a %d-byte body", n, size, k, len(got)-k)
		}
		var back FlowMessage
		if err := back.UnmarshalVT(got[k:]); err != nil || back.SrcAsName != m.SrcAsName {
			t.Fatalf("name of %d bytes: round trip failed: %v", n, err)
		}
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	m := randomMessage(rand.New(rand.NewPCG(3, 4)))
	m.SrcNetLabels, m.DstNetLabels = nil, nil
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = m.AppendDelimited(buf[:0]) }); n != 0 {
		t.Fatalf("AppendDelimited allocates %v times", n)
	}
}

func checkSame(t *testing.T, name string, m *FlowMessage) {
	t.Helper()
	if len(m.SrcNetLabels)+len(m.DstNetLabels) > 2 {
		t.Fatal("more than one label per map: iteration order would differ")
	}
	want, err := m.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	if got := m.AppendMarshal(nil); !bytes.Equal(got, want) {
		t.Errorf("%s: AppendMarshal\n got % x\nwant % x", name, got, want)
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

func randomMessage(r *rand.Rand) *FlowMessage {
	v := func(bits uint) uint64 {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.Uint64() >> (64 - bits)
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
	m := &FlowMessage{
		Type: FlowMessage_FlowType(r.IntN(5)), SamplingRate: v(16), SequenceNum: uint32(v(32)),
		SrcAddr: addr(), DstAddr: addr(), Bytes: v(40), Packets: v(30), SamplerAddress: addr(), NextHop: addr(),
		SrcAs: uint32(v(32)), DstAs: uint32(v(32)), InIf: uint32(v(16)), OutIf: uint32(v(16)), Proto: uint32(v(8)),
		SrcPort: uint32(v(16)), DstPort: uint32(v(16)), SrcMac: v(48), DstMac: v(48), Etype: uint32(v(16)),
		TimeReceivedNs: v(63), TimeFlowStartNs: v(63), TimeFlowEndNs: v(63), SrcCountry: "NL",
	}
	for range r.IntN(4) {
		m.AsPath = append(m.AsPath, uint32(v(32)))
		m.LayerStack = append(m.LayerStack, FlowMessage_LayerStack(r.IntN(14)))
		m.MplsIp = append(m.MplsIp, addr())
	}
	if r.IntN(4) == 0 {
		m.SrcNetLabels = map[string]string{"role": "edge"}
	}
	return m
}

func BenchmarkMarshal(b *testing.B) {
	m := randomMessage(rand.New(rand.NewPCG(5, 6)))
	m.SrcNetLabels = nil
	buf := make([]byte, 0, 4096)
	b.Run("AppendDelimited", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = m.AppendDelimited(buf[:0])
		}
	})
	b.Run("SizeVT+MarshalToSizedBufferVT", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			size := m.SizeVT()
			n := binary.PutUvarint(buf[:10], uint64(size))
			_, _ = m.MarshalToSizedBufferVT(buf[n : n+size])
		}
	})
}
