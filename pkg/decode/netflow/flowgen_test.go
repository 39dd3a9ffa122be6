package netflow

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

var genExporter = netip.MustParseAddrPort("192.0.2.1:50000")

// TestFlowgenGroundTruth decodes flowgen's packets and compares every
// record, in order, with the flows flowgen says it encoded.
func TestFlowgenGroundTruth(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  flowgen.Config
	}{
		{"v5", flowgen.Config{Protocol: flowgen.NetFlowV5, SamplingRate: 64, ObservationDomain: 0x0102}},
		{"v9", flowgen.Config{Protocol: flowgen.NetFlowV9, IPv6Ratio: 0.3, SamplingRate: 100, ObservationDomain: 7}},
		{"v9-unsampled", flowgen.Config{Protocol: flowgen.NetFlowV9, IPv6Ratio: 0.5}},
		{"ipfix", flowgen.Config{Protocol: flowgen.IPFIX, IPv6Ratio: 0.3, SamplingRate: 1000, ObservationDomain: 9,
			VariableLengthIE: true, EnterpriseIE: true}},
		{"ipfix-bench", flowgen.Config{Protocol: flowgen.IPFIX}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Seed = 42
			tc.cfg.TemplateInterval = 5
			g, err := flowgen.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := NewDecoder(Config{})
			var got []*flowpb.FlowMessage
			emit := func(m *flowpb.FlowMessage) { got = append(got, m.CloneVT()) }
			total := 0
			for i := 0; i < 30; i++ {
				pkt, flows := g.Next()
				got = got[:0]
				ns := uint64(g.Time().UnixNano())
				if err := d.Decode(decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: ns}, emit); err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if len(got) != len(flows) {
					t.Fatalf("packet %d: %d records, want %d", i, len(got), len(flows))
				}
				for j := range flows {
					compareFlow(t, got[j], &flows[j], tc.cfg)
				}
				total += len(flows)
			}
			if total == 0 {
				t.Fatal("no flows")
			}
		})
	}
}

func compareFlow(t *testing.T, m *flowpb.FlowMessage, f *flowgen.Flow, cfg flowgen.Config) {
	t.Helper()
	ok := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s > %s: %s = %v, want %v", f.SrcAddr, f.DstAddr, what, got, want)
		}
	}
	ok("src_addr", addrText(m.SrcAddr), f.SrcAddr.String())
	ok("dst_addr", addrText(m.DstAddr), f.DstAddr.String())
	ok("next_hop", addrText(m.NextHop), f.NextHop.String())
	ok("src_port", m.SrcPort, uint32(f.SrcPort))
	ok("dst_port", m.DstPort, uint32(f.DstPort))
	ok("proto", m.Proto, uint32(f.Proto))
	ok("bytes", m.Bytes, f.Bytes)
	ok("packets", m.Packets, f.Packets)
	ok("start", m.TimeFlowStartNs, uint64(f.Start.UnixNano()))
	ok("end", m.TimeFlowEndNs, uint64(f.End.UnixNano()))
	ok("in_if", m.InIf, f.InIf)
	ok("out_if", m.OutIf, f.OutIf)
	ok("src_as", m.SrcAs, f.SrcAS)
	ok("dst_as", m.DstAs, f.DstAS)
	ok("src_net", m.SrcNet, uint32(f.SrcMask))
	ok("dst_net", m.DstNet, uint32(f.DstMask))
	ok("tos", m.IpTos, uint32(f.TOS))
	ok("tcp_flags", m.TcpFlags, uint32(f.TCPFlags))
	ok("sampling_rate", m.SamplingRate, uint64(f.SamplingRate))
	ok("sampler_address", addrText(m.SamplerAddress), genExporter.Addr().String())
	etype := uint32(0x800)
	if f.SrcAddr.Is6() {
		etype = 0x86dd
		if cfg.Protocol != flowgen.NetFlowV5 {
			ok("flow_label", m.Ipv6FlowLabel, f.FlowLabel)
		}
	}
	ok("etype", m.Etype, etype)
	if cfg.Protocol != flowgen.NetFlowV5 {
		ok("src_mac", m.SrcMac, macU64(f.SrcMAC))
		ok("dst_mac", m.DstMac, macU64(f.DstMAC))
		ok("vlan", m.VlanId, uint32(f.VLAN))
		ok("domain", m.ObservationDomainId, cfg.ObservationDomain)
	}
}

func macU64(b [6]byte) uint64 {
	var u uint64
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	return u
}

// TestFlowgenPendingThenDecoded sends data before templates: the sets are
// held and decoded when the template packet arrives, in order.
func TestFlowgenPendingThenDecoded(t *testing.T) {
	g, err := flowgen.New(flowgen.Config{Protocol: flowgen.IPFIX, Seed: 1, TemplateInterval: -1, IPv6Ratio: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(Config{})
	var got []*flowpb.FlowMessage
	emit := func(m *flowpb.FlowMessage) { got = append(got, m.CloneVT()) }
	var want []flowgen.Flow
	for i := 0; i < 3; i++ {
		pkt, flows := g.Next()
		want = append(want, flows...)
		err := d.Decode(decode.Packet{Data: bytes.Clone(pkt), Exporter: genExporter, ReceivedNs: uint64(g.Time().UnixNano())}, emit)
		if decode.Reason(err) != "template_missing" {
			t.Fatalf("packet %d: error %v, want template missing", i, err)
		}
		// flows share buffers with the next call
		want = append(want[:len(want)-len(flows)], append([]flowgen.Flow(nil), flows...)...)
	}
	if len(got) != 0 {
		t.Fatalf("%d records before the template", len(got))
	}
	if st := d.Templates().Stats(); st.PendingSets == 0 {
		t.Fatalf("nothing pending: %+v", st)
	}
	if err := d.Decode(decode.Packet{Data: g.Templates(), Exporter: genExporter, ReceivedNs: uint64(g.Time().UnixNano())}, emit); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records after the template, want %d", len(got), len(want))
	}
	// Held sets are released template by template: compare as multisets.
	var gs, w []string
	for i := range want {
		gs = append(gs, fmt.Sprintf("%s/%d/%d", addrText(got[i].SrcAddr), got[i].Bytes, got[i].TimeFlowStartNs))
		w = append(w, fmt.Sprintf("%s/%d/%d", want[i].SrcAddr, want[i].Bytes, want[i].Start.UnixNano()))
	}
	if sorted(gs) != sorted(w) {
		t.Fatalf("released records differ:\n got %s\nwant %s", sorted(gs), sorted(w))
	}
	if st := d.Templates().Stats(); st.PendingSets != 0 || st.PendingDecoded == 0 {
		t.Fatalf("stats after release: %+v", st)
	}
}
