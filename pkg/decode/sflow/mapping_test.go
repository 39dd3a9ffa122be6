package sflow

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gfproto "github.com/netsampler/goflow2/v2/producer/proto"
	"go.yaml.in/yaml/v3"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
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

// TestPortParsersSameAsGoflow2 decodes sampled headers that goflow2's own
// mapping.yaml sends through its port parsers (GRE in UDP 4754, Geneve
// on 6081, Teredo to 3544) and plain UDP and TCP, with that file on both
// sides (goflow2 v2.2.6's producer, and our decoder): the layers walked,
// the outer fields and the csum custom field must be goflow2's.
func TestPortParsersSameAsGoflow2(t *testing.T) {
	path := filepath.Join(interop.Goflow2Dir(t), "cmd", "goflow2", "mapping.yaml")
	m, err := mapping.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &gfproto.ProducerConfig{}
	if err := yaml.Unmarshal(raw, cfg); err != nil {
		t.Fatal(err)
	}
	cfgm, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := gfproto.CreateProtoProducer(cfgm, gfproto.CreateSamplingSystem)
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.2")
	c, d := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.2")
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:0:4136:e378::2")
	inner := cat(ipv4Hdr(c, d, 6, 0, 63, 1, 0, 40), tcpHdr(1234, 80, 0x12))
	frames := map[string][]byte{
		"udp":     cat(ethHdr(1, 2, 0x800), ipv4Hdr(a, b, 17, 0, 64, 7, 0, 28+40), udpHdr(5000, 53, 48), make([]byte, 40)),
		"tcp":     cat(ethHdr(1, 2, 0x800), ipv4Hdr(a, b, 6, 0, 64, 7, 0, 60), tcpHdr(40000, 443, 0x18), make([]byte, 20)),
		"gre-udp": cat(ethHdr(1, 2, 0x800), ipv4Hdr(a, b, 17, 0, 64, 7, 0, 28+4+40), udpHdr(40000, 4754, 8+4+40), []byte{0, 0, 0x08, 0x00}, inner),
		"geneve":  cat(ethHdr(1, 2, 0x800), ipv4Hdr(a, b, 17, 0, 64, 7, 0, 28+8+14+40), udpHdr(40000, 6081, 8+8+14+40), []byte{0, 0, 0x65, 0x58, 0, 0, 1, 0}, ethHdr(3, 4, 0x800), inner),
		"teredo":  cat(ethHdr(1, 2, 0x800), ipv4Hdr(a, b, 17, 0, 64, 7, 0, 28+40+20), udpHdr(40000, 3544, 8+40+20), ipv6Hdr(v6a, v6b, 6, 0, 9, 0, 20), tcpHdr(1, 2, 2)),
	}
	for name, f := range frames {
		dg := newDatagram(netip.MustParseAddr("192.0.2.1"), 0, 1).flow(1, 3, 4, recHeader(headerEthernet, uint32(len(f)), f)).bytes()
		dec := NewDecoder(Config{Packet: m.PacketOptions()})
		ours := decodeOne(t, dec, dg)
		theirs := goflow2Flows(t, prod, dg, 1)
		if len(theirs) != 1 {
			t.Fatalf("%s: goflow2 %d flows", name, len(theirs))
		}
		g := theirs[0]
		g.TimeReceivedNs, g.TimeFlowStartNs, g.TimeFlowEndNs = ours.TimeReceivedNs, ours.TimeFlowStartNs, ours.TimeFlowEndNs
		if k := slices.Index(ours.LayerStack, flowpb.FlowMessage_TCP); k >= 0 && k < len(g.LayerSize) {
			g.LayerSize[k] = ours.LayerSize[k] // goflow2 reads the TCP header length from the flags byte
		}
		if !ours.EqualVT(g) {
			t.Errorf("%s:\nours    %v\ngoflow2 %v", name, ours, g)
		}
	}
}
