package netflow

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// fuzzSeeds adds the fixtures' datagrams of one version, and flowgen's.
func fuzzSeeds(f *testing.F, version uint16, names ...string) {
	for _, n := range names {
		dgs, err := interop.ReadPcap(filepath.Join("testdata", n+".pcap"))
		if err != nil {
			f.Fatal(err)
		}
		for _, dg := range dgs {
			f.Add(dg.Data)
		}
	}
	p := map[uint16]flowgen.Protocol{5: flowgen.NetFlowV5, 9: flowgen.NetFlowV9, 10: flowgen.IPFIX}[version]
	cfg := flowgen.Config{Protocol: p, Seed: 5, SamplingRate: 10, TemplateInterval: -1}
	if p != flowgen.NetFlowV5 {
		cfg.IPv6Ratio = 0.5
	}
	if p == flowgen.IPFIX {
		cfg.VariableLengthIE, cfg.EnterpriseIE = true, true
	}
	g, err := flowgen.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	if t := g.Templates(); t != nil {
		f.Add(append([]byte(nil), t...))
	}
	pkt, _ := g.Next()
	f.Add(append([]byte(nil), pkt...))
}

// fuzzDecode checks the decoder's invariants on arbitrary input, fed
// after a template packet (so that fuzzed data meets real templates):
// no panic, no hang, records bounded by the packet's size (a record takes
// at least one byte, biflows two records), every record carrying the
// exporter's address and the packet's receive time; AppendRecords writes
// the bytes Decode and flowpb's encoder write.
func fuzzDecode(t *testing.T, version uint16, prime [][]byte, data []byte) {
	d := NewDecoder(Config{MaxRecordsPerSet: 4096})
	exporter := exporterA
	for _, p := range prime {
		_ = d.Decode(decode.Packet{Data: p, Exporter: exporter, ReceivedNs: 1}, func(*flowpb.FlowMessage) {})
	}
	records := 0
	start := time.Now()
	_ = d.Decode(decode.Packet{Data: data, Exporter: exporter, ReceivedNs: 2}, func(m *flowpb.FlowMessage) {
		records++
		if len(m.SamplerAddress) != 4 || m.TimeReceivedNs == 0 {
			t.Fatalf("record without sampler address / receive time: %v", m)
		}
	})
	// Held sets released by templates in data may add the primed data.
	bound := 2*len(data) + 2*4096
	if records > bound {
		t.Fatalf("%d records from %d bytes", records, len(data))
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("decoding %d bytes took %v", len(data), time.Since(start))
	}
	a := newAppendPair(nil)
	for _, p := range prime {
		a.feed(t, decode.Packet{Data: p, Exporter: exporter, ReceivedNs: 1})
	}
	a.feed(t, decode.Packet{Data: data, Exporter: exporter, ReceivedNs: 2})
}

func primeFrom(name string) [][]byte {
	dgs, err := interop.ReadPcap(filepath.Join("testdata", name+".pcap"))
	if err != nil || len(dgs) == 0 {
		return nil
	}
	return [][]byte{dgs[0].Data}
}

// FuzzDecodeV5: invariants of fuzzDecode on NetFlow v5 packets.
func FuzzDecodeV5(f *testing.F) {
	fuzzSeeds(f, 5, "softflowd-v5", "pmacct-v5")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, 5, nil, data) })
}

// FuzzDecodeV9: invariants of fuzzDecode on NetFlow v9 packets, after
// pmacct's v9 templates (with sampling options).
func FuzzDecodeV9(f *testing.F) {
	fuzzSeeds(f, 9, "softflowd-v9", "pmacct-v9", "pmacct-v9-sampled")
	prime := primeFrom("pmacct-v9-sampled")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, 9, prime, data) })
}

// FuzzDecodeIPFIX: invariants of fuzzDecode on IPFIX packets, after
// softflowd's biflow templates.
func FuzzDecodeIPFIX(f *testing.F) {
	fuzzSeeds(f, 10, "softflowd-ipfix", "softflowd-ipfix-biflow", "softflowd-ipfix-nano", "pmacct-ipfix", "pmacct-ipfix-sampled")
	f.Add(ipfixMsg(1, 0, set(2, tmpl(400, [3]uint32{8, 0, 0})), set(400, make([]byte, 32))))
	eompls := sectionFrames()[4]
	f.Add(ipfixMsg(juniperDomain, 0, set(2, tmpl(juniperTemplateID, juniperFields...)),
		set(juniperTemplateID, juniperRecord(1, 2, eompls.wireSize, eompls.frame))))
	for _, p := range natPackets() {
		f.Add(p)
	}
	prime := primeFrom("softflowd-ipfix-biflow")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, 10, prime, data) })
}

// FuzzFrameSection feeds arbitrary frames to the packet parser through
// dataLinkFrameSection (315) in Juniper's inline-monitoring record, seeded
// with every frame kind of the section tests. Invariants: exactly one
// record, its interfaces and dataLinkFrameSize kept, packets 1, every
// field the parser read from the frame as package packet reads it alone,
// layer_stack never longer than layer_size; AppendRecords writes the bytes
// Decode and flowpb's encoder write.
func FuzzFrameSection(f *testing.F) {
	for _, sf := range sectionFrames() {
		f.Add(sf.frame, sf.wireSize)
	}
	f.Add([]byte{}, uint16(0))
	tmplMsg := ipfixMsg(juniperDomain, 0, set(2, tmpl(juniperTemplateID, juniperFields...)))
	f.Fuzz(func(t *testing.T, frame []byte, size uint16) {
		if len(frame) > 9000 {
			frame = frame[:9000]
		}
		d := NewDecoder(Config{})
		if err := d.Decode(decode.Packet{Data: tmplMsg, Exporter: juniper, ReceivedNs: 1}, func(*flowpb.FlowMessage) {}); err != nil {
			t.Fatal(err)
		}
		pkt := ipfixMsg(juniperDomain, 1, set(juniperTemplateID, juniperRecord(5, 6, size, frame)))
		var got []*flowpb.FlowMessage
		if err := d.Decode(decode.Packet{Data: pkt, Exporter: juniper, ReceivedNs: 2}, func(m *flowpb.FlowMessage) { got = append(got, m.CloneVT()) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("%d records", len(got))
		}
		m := got[0]
		if m.InIf != 5 || m.OutIf != 6 || m.Packets != 1 || (size != 0 && m.Bytes != uint64(size)) || (size == 0 && len(frame) > 0 && m.Bytes < uint64(len(frame))) {
			t.Fatalf("record %v", m)
		}
		if len(m.LayerStack) > len(m.LayerSize) {
			t.Fatalf("layer_stack %v longer than layer_size %v", m.LayerStack, m.LayerSize)
		}
		a := newAppendPair(nil) // AppendRecords writes the same bytes
		a.feed(t, decode.Packet{Data: tmplMsg, Exporter: juniper, ReceivedNs: 1})
		a.feed(t, decode.Packet{Data: pkt, Exporter: juniper, ReceivedNs: 2})
		var alone flowpb.FlowMessage
		if len(frame) > 0 {
			packet.Parse(&alone, frame, packet.Ethernet, sectionMaxLabels)
		}
		if !slices.Equal(m.LayerSize, alone.LayerSize) || !bytes.Equal(m.SrcAddr, alone.SrcAddr) || m.SrcPort != alone.SrcPort ||
			m.SrcMac != alone.SrcMac || !slices.Equal(m.MplsLabel, alone.MplsLabel) || m.Proto != alone.Proto {
			t.Fatalf("record %v\nparser alone %v", m, &alone)
		}
	})
}
