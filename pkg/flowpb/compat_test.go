package flowpb

import (
	"testing"

	gfpb "github.com/netsampler/goflow2/v2/pb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestWireCompatibleWithGoflow2 checks every goflow2 field against ours by
// number, kind and cardinality, then round-trips a full record through
// goflow2's own generated type.
func TestWireCompatibleWithGoflow2(t *testing.T) {
	theirs := (&gfpb.FlowMessage{}).ProtoReflect().Descriptor().Fields()
	ours := (&FlowMessage{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < theirs.Len(); i++ {
		tf := theirs.Get(i)
		of := ours.ByNumber(tf.Number())
		if of == nil {
			t.Errorf("goflow2 field %d %s is missing", tf.Number(), tf.Name())
			continue
		}
		if of.Name() != tf.Name() || of.Kind() != tf.Kind() || of.Cardinality() != tf.Cardinality() {
			t.Errorf("field %d: ours %s %v %v, goflow2 %s %v %v", tf.Number(), of.Name(), of.Cardinality(), of.Kind(), tf.Name(), tf.Cardinality(), tf.Kind())
		}
		if tf.Kind() == protoreflect.EnumKind {
			tv, ov := tf.Enum().Values(), of.Enum().Values()
			for j := 0; j < tv.Len(); j++ {
				if v := ov.ByNumber(tv.Get(j).Number()); v == nil || v.Name() != tv.Get(j).Name() {
					t.Errorf("enum %s value %d: goflow2 %s, ours %v", tf.Name(), tv.Get(j).Number(), tv.Get(j).Name(), v)
				}
			}
		}
	}

	m := &FlowMessage{
		Type: FlowMessage_IPFIX, TimeReceivedNs: 1, SequenceNum: 2, SamplingRate: 3,
		SamplerAddress: []byte{192, 0, 2, 1}, TimeFlowStartNs: 4, TimeFlowEndNs: 5, Bytes: 6, Packets: 7,
		SrcAddr: []byte{10, 0, 0, 1}, DstAddr: []byte{10, 0, 0, 2}, Etype: 0x800, Proto: 6, SrcPort: 8, DstPort: 9,
		InIf: 10, OutIf: 11, SrcMac: 12, DstMac: 13, SrcVlan: 14, DstVlan: 15, VlanId: 16, IpTos: 17,
		ForwardingStatus: 18, IpTtl: 19, IpFlags: 20, TcpFlags: 21, IcmpType: 22, IcmpCode: 23, Ipv6FlowLabel: 24,
		FragmentId: 25, FragmentOffset: 26, SrcAs: 27, DstAs: 28, NextHop: []byte{1, 2, 3, 4}, NextHopAs: 29,
		SrcNet: 30, DstNet: 31, BgpNextHop: []byte{5, 6, 7, 8}, BgpCommunities: []uint32{32}, AsPath: []uint32{33, 34},
		MplsTtl: []uint32{35}, MplsLabel: []uint32{36}, MplsIp: [][]byte{{9, 9, 9, 9}}, ObservationDomainId: 37,
		ObservationPointId: 38, LayerStack: []FlowMessage_LayerStack{FlowMessage_Ethernet, FlowMessage_IPv4},
		LayerSize: []uint32{14, 20}, Ipv6RoutingHeaderAddresses: [][]byte{make([]byte, 16)}, Ipv6RoutingHeaderSegLeft: 39,
		SrcCountry: "NL", SrcAsName: "Example",
	}
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	var g gfpb.FlowMessage
	if err := proto.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if g.SequenceNum != 2 || g.SrcAs != 27 || g.AsPath[1] != 34 || g.Ipv6RoutingHeaderSegLeft != 39 || g.LayerSize[1] != 20 || g.Type != gfpb.FlowMessage_IPFIX {
		t.Fatalf("goflow2 decoded %v", &g)
	}
	back, err := proto.Marshal(&g) // goflow2 keeps our enrichment fields as unknown fields
	if err != nil {
		t.Fatal(err)
	}
	var again FlowMessage
	if err := again.UnmarshalVT(back); err != nil {
		t.Fatal(err)
	}
	if !again.EqualVT(m) {
		t.Fatalf("round trip through goflow2 lost data:\n got %v\nwant %v", &again, m)
	}
}
