package sflow

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"github.com/flowpipe/flowpipe/pkg/testutil/testtraffic"
)

var update = flag.Bool("update", false, "rebuild testdata/pmacct-sfprobe.pcap with pmacctd's sfprobe plugin")

const (
	fixturePmacct = "testdata/pmacct-sfprobe.pcap"
	fixturePort   = 6343
)

// pmacctSFlow runs pmacctd's sfprobe plugin on testtraffic's default pcap
// and returns the datagrams and the ground truth.
func pmacctSFlow(t *testing.T) ([][]byte, []testtraffic.Flow) {
	t.Helper()
	in := filepath.Join(t.TempDir(), "traffic.pcap")
	truth, err := testtraffic.Write(in, testtraffic.Default())
	if err != nil {
		t.Fatal(err)
	}
	dgs := interop.Pmacctd(t, in, "sfprobe", 0, "")
	if len(dgs) == 0 {
		t.Fatal("pmacctd sent no datagrams")
	}
	return dgs, truth
}

func groundTruth(t *testing.T) []testtraffic.Flow {
	t.Helper()
	truth, err := testtraffic.Write(filepath.Join(t.TempDir(), "traffic.pcap"), testtraffic.Default())
	if err != nil {
		t.Fatal(err)
	}
	return truth
}

// TestPmacctFixture decodes what pmacctd's sfprobe plugin exported for
// testtraffic's default flows (kept in testdata; rebuild with -update) and
// checks every flow against the ground truth and tshark's decode.
func TestPmacctFixture(t *testing.T) {
	if *update {
		dgs, _ := pmacctSFlow(t)
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := interop.WritePcap(fixturePmacct, dgs, fixturePort); err != nil {
			t.Fatal(err)
		}
	}
	dgs := readFixture(t, fixturePmacct)
	truth := groundTruth(t)
	flows := decodeFixture(t, dgs)
	checkAgainstTruth(t, flows, truth, true)
	t.Run("tshark", func(t *testing.T) { checkAgainstTshark(t, fixturePmacct, tsharkFields) })
}

// TestPmacctLive runs pmacctd now, when installed, so that a newer pmacct
// is checked too.
func TestPmacctLive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pmacctd")
	}
	dgs, truth := pmacctSFlow(t)
	checkAgainstTruth(t, decodeFixture(t, dgs), truth, false)
}

func readFixture(t *testing.T, path string) [][]byte {
	t.Helper()
	pkts, err := interop.ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, p := range pkts {
		out = append(out, p.Data)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no datagrams", path)
	}
	return out
}

func decodeFixture(t *testing.T, dgs [][]byte) []*flowpb.FlowMessage {
	t.Helper()
	d := NewDecoder(Config{})
	var flows []*flowpb.FlowMessage
	for i, dg := range dgs {
		got, err := decodeAll(d, dg)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		flows = append(flows, got...)
	}
	if st := d.Stats(); st.Flows == 0 || st.BadSamples != 0 {
		t.Fatalf("stats %+v", st)
	}
	return flows
}

// checkAgainstTruth matches every decoded flow to a ground-truth flow by
// its 5-tuple and checks what the sampled header carries.
// With exact, every packet must have been sampled; otherwise (a live
// pmacctd, interrupted when it has read the file, may not have sent its
// last datagrams on a busy machine) at least 80% of them.
func checkAgainstTruth(t *testing.T, flows []*flowpb.FlowMessage, truth []testtraffic.Flow, exact bool) {
	t.Helper()
	byKey := map[string]*testtraffic.Flow{}
	for i := range truth {
		f := &truth[i]
		byKey[flowKey(f.Src, f.Dst, f.Proto, f.SrcPort, f.DstPort)] = f
	}
	perFlow := map[*testtraffic.Flow]int{}
	kinds := map[string]bool{}
	for _, m := range flows {
		src, _ := netip.AddrFromSlice(m.SrcAddr)
		dst, _ := netip.AddrFromSlice(m.DstAddr)
		f := byKey[flowKey(src, dst, uint8(m.Proto), uint16(m.SrcPort), uint16(m.DstPort))]
		if f == nil {
			t.Errorf("flow %s not in the ground truth", flowKey(src, dst, uint8(m.Proto), uint16(m.SrcPort), uint16(m.DstPort)))
			continue
		}
		perFlow[f]++
		l2 := 14
		if f.VLAN != 0 {
			l2 += 4
			kinds["vlan"] = true
		}
		if f.IPv6() {
			kinds["ipv6"] = true
		}
		// Every packet of a flow has the same size: frame = L2 + L3.
		want := map[string][2]uint64{
			"bytes":    {m.Bytes, f.Bytes/uint64(f.Packets) + uint64(l2) + 4}, // pmacct counts the FCS
			"packets":  {m.Packets, 1},
			"vlan_id":  {uint64(m.VlanId), uint64(f.VLAN)},
			"ip_tos":   {uint64(m.IpTos), uint64(f.TOS)},
			"src_mac":  {m.SrcMac, macOr(f.SrcMAC, 0x020000000001)},
			"dst_mac":  {m.DstMac, macOr(f.DstMAC, 0x020000000002)},
			"type":     {uint64(m.Type), uint64(flowpb.FlowMessage_SFLOW_5)},
			"sampler":  {uint64(len(m.SamplerAddress)), 4},
			"icmptype": {uint64(m.IcmpType), uint64(f.ICMPType)},
			"icmpcode": {uint64(m.IcmpCode), uint64(f.ICMPCode)},
		}
		if f.Proto == testtraffic.ProtoICMP || f.Proto == testtraffic.ProtoICMPv6 {
			kinds[fmt.Sprintf("icmp%d/%d", f.ICMPType, f.ICMPCode)] = true
		}
		if f.TTL == 0 {
			want["ip_ttl"] = [2]uint64{uint64(m.IpTtl), 64}
		} else {
			want["ip_ttl"] = [2]uint64{uint64(m.IpTtl), uint64(f.TTL)}
		}
		for name, v := range want {
			if v[0] != v[1] {
				t.Errorf("%v: %s = %d, want %d", f.Key(), name, v[0], v[1])
			}
		}
	}
	// pmacctd samples every packet unless told otherwise.
	packets := 0
	for i := range truth {
		f := &truth[i]
		packets += f.Packets
		switch {
		case perFlow[f] > f.Packets || exact && perFlow[f] != f.Packets:
			t.Errorf("%v: %d samples, want %d", f.Key(), perFlow[f], f.Packets)
		case perFlow[f] != f.Packets:
			t.Logf("%v: %d samples of %d packets arrived", f.Key(), perFlow[f], f.Packets)
		}
	}
	if len(flows)*5 < packets*4 {
		t.Errorf("%d samples for %d packets", len(flows), packets)
	}
	for _, k := range []string{"vlan", "ipv6"} {
		if !kinds[k] {
			t.Errorf("no %s flow in the fixture", k)
		}
	}
	t.Logf("%d flows checked; kinds %v", len(flows), kinds)
}

func flowKey(src, dst netip.Addr, proto uint8, sport, dport uint16) string {
	return fmt.Sprintf("%s:%d>%s:%d/%d", src, sport, dst, dport, proto)
}

// macOr is testtraffic's MAC: def when the flow sets none.
func macOr(b []byte, def uint64) uint64 {
	if len(b) != 6 {
		return def
	}
	return packet.MAC(b)
}

// tsharkFields are compared, sample by sample, with what the decoder
// emits; outer means the field also matches the pcap's own Ethernet/IPv4/UDP
// frame around the datagram, whose occurrence comes first and is dropped.
type tsharkField struct {
	name  string
	outer bool
	value func(m *flowpb.FlowMessage) (string, bool) // false: the flow has no such field; | separates occurrences
}

var tsharkFields = []tsharkField{
	{"sflow_245.vlan.in", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.SrcVlan), true }},
	{"sflow_245.vlan.out", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.DstVlan), true }},
	{"sflow_245.header.frame_length", false, func(m *flowpb.FlowMessage) (string, bool) { return strconv.FormatUint(m.Bytes, 10), true }},
	{"sflow.flow_sample.sampling_rate", false, func(m *flowpb.FlowMessage) (string, bool) { return strconv.FormatUint(m.SamplingRate, 10), true }},
	{"eth.src", true, func(m *flowpb.FlowMessage) (string, bool) { return macString(m.SrcMac), true }},
	{"eth.dst", true, func(m *flowpb.FlowMessage) (string, bool) { return macString(m.DstMac), true }},
	{"vlan.id", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.VlanId), m.VlanId != 0 }},
	{"ip.src", true, func(m *flowpb.FlowMessage) (string, bool) { return addrString(m.SrcAddr), m.Etype == 0x800 }},
	{"ip.dst", true, func(m *flowpb.FlowMessage) (string, bool) { return addrString(m.DstAddr), m.Etype == 0x800 }},
	{"ip.ttl", true, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IpTtl), m.Etype == 0x800 }},
	{"ip.dsfield", true, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IpTos), m.Etype == 0x800 }},
	{"ip.id", true, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.FragmentId), m.Etype == 0x800 }},
	{"ipv6.src", false, func(m *flowpb.FlowMessage) (string, bool) { return addrString(m.SrcAddr), m.Etype == 0x86dd }},
	{"ipv6.dst", false, func(m *flowpb.FlowMessage) (string, bool) { return addrString(m.DstAddr), m.Etype == 0x86dd }},
	{"ipv6.hlim", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IpTtl), m.Etype == 0x86dd }},
	{"ipv6.tclass", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IpTos), m.Etype == 0x86dd }},
	{"ipv6.flow", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.Ipv6FlowLabel), m.Etype == 0x86dd }},
	{"tcp.srcport", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.SrcPort), m.Proto == 6 }},
	{"tcp.dstport", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.DstPort), m.Proto == 6 }},
	{"tcp.flags", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.TcpFlags), m.Proto == 6 }},
	{"udp.srcport", true, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.SrcPort), m.Proto == 17 }},
	{"udp.dstport", true, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.DstPort), m.Proto == 17 }},
	{"icmp.type", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IcmpType), m.Proto == 1 }},
	{"icmp.code", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IcmpCode), m.Proto == 1 }},
	{"icmpv6.type", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IcmpType), m.Proto == 58 }},
	{"icmpv6.code", false, func(m *flowpb.FlowMessage) (string, bool) { return u32(m.IcmpCode), m.Proto == 58 }},
}

// checkAgainstTshark decodes a pcap of sFlow datagrams with tshark and
// with the decoder, and compares every field of tsharkFields datagram by
// datagram, in sample order, plus the datagram's agent and sequence.
func checkAgainstTshark(t *testing.T, pcap string, fields []tsharkField) {
	t.Helper()
	bin := interop.Require(t, "tshark")
	args := []string{"-r", pcap, "-d", fmt.Sprintf("udp.port==%d,sflow", fixturePort), "--disable-protocol", "vxlan", "-T", "fields",
		"-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|",
		"-e", "sflow_245.agent", "-e", "sflow_245.agent.v6", "-e", "sflow_245.sequence_number", "-e", "sflow_245.sampletype"}
	for _, f := range fields {
		args = append(args, "-e", f.name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), interop.ToolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		t.Fatalf("tshark %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	dgs := readFixture(t, pcap)
	if len(lines) != len(dgs) {
		t.Fatalf("tshark: %d lines for %d datagrams", len(lines), len(dgs))
	}
	d := NewDecoder(Config{})
	compared := map[string]int{}
	for i, line := range lines {
		cols := strings.Split(line, "\t")
		occ := func(c int) []string {
			if c >= len(cols) || cols[c] == "" {
				return nil
			}
			return strings.Split(cols[c], "|")
		}
		flows, err := decodeAll(d, dgs[i])
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		agent := cols[0] + cols[1]
		for _, m := range flows {
			if addrString(m.SamplerAddress) != agent || u32(m.SequenceNum) != cols[2] {
				t.Fatalf("datagram %d: agent %s seq %d, tshark %s %s", i, addrString(m.SamplerAddress), m.SequenceNum, agent, cols[2])
			}
		}
		nFlowSamples := 0
		for _, st := range occ(3) {
			if st == "1" || st == "3" {
				nFlowSamples++
			}
		}
		if nFlowSamples != len(flows) {
			t.Fatalf("datagram %d: %d flows, tshark sees %d flow samples", i, len(flows), nFlowSamples)
		}
		for j, f := range fields {
			theirs := occ(4 + j)
			if f.outer && len(theirs) > 0 {
				theirs = theirs[1:]
			}
			var ours []string
			for _, m := range flows {
				if v, ok := f.value(m); ok {
					ours = append(ours, strings.Split(v, "|")...)
				}
			}
			for k := range theirs {
				theirs[k] = normalize(theirs[k])
			}
			if !slices.Equal(ours, theirs) {
				t.Errorf("datagram %d: %s: ours %v, tshark %v", i, f.name, ours, theirs)
			}
			compared[f.name] += len(ours)
		}
	}
	for _, f := range fields {
		if compared[f.name] == 0 {
			t.Errorf("%s: no value compared", f.name)
		}
	}
	t.Logf("values compared with tshark: %v", compared)
}

func u32(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func addrString(b []byte) string {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return fmt.Sprintf("%x", b)
	}
	return a.String()
}

func macString(v uint64) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// normalize turns tshark's hex renderings (0x00, 0x0000) into decimal.
func normalize(s string) string {
	if strings.HasPrefix(s, "0x") {
		if v, err := strconv.ParseUint(s, 0, 64); err == nil {
			return strconv.FormatUint(v, 10)
		}
	}
	return s
}
