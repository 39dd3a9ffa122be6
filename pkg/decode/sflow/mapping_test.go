package sflow

import (
	"slices"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// TestLayerMappingBothPaths: goflow2's sflow mapping (the UDP and TCP
// checksums into csum, a custom varint) through Decode and through
// AppendRecords gives the same bytes, and every UDP or TCP flow carries
// its checksum.
func TestLayerMappingBothPaths(t *testing.T) {
	m, err := mapping.Load(strings.NewReader(`
formatter:
  protobuf:
    - {name: csum, index: 999, type: varint}
sflow:
  mapping:
    - {layer: "udp", offset: 48, length: 16, destination: csum}
    - {layer: "tcp", offset: 128, length: 16, destination: csum}
    - {layer: "ipv4", offset: 64, length: 8, destination: ip_ttl}
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := flowgen.New(flowgen.Config{Seed: 9, Protocol: flowgen.SFlow, IPv6Ratio: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	withCsum := 0
	for range 30 {
		pkt, _ := g.Next()
		p := decode.Packet{Data: slices.Clone(pkt), Exporter: testExporter, ReceivedNs: 1}
		checkAppend(t, Config{Packet: m.PacketOptions()}, p)
		d := NewDecoder(Config{Packet: m.PacketOptions()})
		if err := d.Decode(p, func(f *flowpb.FlowMessage) {
			if f.Proto == 6 || f.Proto == 17 {
				if len(f.ProtoReflect().GetUnknown()) == 0 {
					t.Fatalf("flow %v without csum", f)
				}
				withCsum++
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if withCsum == 0 {
		t.Fatal("no UDP or TCP flow")
	}
}
