package framing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

func requireEqual(t *testing.T, got, want *flowpb.FlowMessage) {
	t.Helper()
	if !got.EqualVT(want) {
		t.Errorf("messages differ\n got %v\nwant %v", got, want)
	}
}

func TestParseJSONGoflow2Lines(t *testing.T) {
	lines := goldenLines(t)
	want := goldenMessages()
	// What goflow2's rendering loses: unnamed etypes, the 3-byte address,
	// the high MAC bits, a prefix longer than its address.
	want[2].SamplerAddress = nil
	want[2].Etype = 0
	want[2].SrcMac &= 1<<48 - 1
	want[2].DstNet = 0
	want[2].MplsIp[1] = nil
	want[3].DstNet = 0 // no address to form a prefix with
	want[4].Proto = 256
	for i, line := range lines {
		var m flowpb.FlowMessage
		if err := framing.ParseJSON([]byte(line), &m, nil); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		requireEqual(t, &m, want[i])
	}
}

func TestParseJSONRoundTrip(t *testing.T) {
	for i, m := range []*flowpb.FlowMessage{
		goflowSFlowSample(),
		goflowNetFlowV9Sample(),
		{},
		{
			SrcAddr: addrBytes("2001:db8::1"), DstAddr: addrBytes("2001:db8::2"), SrcNet: 48, DstNet: 128,
			Proto: 132, Etype: 0x86dd, Type: flowpb.FlowMessage_IPFIX,
			LayerStack:                 []flowpb.FlowMessage_LayerStack{2, 3, 12, 13, 99, 10, 11},
			MplsIp:                     [][]byte{addrBytes("10.0.0.1"), addrBytes("::1")},
			SrcCountry:                 "FR",
			DstCountry:                 "US",
			SrcAsName:                  "Ex\"ample\\ \u00e9\n",
			DstAsName:                  "😀",
			SrcNetName:                 "a",
			DstNetName:                 "b",
			SrcNetLabels:               map[string]string{"site": "par1", "": "empty", "q\"": "\t"},
			DstNetLabels:               map[string]string{"k": ""},
			SrcNetPrefix:               "2001:db8::/48",
			DstNetPrefix:               "2001:db8::/32",
			FlowDirection:              flowpb.FlowMessage_EXTERNAL,
			BiflowReverse:              true,
			SrcMac:                     0xffffffffffff,
			SamplingRate:               1<<64 - 1,
			Ipv6RoutingHeaderAddresses: [][]byte{addrBytes("2001:db8::9")},
		},
		withUnknown(&flowpb.FlowMessage{Proto: 6}),
	} {
		opts := customOpts()
		line := framing.AppendJSON(nil, m, opts)
		var got flowpb.FlowMessage
		if err := framing.ParseJSON(line, &got, opts); err != nil {
			t.Fatalf("message %d: %v\n%s", i, err, line)
		}
		if m.ProtoReflect().GetUnknown() != nil {
			// The unknown fields come back in the order of opts, the repeated one once.
			if again := framing.AppendJSON(nil, &got, opts); string(again) != string(line) {
				t.Errorf("message %d:\n got %s\nwant %s", i, again, line)
			}
			continue
		}
		requireEqual(t, &got, m)
	}
}

func TestParseJSONAlternatives(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       *flowpb.FlowMessage
	}{
		{"empty object", `{}`, &flowpb.FlowMessage{}},
		{"spaces", " \t{ \"bytes\" : 1 , \"packets\":2 } \r\n", &flowpb.FlowMessage{Bytes: 1, Packets: 2}},
		{"type number", `{"type":3}`, &flowpb.FlowMessage{Type: 3}},
		{"type unnamed", `{"type":"9"}`, &flowpb.FlowMessage{Type: 9}},
		{"etype and proto numbers", `{"etype":34525,"proto":"17"}`, &flowpb.FlowMessage{Etype: 0x86dd, Proto: 17}},
		{"goflow2 v2.0 proto names", `{"proto":"ICMPv6","etype":"ARP"}`, &flowpb.FlowMessage{Proto: 58, Etype: 0x806}},
		{"proto table", `{"proto":"ISIS over IPv4"}`, &flowpb.FlowMessage{Proto: 124}},
		{"proto ranges", `{"proto":"experimental"}`, &flowpb.FlowMessage{Proto: 253}},
		{"uint64 as string", `{"bytes":"18446744073709551615"}`, &flowpb.FlowMessage{Bytes: 1<<64 - 1}},
		{"RFC 3339 times", `{"time_received_ns":"2025-03-15T17:10:51.064235982Z","time_flow_start_ns":"1970-01-01T02:00:01+01:00"}`,
			&flowpb.FlowMessage{TimeReceivedNs: 1742058651064235982, TimeFlowStartNs: 3601e9}},
		{"nulls", `{"src_addr":null,"as_path":null,"bytes":null,"src_country":null,"src_net_labels":null,"biflow_reverse":null}`, &flowpb.FlowMessage{}},
		{"MAC upper case and dashes", `{"src_mac":"AA-BB-CC-DD-EE-0F","dst_mac":1}`, &flowpb.FlowMessage{SrcMac: 0xaabbccddee0f, DstMac: 1}},
		{"src_net as number", `{"src_net":24,"dst_net":"10.0.0.0/8"}`, &flowpb.FlowMessage{SrcNet: 24, DstNet: 8}},
		{"invalid Prefix", `{"src_net":"invalid Prefix","dst_net":""}`, &flowpb.FlowMessage{}},
		{"IPv4 is 4 bytes, mapped stays 16", `{"src_addr":"192.0.2.1","dst_addr":"::ffff:192.0.2.1"}`,
			&flowpb.FlowMessage{SrcAddr: addrBytes("192.0.2.1"), DstAddr: addrBytes("::ffff:192.0.2.1")}},
		{"escaped key and value", `{"src_c\u006funtry":"\u0046\u0052","dst_as_name":"\ud83d\ude00 \ud800x"}`,
			&flowpb.FlowMessage{SrcCountry: "FR", DstAsName: "😀 \uFFFDx"}},
		{"escaped address", `{"src_addr":"10.0.0.\u0031"}`, &flowpb.FlowMessage{SrcAddr: addrBytes("10.0.0.1")}},
		{"unknown keys skipped", `{"icmp_name":"unknown","x":{"a":[1,-2.5e+3,{"b":"\"}"}],"c":null},"y":[[[]]],"z":true,"bytes":7}`,
			&flowpb.FlowMessage{Bytes: 7}},
		{"repeated keys: last wins", `{"as_path":[1,2],"as_path":[3],"src_net_labels":{"a":"1"},"src_net_labels":{"b":"2"}}`,
			&flowpb.FlowMessage{AsPath: []uint32{3}, SrcNetLabels: map[string]string{"b": "2"}}},
		{"direction", `{"flow_direction":"ingress","biflow_reverse":false}`, &flowpb.FlowMessage{FlowDirection: 1}},
		{"layer numbers", `{"layer_stack":["IPv4",6,"99"]}`, &flowpb.FlowMessage{LayerStack: []flowpb.FlowMessage_LayerStack{1, 6, 99}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m flowpb.FlowMessage
			if err := framing.ParseJSON([]byte(tc.line), &m, nil); err != nil {
				t.Fatal(err)
			}
			requireEqual(t, &m, tc.want)
		})
	}
}

func TestParseJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		line   string
		column int
		reason string
	}{
		{``, 1, "expected '{'"},
		{`[]`, 1, "expected '{'"},
		{`{"bytes":1`, 11, "expected ',' or '}'"},
		{`{"bytes":1,}`, 12, "expected a key"},
		{`{"bytes" 1}`, 10, "expected ':'"},
		{`{"bytes":-1}`, 10, `expected an unsigned integer in "bytes"`},
		{`{"bytes":1.5}`, 10, "expected an unsigned integer"},
		{`{"bytes":01}`, 10, "leading zero"},
		{`{"bytes":18446744073709551616}`, 10, "out of range"},
		{`{"src_port":4294967296}`, 13, "out of range"},
		{`{"src_addr":"1.2.3"}`, 13, `invalid address in "src_addr"`},
		{`{"src_mac":"00:11:22:33:44"}`, 12, "invalid MAC"},
		{`{"proto":"TCPX"}`, 10, "unknown name"},
		{`{"type":"SFLOW_6"}`, 9, "unknown name"},
		{`{"src_net":"10.0.0.0/129"}`, 12, "invalid prefix"},
		{`{"src_net_labels":{"a":1}}`, 24, "expected a string"},
		{`{"x":"a` + "\n" + `"}`, 8, "control character"},
		{`{"x":"\q"}`, 7, "invalid escape"},
		{`{"x":"\u12"}`, 7, "invalid \\u escape"},
		{`{"x":"abc`, 6, "unterminated string"},
		{`{"x":tru}`, 6, "expected true or false"},
		{`{"x":-}`, 6, "invalid number"},
		{`{"x":1.}`, 6, "invalid number"},
		{`{"x":[1 2]}`, 9, "expected ',' or ']'"},
		{`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, 71, "nested too deep"},
		{`{} x`, 4, "unexpected data after the object"},
		{`{}{}`, 3, "unexpected data after the object"},
	} {
		var m flowpb.FlowMessage
		err := framing.ParseJSON([]byte(tc.line), &m, nil)
		var je *framing.JSONError
		if !errors.As(err, &je) || !errors.Is(err, framing.ErrBadJSON) {
			t.Errorf("%s: got %v, want a JSONError", tc.line, err)
			continue
		}
		if je.Column != tc.column || !strings.Contains(je.Reason, tc.reason) {
			t.Errorf("%s: got %q, want column %d and %q", tc.line, err, tc.column, tc.reason)
		}
		if !strings.HasPrefix(err.Error(), "framing: invalid JSON: ") {
			t.Errorf("%s: message %q", tc.line, err)
		}
	}
}

func TestParseJSONResets(t *testing.T) {
	m := goflowNetFlowV9Sample()
	m.SrcNetLabels = map[string]string{"old": "x"}
	if err := framing.ParseJSON([]byte(`{"src_port":1,"src_net_labels":{"new":"y"}}`), m, nil); err != nil {
		t.Fatal(err)
	}
	requireEqual(t, m, &flowpb.FlowMessage{SrcPort: 1, SrcNetLabels: map[string]string{"new": "y"}})
}

func TestParseJSONCustom(t *testing.T) {
	line := `{"post_nat_src_ipv4_address":"192.0.2.99","post_napt_src_transport_port":41015,"app_id":"0D00beef","app_name":"w\u0065b","absent":null}`
	var m flowpb.FlowMessage
	if err := framing.ParseJSON([]byte(line), &m, customOpts()); err != nil {
		t.Fatal(err)
	}
	got := string(framing.AppendJSON(nil, &m, customOpts()))
	want := `"ipv6_routing_header_seg_left":0,"post_nat_src_ipv4_address":"192.0.2.99","post_napt_src_transport_port":41015,"app_id":"0d00beef","app_name":"web"}`
	if !strings.HasSuffix(got, want) {
		t.Errorf("\n got %s\nwant suffix %s", got, want)
	}
	for _, bad := range []string{`{"app_id":"0d0"}`, `{"app_id":"zz"}`, `{"app_name":1}`, `{"post_nat_src_ipv4_address":"x"}`} {
		if err := framing.ParseJSON([]byte(bad), &m, customOpts()); !errors.Is(err, framing.ErrBadJSON) {
			t.Errorf("%s: got %v, want ErrBadJSON", bad, err)
		}
	}
}

func TestParseJSONNoAllocs(t *testing.T) {
	m := goflowNetFlowV9Sample()
	m.MplsIp = [][]byte{addrBytes("10.0.0.1"), addrBytes("10.0.0.2")}
	m.SrcNetLabels = map[string]string{"site": "par1"}
	withUnknown(m)
	opts := customOpts()
	line := framing.AppendJSON(nil, m, opts)
	var got flowpb.FlowMessage
	if n := testing.AllocsPerRun(100, func() {
		if err := framing.ParseJSON(line, &got, opts); err != nil {
			t.Fatal(err)
		}
	}); n != 2 { // the label's key and value: ParseJSON copies strings
		t.Errorf("ParseJSON: %v allocs, want 2", n)
	}
}
