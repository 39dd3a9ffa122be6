package netflow

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
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
// exporter's address and the packet's receive time.
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
	prime := primeFrom("softflowd-ipfix-biflow")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, 10, prime, data) })
}
