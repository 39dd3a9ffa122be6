package netflow

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	gfnetflow "github.com/netsampler/goflow2/v2/decoders/netflow"
	gfproducer "github.com/netsampler/goflow2/v2/producer"
	gfproto "github.com/netsampler/goflow2/v2/producer/proto"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// TestGoflow2MappingTargets decodes v9 and IPFIX records through a mapping
// in goflow2's form, with both paths (Decode, and AppendRecords which
// writes bin straight): elements into flow.proto's fields (samplingInterval
// 34 read little-endian into sampling_rate, over the options data's rate;
// sourceTransportPort 7 by its goflow2 Go name into dst_port) and into
// custom fields of formatter.protobuf (a varint, and an array of bytes).
func TestGoflow2MappingTargets(t *testing.T) {
	m, err := mapping.Load(stringsReader(`
formatter:
  protobuf:
    - {name: flow_direction, index: 42, type: varint}
    - {name: names, index: 2000, type: bytes, array: true}
ipfix:
  mapping:
    - {field: 61, destination: flow_direction}
    - {field: 82, destination: names}
    - {field: 34, destination: sampling_rate, endianness: little}
    - {field: 7, destination: DstPort}
netflowv9:
  mapping:
    - {field: 61, destination: flow_direction}
    - {field: 34, destination: sampling_rate, endianness: little}
`))
	if err != nil {
		t.Fatal(err)
	}
	fields := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {4, 1, 0}, {1, 4, 0}, {2, 4, 0}, {61, 1, 0}, {34, 4, 0}}
	rec := []byte{10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 6, 0, 0, 5, 0xdc, 0, 0, 0, 1, 1, 0x40, 0, 0, 0}
	for _, version := range []uint16{9, 10} {
		fs := fields
		data := rec
		if version == 10 {
			fs = append(fs, [3]uint32{82, 4, 0}, [3]uint32{82, 3, 0})
			data = append(append(append([]byte(nil), rec...), "ge-0"...), "xe1"...)
		}
		a := newAppendPair(m)
		var got []*flowpb.FlowMessage
		for _, pkt := range planPackets(version, fs, data) {
			p := decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: 1}
			a.feed(t, p)
		}
		d := NewDecoder(Config{Mapping: m})
		for _, pkt := range planPackets(version, fs, data) {
			if err := d.Decode(decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: 1}, func(m *flowpb.FlowMessage) { got = append(got, m.CloneVT()) }); err != nil {
				t.Fatal(err)
			}
		}
		if len(got) != 1 {
			t.Fatalf("v%d: %d records", version, len(got))
		}
		g := got[0]
		if g.SamplingRate != 64 {
			t.Errorf("v%d: sampling_rate %d, want 64 (40 00 00 00 little-endian)", version, g.SamplingRate)
		}
		want := protowire.AppendVarint(protowire.AppendTag(nil, 42, protowire.VarintType), 1)
		if version == 10 {
			if g.DstPort != 8080 {
				t.Errorf("DstPort %d, want 8080", g.DstPort)
			}
			want = protowire.AppendBytes(protowire.AppendTag(want, 2000, protowire.BytesType), []byte("ge-0"))
			want = protowire.AppendBytes(protowire.AppendTag(want, 2000, protowire.BytesType), []byte("xe1"))
		}
		if u := g.ProtoReflect().GetUnknown(); string(u) != string(want) {
			t.Errorf("v%d: custom fields % x, want % x", version, u, want)
		}
	}
}

// TestFrameSectionMappingSameAsGoflow2 decodes IPFIX data-link frame
// sections with goflow2 v2.2.6's own mapping.yaml on both sides (goflow2's
// producer, and our decoder with the mapping's packet options): its sflow
// section, which goflow2 applies to IPFIX frames too, must give the same
// custom fields (the UDP and TCP checksums in csum, 999) for every frame
// goflow2 walks whole.
func TestFrameSectionMappingSameAsGoflow2(t *testing.T) {
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
	fs := sectionFrames()
	tmplMsg, data := juniperPackets(fs)
	pkts := append([][]byte{tmplMsg}, data...)
	ours, errs := decodeAll(t, NewDecoder(Config{Mapping: m, Packet: m.PacketOptions()}), juniper, pkts...)
	if errs != nil {
		t.Fatal(errs)
	}
	templates := gfnetflow.CreateTemplateSystem()
	var theirs [][]byte
	for _, p := range pkts {
		var v9 gfnetflow.NFv9Packet
		var ipfix gfnetflow.IPFIXPacket
		if err := gfnetflow.DecodeMessageVersion(bytes.NewBuffer(p), templates, &v9, &ipfix); err != nil {
			t.Fatalf("goflow2: %v", err)
		}
		msgs, err := prod.Produce(&ipfix, &gfproducer.ProduceArgs{Src: juniper, SamplerAddress: juniper.Addr(), TimeReceived: time.Unix(0, 42)})
		if err != nil {
			t.Fatalf("goflow2: %v", err)
		}
		for _, gm := range msgs {
			theirs = append(theirs, bytes.Clone(gm.(*gfproto.ProtoProducerMessage).ProtoReflect().GetUnknown()))
		}
		prod.Commit(msgs)
	}
	if len(theirs) != len(ours) {
		t.Fatalf("goflow2 %d records, ours %d", len(theirs), len(ours))
	}
	compared := 0
	for i, f := range fs {
		if !f.goflow2 {
			continue
		}
		got := ours[i].ProtoReflect().GetUnknown()
		if !bytes.Equal(got, theirs[i]) {
			t.Errorf("%s: custom fields % x, goflow2 % x", f.name, got, theirs[i])
		}
		if len(got) > 0 {
			compared++
		}
	}
	if compared == 0 {
		t.Fatal("no frame gave a custom field")
	}
	t.Logf("%d frames with the same csum as goflow2's", compared)
}
