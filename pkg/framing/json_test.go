package framing_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// addrBytes is an address as FlowMessage holds it: 4 bytes for IPv4.
func addrBytes(s string) []byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// goflowSFlowSample is the sFlow record of goflow2's documentation.
func goflowSFlowSample() *flowpb.FlowMessage {
	return &flowpb.FlowMessage{
		Type:           flowpb.FlowMessage_SFLOW_5,
		TimeReceivedNs: 1681583295157626000, TimeFlowStartNs: 1681583295157626000, TimeFlowEndNs: 1681583295157626000,
		SequenceNum: 2999, SamplingRate: 100,
		SamplerAddress: addrBytes("192.168.0.1"),
		Bytes:          1500, Packets: 1,
		SrcAddr: addrBytes("fd01::1"), DstAddr: addrBytes("fd01::2"),
		Etype: 0x86dd, Proto: 6, SrcPort: 443, DstPort: 50001,
	}
}

// goflowNetFlowV9Sample is a NetFlow v9 IPv4 record with most fields set.
func goflowNetFlowV9Sample() *flowpb.FlowMessage {
	return &flowpb.FlowMessage{
		Type:           flowpb.FlowMessage_NETFLOW_V9,
		TimeReceivedNs: 1700000000123456789,
		SequenceNum:    77, SamplingRate: 1000,
		SamplerAddress:  addrBytes("10.0.0.254"),
		TimeFlowStartNs: 1699999990000000000, TimeFlowEndNs: 1699999999000000000,
		Bytes: 123456, Packets: 89,
		SrcAddr: addrBytes("198.51.100.7"), DstAddr: addrBytes("203.0.113.9"),
		Etype: 0x800, Proto: 17, SrcPort: 53, DstPort: 33000,
		InIf: 3, OutIf: 7,
		SrcMac: 0x0011223344aa, DstMac: 0xa0b1c2d3e4f5,
		SrcVlan: 10, DstVlan: 20, VlanId: 10,
		IpTos: 184, ForwardingStatus: 64, IpTtl: 63, IpFlags: 2,
		FragmentId: 4242,
		SrcAs:      64500, DstAs: 64511,
		NextHop: addrBytes("10.0.0.1"), NextHopAs: 64501,
		SrcNet: 24, DstNet: 16,
		BgpNextHop:          addrBytes("10.0.0.2"),
		BgpCommunities:      []uint32{4227858433, 65000},
		AsPath:              []uint32{64501, 64511},
		ObservationDomainId: 256,
	}
}

// goflowEdgeSample exercises the renderings at their edges: an unnamed
// type, a 3-byte address, an IPv4-mapped address, an unnamed etype, a
// prefix longer than the address, a MAC with high bits, unnamed layers.
func goflowEdgeSample() *flowpb.FlowMessage {
	return &flowpb.FlowMessage{
		Type:           7,
		SamplerAddress: []byte{1, 2, 3},
		SrcAddr:        addrBytes("::ffff:192.0.2.7"), DstAddr: addrBytes("192.0.2.8"),
		Etype: 0x8847, Proto: 255,
		SrcNet: 120, DstNet: 33,
		SrcMac:                     0xffff_0102030405ff,
		MplsTtl:                    []uint32{64, 63},
		MplsLabel:                  []uint32{16, 17},
		MplsIp:                     [][]byte{addrBytes("10.1.1.1"), {9}},
		LayerStack:                 []flowpb.FlowMessage_LayerStack{0, 5, 1, 4, 99, 42},
		LayerSize:                  []uint32{14, 4, 20, 8, 0, 0},
		Ipv6RoutingHeaderAddresses: [][]byte{addrBytes("2001:db8::1"), addrBytes("2001:db8::2")},
		Ipv6RoutingHeaderSegLeft:   1,
	}
}

// goldenLines reads the lines goflow2 v2.2.6 itself printed (through its
// protoproducer and JSON format) for the messages of goldenMessages.
func goldenLines(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/goflow2-v2.2.6.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func goldenMessages() []*flowpb.FlowMessage {
	return []*flowpb.FlowMessage{
		goflowSFlowSample(),
		goflowNetFlowV9Sample(),
		goflowEdgeSample(),
		{Proto: 58, Etype: 0x806, DstNet: 8},
		{Proto: 1000, Etype: 0x800, Type: flowpb.FlowMessage_IPFIX},
	}
}

func TestAppendJSONMatchesGoflow2(t *testing.T) {
	lines := goldenLines(t)
	msgs := goldenMessages()
	if len(lines) != len(msgs) {
		t.Fatalf("%d golden lines for %d messages", len(lines), len(msgs))
	}
	for i, m := range msgs {
		got := string(framing.AppendJSON(nil, m, nil))
		if got != lines[i] {
			t.Errorf("message %d:\n got %s\nwant %s", i, got, lines[i])
		}
	}
}

func TestAppendJSONEnrichment(t *testing.T) {
	m := goflowNetFlowV9Sample()
	m.SrcCountry, m.DstCountry = "FR", "US"
	m.SrcAsName, m.DstAsName = `AT&T "Services"`, "Müller\tGmbH\x01"
	m.SrcNetName = "office"
	m.SrcNetLabels = map[string]string{"site": "par1", "env": "prod", "zone": "b"}
	m.DstNetLabels = map[string]string{"k": "v"}
	m.SrcNetPrefix = "198.51.100.0/24"
	m.FlowDirection = flowpb.FlowMessage_EGRESS
	m.BiflowReverse = true
	got := string(framing.AppendJSON(nil, m, nil))
	base := string(framing.AppendJSON(nil, goflowNetFlowV9Sample(), nil))
	want := strings.TrimSuffix(base, "}") + `,"src_country":"FR","dst_country":"US",` +
		`"src_as_name":"AT&T \"Services\"","dst_as_name":"Müller\tGmbH\u0001",` +
		`"src_net_name":"office","src_net_labels":{"env":"prod","site":"par1","zone":"b"},` +
		`"dst_net_labels":{"k":"v"},"src_net_prefix":"198.51.100.0/24",` +
		`"flow_direction":"egress","biflow_reverse":true}`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Error("not valid JSON")
	}
}

func TestAppendJSONLabelOrder(t *testing.T) {
	for _, n := range []int{1, 2, 16, 17, 40} { // small maps are scanned, large ones sorted
		labels := map[string]string{}
		want := `"src_net_labels":{`
		for i := range n {
			k := fmt.Sprintf("k%02d", (i*7)%n)
			labels[k] = k
		}
		for i := range n {
			if i > 0 {
				want += ","
			}
			want += fmt.Sprintf(`"k%02d":"k%02d"`, i, i)
		}
		got := string(framing.AppendJSON(nil, &flowpb.FlowMessage{SrcNetLabels: labels}, nil))
		if !strings.Contains(got, want+"}") {
			t.Errorf("%d labels out of order: %s", n, got)
		}
	}
}

func TestAppendJSONEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\n\r\t\x00\x1f\x7f", `"\n\r\t\u0000\u001f` + "\x7f\""},
		{"é€😀", `"é€😀"`},
		{"bad\xffutf8\xc3", "\"bad\uFFFDutf8\uFFFD\""},
		{"\u2028", "\"\u2028\""},
	} {
		got := framing.AppendJSON(nil, &flowpb.FlowMessage{SrcCountry: tc.in}, nil)
		want := `,"src_country":` + tc.want + "}"
		if !strings.HasSuffix(string(got), want) {
			t.Errorf("%q: got %s, want suffix %s", tc.in, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("%q: not valid JSON: %s", tc.in, got)
		}
	}
}

// customOpts maps the fields goflow2's documentation adds for NAT.
func customOpts() *framing.JSONOptions {
	return &framing.JSONOptions{Custom: []framing.CustomField{
		{Name: "post_nat_src_ipv4_address", Number: 1200, Render: framing.RenderIP},
		{Name: "post_napt_src_transport_port", Number: 1201, Render: framing.RenderUint},
		{Name: "app_id", Number: 1202, Render: framing.RenderHex},
		{Name: "app_name", Number: 1203, Render: framing.RenderString},
		{Name: "absent", Number: 1204, Render: framing.RenderUint},
	}}
}

func withUnknown(m *flowpb.FlowMessage) *flowpb.FlowMessage {
	var u []byte
	u = protowire.AppendTag(u, 1201, protowire.VarintType)
	u = protowire.AppendVarint(u, 1)
	u = protowire.AppendTag(u, 1200, protowire.BytesType)
	u = protowire.AppendBytes(u, addrBytes("192.0.2.99"))
	u = protowire.AppendTag(u, 1201, protowire.VarintType) // repeated: the last wins
	u = protowire.AppendVarint(u, 41015)
	u = protowire.AppendTag(u, 1202, protowire.BytesType)
	u = protowire.AppendBytes(u, []byte{0x0d, 0x00, 0xbe, 0xef})
	u = protowire.AppendTag(u, 1203, protowire.BytesType)
	u = protowire.AppendBytes(u, []byte(`web "edge"`))
	u = protowire.AppendTag(u, 1299, protowire.Fixed32Type) // not mapped
	u = protowire.AppendFixed32(u, 5)
	m.ProtoReflect().SetUnknown(u)
	return m
}

func TestAppendJSONCustom(t *testing.T) {
	m := withUnknown(&flowpb.FlowMessage{BiflowReverse: true})
	got := string(framing.AppendJSON(nil, m, customOpts()))
	want := `"biflow_reverse":true,"post_nat_src_ipv4_address":"192.0.2.99",` +
		`"post_napt_src_transport_port":41015,"app_id":"0d00beef","app_name":"web \"edge\""}`
	if !strings.HasSuffix(got, want) {
		t.Errorf("\n got %s\nwant suffix %s", got, want)
	}
	if plain := string(framing.AppendJSON(nil, m, nil)); strings.Contains(plain, "post_nat") {
		t.Errorf("custom fields written without options: %s", plain)
	}
}

func TestAppendJSONLine(t *testing.T) {
	got := framing.AppendJSONLine([]byte("x"), goflowSFlowSample(), nil)
	if got[0] != 'x' || got[len(got)-1] != '\n' || got[len(got)-2] != '}' {
		t.Errorf("got %q", got)
	}
}

func TestAppendJSONNoAllocs(t *testing.T) {
	m := withUnknown(goflowNetFlowV9Sample())
	m.SrcNetLabels = map[string]string{"site": "par1", "env": "prod"}
	m.SrcAsName = "Example"
	opts := customOpts()
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = framing.AppendJSON(buf[:0], m, opts) }); n != 0 {
		t.Errorf("AppendJSON: %v allocs, want 0", n)
	}
}
