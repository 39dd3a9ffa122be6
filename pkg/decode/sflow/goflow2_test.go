package sflow

import (
	"bytes"
	"slices"
	"testing"
	"time"

	gfsflow "github.com/netsampler/goflow2/v2/decoders/sflow"
	gfproducer "github.com/netsampler/goflow2/v2/producer"
	gfproto "github.com/netsampler/goflow2/v2/producer/proto"
	"google.golang.org/protobuf/proto"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// goflow2Flows decodes a datagram with goflow2 v2.2.6 as its CLI does and
// returns its flows read back into our schema (the two are wire
// compatible).
func goflow2Flows(t *testing.T, prod gfproducer.ProducerInterface, dg []byte, receivedNs uint64) []*flowpb.FlowMessage {
	t.Helper()
	var packet gfsflow.Packet
	if err := gfsflow.DecodeMessageVersion(bytes.NewBuffer(dg), &packet); err != nil {
		t.Fatalf("goflow2: %v", err)
	}
	msgs, err := prod.Produce(&packet, &gfproducer.ProduceArgs{
		Src: testExporter, SamplerAddress: testExporter.Addr(), TimeReceived: time.Unix(0, int64(receivedNs)),
	})
	if err != nil {
		t.Fatalf("goflow2: %v", err)
	}
	defer prod.Commit(msgs)
	var out []*flowpb.FlowMessage
	for _, m := range msgs {
		b, err := proto.Marshal(&m.(*gfproto.ProtoProducerMessage).FlowMessage)
		if err != nil {
			t.Fatal(err)
		}
		var ours flowpb.FlowMessage
		if err := ours.UnmarshalVT(b); err != nil {
			t.Fatal(err)
		}
		out = append(out, &ours)
	}
	return out
}

// TestSameAsGoflow2 decodes the pmacctd fixture and flowgen datagrams with
// both decoders: every field must match, but for goflow2's documented
// mistakes (no ICMP type/code from sFlow, priority bits in vlan_id, TCP
// header length read from the flags byte).
func TestSameAsGoflow2(t *testing.T) {
	var dgs [][]byte
	dgs = append(dgs, readFixture(t, fixturePmacct)...)
	g, err := flowgen.New(flowgen.Config{Seed: 5, Protocol: flowgen.SFlow, IPv6Ratio: 0.4, SamplingRate: 64})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		pkt, _ := g.Next()
		dgs = append(dgs, slices.Clone(pkt))
	}
	dgs = append(dgs, benchDatagram())

	prod := newGoflow2Producer(t)
	d := NewDecoder(Config{})
	const receivedNs = 1_700_000_000_000_000_000
	compared := 0
	for i, dg := range dgs {
		ours, err := decodeAll(d, dg)
		if err != nil {
			t.Fatal(err)
		}
		theirs := goflow2Flows(t, prod, dg, receivedNs)
		if len(ours) != len(theirs) {
			t.Fatalf("datagram %d: %d flows, goflow2 %d", i, len(ours), len(theirs))
		}
		for j := range ours {
			o, g := ours[j], theirs[j]
			o.IcmpType, o.IcmpCode = 0, 0
			g.VlanId &= 0xfff
			if k := slices.Index(o.LayerStack, flowpb.FlowMessage_TCP); k >= 0 && k < len(g.LayerSize) {
				g.LayerSize[k] = o.LayerSize[k]
			}
			if !o.EqualVT(g) {
				t.Fatalf("datagram %d flow %d differs:\nours    %v\ngoflow2 %v", i, j, o, g)
			}
			compared++
		}
	}
	t.Logf("%d flows identical to goflow2's", compared)
}
