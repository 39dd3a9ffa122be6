package sflow

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// checkAppend decodes p through Decode (each flow encoded by flowpb's
// AppendDelimited) and through AppendRecords, twice each (the second time
// after the messages were reused), and requires the same bytes, flows and
// error.
func checkAppend(t testing.TB, cfg Config, p decode.Packet) {
	t.Helper()
	ref, got := NewDecoder(cfg), NewDecoder(cfg)
	for range 2 {
		var want []byte
		n := 0
		werr := ref.Decode(p, func(m *flowpb.FlowMessage) { n++; want = m.AppendDelimited(want) })
		out, k, gerr := got.AppendRecords([]byte("x"), p)
		if k != n || fmt.Sprint(werr) != fmt.Sprint(gerr) {
			t.Fatalf("AppendRecords: %d flows, %v; Decode: %d flows, %v", k, gerr, n, werr)
		}
		if !bytes.Equal(out[1:], want) {
			t.Fatalf("AppendRecords wrote\n% x\nDecode + AppendDelimited\n% x", out[1:], want)
		}
	}
}

// TestAppendRecordsMatchesDecode: the pmacctd capture, flowgen datagrams
// (IPv4 and IPv6 agents and flows, expanded samples, counters), and the
// hand-built datagrams of the other tests (every record kind, QinQ,
// MPLS, SRv6, GRE, VXLAN, gateway records) give the same bytes through
// AppendRecords as through Decode and flowpb's encoder: appendSample
// writes every field an sFlow flow can have.
func TestAppendRecordsMatchesDecode(t *testing.T) {
	var pkts [][]byte
	if ps, err := readPcapData(fixturePmacct); err == nil {
		pkts = append(pkts, ps...)
	} else {
		t.Fatal(err)
	}
	for _, agent := range []string{"192.0.2.1", "2001:db8::1"} {
		g, err := flowgen.New(flowgen.Config{Seed: 3, Protocol: flowgen.SFlow, Exporter: netip.MustParseAddr(agent), IPv6Ratio: 0.5, SamplingRate: 2048})
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			pkt, _ := g.Next()
			pkts = append(pkts, slices.Clone(pkt))
		}
	}
	pkts = append(pkts, benchDatagram(), v6AgentDatagram(), flowgenDatagram(t))
	srh := cat([]byte{17, 4, 4, 1, 1, 0, 0, 0}, v6a.AsSlice(), v6b.AsSlice()) // segment routing header, 2 segments
	for _, h := range [][]byte{
		cat(ethHdr(1, 2, 0x8100), vlanTag(0x2064, 0x88a8), vlanTag(7, 0x800), ipv4Hdr(v4a, v4b, 6, 0x28, 64, 9, 0x4000, 40), tcpHdr(443, 50000, 0x12)),
		cat(ethHdr(3, 4, 0x86dd), ipv6Hdr(v6a, v6b, 43, 0x20, 60, 0xabcde, 64), srh, udpHdr(53, 5353, 8)),
		cat(ethHdr(5, 6, 0x8847), mplsLabel(100, false, 64), mplsLabel(200, true, 63), ipv4Hdr(v4a, v4b, 1, 0, 9, 1, 0, 28), icmpHdr(8, 0)),
		cat(ethHdr(7, 8, 0x800), ipv4Hdr(v4a, v4b, 47, 0, 64, 2, 0, 64), []byte{0, 0, 0x08, 0}, ipv4Hdr(v4b, v4a, 17, 0, 64, 3, 0x2001, 36)),
		cat(ethHdr(9, 10, 0x86dd), ipv6Hdr(v6a, v6b, 58, 0, 255, 0, 8), icmpHdr(135, 0)),
	} {
		pkts = append(pkts, newDatagram(agent4, 0, 1).flow(1024, 1, 2, recHeader(headerEthernet, 1500, h)).bytes())
		pkts = append(pkts, newDatagram(agent4, 0, 2).expanded(10, 0, 3, 1, 4, recHeader(headerEthernet, 1500, h), recSwitch(10, 20),
			recRouter(v4b, 24, 16), recGateway(v4b, 65000, 65001, []uint32{1, 2}, []uint32{65002, 65003}, []uint32{7})).bytes())
	}
	good := goodRecords()
	pkts = append(pkts, newDatagram(agent4, 0, 1).flow(1, 1, 0, append(good, recGateway(v4a, 1, 2, []uint32{1}, []uint32{1, 2}, []uint32{3}))...).bytes())
	for i, p := range pkts {
		checkAppend(t, Config{}, decode.Packet{Data: p, Exporter: testExporter, ReceivedNs: uint64(1e18 + i)})
	}
}
