package sflow

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

var testExporter = netip.MustParseAddrPort("192.0.2.99:6343")

// decodeAll decodes one datagram and returns copies of its flows.
func decodeAll(d *Decoder, data []byte) ([]*flowpb.FlowMessage, error) {
	var out []*flowpb.FlowMessage
	err := d.Decode(decode.Packet{Data: data, Exporter: testExporter, ReceivedNs: 1_700_000_000_000_000_000},
		func(m *flowpb.FlowMessage) { out = append(out, m.CloneVT()) })
	return out, err
}

func addrBytes(a netip.Addr) []byte { return a.AsSlice() }

func macUint(m [6]byte) uint64 { return packet.MAC(m[:]) }

// TestFlowgen checks every field flowgen puts in its datagrams (compact and
// expanded flow samples, extended switch/router/gateway, a counter sample)
// against flowgen's ground truth, for IPv4 and IPv6 agents and flows.
func TestFlowgen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		agent string
		v6    float64
		hdr   int
	}{
		{"v4-agent", "192.0.2.1", 0, 128},
		{"v6-agent-mixed", "2001:db8::1", 0.5, 128},
		{"v6-flows-short-headers", "198.51.100.7", 1, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := netip.MustParseAddr(tc.agent)
			g, err := flowgen.New(flowgen.Config{Seed: 7, Protocol: flowgen.SFlow, Exporter: agent,
				IPv6Ratio: tc.v6, SamplingRate: 512, ObservationDomain: 3, HeaderSize: tc.hdr})
			if err != nil {
				t.Fatal(err)
			}
			var counters []CounterRecord
			d := NewDecoder(Config{OnCounters: func(c *CounterRecord) {
				cc := *c
				ic := *c.Interface
				cc.Interface = &ic
				counters = append(counters, cc)
			}})
			total := 0
			seen := map[uint32]bool{}
			for range 50 {
				pkt, truth := g.Next()
				got, err := decodeAll(d, pkt)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(truth) {
					t.Fatalf("%d flows, want %d", len(got), len(truth))
				}
				for i := range truth {
					checkFlowgenFlow(t, got[i], &truth[i], agent, tc.hdr)
					if t.Failed() {
						t.FailNow()
					}
					seen[got[i].Proto] = true
				}
				total += len(got)
			}
			for _, p := range []uint32{6, 17} {
				if !seen[p] {
					t.Errorf("no flow of proto %d in the sample", p)
				}
			}
			if tc.v6 > 0 && !seen[58] || tc.v6 < 1 && !seen[1] {
				t.Errorf("no ICMP flows seen: %v", seen)
			}
			st := d.Stats()
			want := Stats{Datagrams: 50, FlowSamples: uint64(total / 2), ExpandedFlowSamples: uint64(total / 2),
				CounterSamples: 50, Flows: uint64(total)}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			if len(counters) != 50 {
				t.Fatalf("%d counter records, want 50", len(counters))
			}
			c := counters[3]
			if c.Agent != agent || c.SubAgentID != 3 || c.Interface == nil || c.Interface.IfSpeed != 10_000_000_000 ||
				c.Interface.IfInOctets != uint64(c.SampleSequence)*1_000_000 || c.Interface.IfOutOctets != uint64(c.SampleSequence)*2_000_000 ||
				c.SourceIDIndex != c.Interface.IfIndex || c.Ethernet != nil {
				t.Errorf("counter record %+v / %+v", c, c.Interface)
			}
			if _, err := json.Marshal(c); err != nil {
				t.Error(err)
			}
		})
	}
}

func checkFlowgenFlow(t *testing.T, m *flowpb.FlowMessage, f *flowgen.Flow, agent netip.Addr, hdrSize int) {
	t.Helper()
	eq := func(name string, got, want any) {
		t.Helper()
		if !equalAny(got, want) {
			t.Errorf("%s = %v, want %v (flow %+v)", name, got, want, f)
		}
	}
	eq("type", m.Type, flowpb.FlowMessage_SFLOW_5)
	eq("sampler_address", m.SamplerAddress, addrBytes(agent))
	eq("src_addr", m.SrcAddr, addrBytes(f.SrcAddr))
	eq("dst_addr", m.DstAddr, addrBytes(f.DstAddr))
	eq("next_hop", m.NextHop, addrBytes(f.NextHop))
	eq("bgp_next_hop", m.BgpNextHop, addrBytes(f.NextHop))
	eq("proto", m.Proto, uint32(f.Proto))
	// A short sampled header may end before the transport header.
	need := 14 + 20 + 8
	if f.VLAN != 0 {
		need += 4
	}
	if f.SrcAddr.Is6() {
		need += 20
	}
	if f.Proto == 6 {
		need += 12
	}
	if need > hdrSize {
		eq("dst_port", m.DstPort, uint32(0))
		eq("tcp_flags", m.TcpFlags, uint32(0))
		f.SrcPort, f.DstPort, f.TCPFlags = 0, 0, 0
	} else if f.Proto == 1 || f.Proto == 58 {
		eq("icmp_type", m.IcmpType, uint32(f.DstPort>>8))
		eq("icmp_code", m.IcmpCode, uint32(f.DstPort&0xff))
		eq("src_port", m.SrcPort, uint32(0))
	} else {
		eq("src_port", m.SrcPort, uint32(f.SrcPort))
		eq("dst_port", m.DstPort, uint32(f.DstPort))
	}
	eq("bytes", m.Bytes, f.Bytes)
	eq("packets", m.Packets, f.Packets)
	eq("sampling_rate", m.SamplingRate, uint64(f.SamplingRate))
	eq("in_if", m.InIf, f.InIf)
	eq("out_if", m.OutIf, f.OutIf)
	eq("src_as", m.SrcAs, f.SrcAS)
	eq("dst_as", m.DstAs, f.DstAS)
	eq("next_hop_as", m.NextHopAs, f.ASPath[0])
	eq("as_path", m.AsPath, f.ASPath)
	eq("bgp_communities", m.BgpCommunities, f.Communities)
	eq("src_net", m.SrcNet, uint32(f.SrcMask))
	eq("dst_net", m.DstNet, uint32(f.DstMask))
	eq("src_mac", m.SrcMac, macUint(f.SrcMAC))
	eq("dst_mac", m.DstMac, macUint(f.DstMAC))
	eq("vlan_id", m.VlanId, uint32(f.VLAN))
	eq("src_vlan", m.SrcVlan, uint32(f.VLAN))
	eq("dst_vlan", m.DstVlan, uint32(f.VLAN))
	eq("ip_tos", m.IpTos, uint32(f.TOS))
	eq("tcp_flags", m.TcpFlags, uint32(f.TCPFlags))
	eq("ipv6_flow_label", m.Ipv6FlowLabel, f.FlowLabel)
	eq("time_flow_start_ns", m.TimeFlowStartNs, m.TimeReceivedNs)
	eq("time_flow_end_ns", m.TimeFlowEndNs, m.TimeReceivedNs)
	if f.SrcAddr.Is4() {
		eq("etype", m.Etype, uint32(0x800))
	} else {
		eq("etype", m.Etype, uint32(0x86dd))
	}
}

func equalAny(a, b any) bool {
	switch a := a.(type) {
	case []byte:
		return slices.Equal(a, b.([]byte))
	case []uint32:
		return slices.Equal(a, b.([]uint32))
	}
	return a == b
}

// gatewayFields are what flowgen's extended router and gateway records
// carry, as tshark names them.
var gatewayFields = []tsharkField{
	{"sflow_245.nexthop.src_mask", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.SrcNet), true }},
	{"sflow_245.nexthop.dst_mask", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.DstNet), true }},
	{"sflow_245.srcAS", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.SrcAs), true }},
	{"sflow_245.dstAS", false, func(m *flowpb.FlowMessage) (string, bool) {
		// tshark lists the path, then the communities, under this name.
		var p []string
		for _, as := range slices.Concat(m.AsPath, m.BgpCommunities) {
			p = append(p, u32(as))
		}
		return strings.Join(p, "|"), len(p) > 0
	}},
}

// TestFlowgenTshark writes flowgen datagrams to a pcap and compares the
// decode with tshark's, sample by sample.
func TestFlowgenTshark(t *testing.T) {
	g, err := flowgen.New(flowgen.Config{Seed: 11, Protocol: flowgen.SFlow, IPv6Ratio: 0.3, SamplingRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	var dgs [][]byte
	for range 20 {
		pkt, _ := g.Next()
		dgs = append(dgs, slices.Clone(pkt)) // Next reuses its buffer
	}
	pcap := filepath.Join(t.TempDir(), "flowgen.pcap")
	if err := interop.WritePcap(pcap, dgs, fixturePort); err != nil {
		t.Fatal(err)
	}
	checkAgainstTshark(t, pcap, append(slices.Clone(tsharkFields), gatewayFields...))
}
