package mapping

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gfproto "github.com/netsampler/goflow2/v2/producer/proto"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

func TestLoadAndCustomFields(t *testing.T) {
	m, err := Load(strings.NewReader(`
ipfix:
  mapping:
    - field: 82
      destination: in_if_name
      protobuf: 1200
      type: string
    - field: 123
      penprovided: true
      pen: 2636
      destination: juniper_x
      protobuf: 1201
      type: uint
netflowv9:
  mapping:
    - field: 225
      destination: post_nat_src
      protobuf: 1202
      type: ip
`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Lookup(10, 2636, 123) != 1 || m.Lookup(10, 0, 123) != -1 || m.Lookup(9, 0, 225) != 0 {
		t.Fatal("lookup")
	}
	cf := m.CustomFields()
	if len(cf) != 3 || cf[0].Render != framing.RenderString || cf[1].Render != framing.RenderUint || cf[2].Render != framing.RenderIP {
		t.Fatalf("%+v", cf)
	}
	if got := m.Entry(10, 1).Append(nil, []byte{0, 0, 1, 0}); len(got) != 4 { // tag (2 bytes) + varint 256 (2 bytes)
		t.Fatalf("append % x", got)
	}
}

// TestGoflow2MappingFile loads goflow2 v2.2.6's own cmd/goflow2/mapping.yaml
// unchanged and checks what each of its entries means here.
func TestGoflow2MappingFile(t *testing.T) {
	m, err := LoadFile(filepath.Join(interop.Goflow2Dir(t), "cmd", "goflow2", "mapping.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// ipfix 61 -> flow_direction: formatter.protobuf's varint at 42.
	e := m.Entry(10, m.Lookup(10, 0, 61))
	if e.Standard || e.Number != 42 || e.Kind != KindUint {
		t.Errorf("ipfix 61: %+v", e.Target)
	}
	// netflowv9 34 -> sampling_rate: flow.proto's field 3, big-endian as
	// goflow2 reads it (its "endian: little" is a key goflow2 ignores).
	e = m.Entry(9, m.Lookup(9, 0, 34))
	if !e.Standard || e.Number != flowpb.FieldSamplingRate || e.Little {
		t.Errorf("netflowv9 34: %+v", e.Target)
	}
	var msg flowpb.FlowMessage
	e.Set(&msg, []byte{0, 0, 0x08, 0})
	if msg.SamplingRate != 2048 {
		t.Errorf("00 00 08 00 set sampling_rate %d, want 2048", msg.SamplingRate)
	}
	if got := m.Key(); len(got) != 1 || got[0] != "sampler_address" {
		t.Errorf("key %v", got)
	}
	// sflow: csum at 999 from udp bits 48-63 and tcp bits 128-143.
	if len(m.SFlow) != 2 || m.SFlow[0].Number != 999 || m.SFlow[1].Layer != "tcp" || len(m.Ports) != 3 {
		t.Errorf("sflow %+v ports %+v", m.SFlow, m.Ports)
	}
	opts := m.JSONOptions()
	var keys []string
	for _, c := range opts.Columns {
		keys = append(keys, c.Key)
	}
	if got := strings.Join(keys, ","); got != "type,time_received_ns,sequence_num,sampling_rate,flow_direction,sampler_address,"+
		"time_flow_start_ns,time_flow_end_ns,bytes,packets,src_addr,src_net,dst_addr,dst_net,etype,proto,src_port,dst_port,"+
		"in_if,out_if,src_mac,dst_mac,icmp_name,csum" {
		t.Errorf("columns %s", got)
	}
	if c := opts.Columns[1]; c.Render != framing.RenderDateTimeNano {
		t.Errorf("time_received_ns column %+v", c)
	}
	if c := opts.Columns[4]; !c.Custom || c.Number != 42 {
		t.Errorf("flow_direction column %+v", c)
	}
	if c := opts.Columns[22]; c.Render != framing.RenderICMPName {
		t.Errorf("icmp_name column %+v", c)
	}
	// The entries goflow2 itself ignores are named.
	all := strings.Join(m.Warnings, "\n")
	for _, w := range []string{"Go field name, SamplingRate", "endian: little ignored, as goflow2 v2.2.6 ignores it"} {
		if !strings.Contains(all, w) {
			t.Errorf("no warning saying %q in:\n%s", w, all)
		}
	}
}

// TestGoflow2DocExamples loads the mapping files of goflow2's own
// documentation (docs/mapping.md, docs/protocols.md) with goflow2 v2.2.6's
// loader and with Load: what goflow2 accepts loads, except a custom index
// that flow.proto uses (1000/1001 are goflow2's enricher's countries, here
// too), which must be refused with an error saying so.
func TestGoflow2DocExamples(t *testing.T) {
	dir := interop.Goflow2Dir(t)
	n := 0
	for _, doc := range []string{"docs/mapping.md", "docs/protocols.md"} {
		b, err := os.ReadFile(filepath.Join(dir, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range bytes.Split(b, []byte("```yaml\n"))[1:] {
			y := block[:bytes.Index(block, []byte("```"))]
			n++
			cfg := &gfproto.ProducerConfig{}
			gerr := yaml.Unmarshal(y, cfg)
			if gerr == nil {
				_, gerr = cfg.Compile()
			}
			_, err := Load(bytes.NewReader(y))
			switch {
			case gerr != nil:
				t.Logf("%s example %d: goflow2 refuses it too (%v); ours: %v", doc, n, gerr, err)
			case err != nil && strings.Contains(err.Error(), "is flow.proto's"):
				t.Logf("%s example %d: %v", doc, n, err)
			case err != nil:
				t.Errorf("%s example %d: goflow2 loads it, Load: %v\n%s", doc, n, err, y)
			}
		}
	}
	if n < 4 {
		t.Fatalf("only %d examples found", n)
	}
}

func TestTargets(t *testing.T) {
	m, err := Load(strings.NewReader(`
formatter:
  protobuf:
    - {name: vrf, index: 39, type: varint}
    - {name: names, index: 2000, type: string, array: true}
  render: {names: string}
ipfix:
  mapping:
    - {field: 234, destination: vrf}
    - {field: 82, destination: names}
    - {field: 7, destination: SrcPort}
    - {field: 8, destination: nothing_here}
    - {field: 12, destination: dst_addr, endianness: big}
`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Lookup(10, 0, 8) != -1 {
		t.Error("an unknown destination is mapped")
	}
	if len(m.Warnings) == 0 || !strings.Contains(strings.Join(m.Warnings, "\n"), "nothing_here") {
		t.Errorf("warnings %q", m.Warnings)
	}
	var msg flowpb.FlowMessage
	if !m.Entry(10, m.Lookup(10, 0, 7)).Set(&msg, []byte{0x1f, 0x90}) || msg.SrcPort != 8080 {
		t.Errorf("SrcPort (goflow2's Go name) %d", msg.SrcPort)
	}
	if !m.Entry(10, m.Lookup(10, 0, 12)).Set(&msg, []byte{192, 0, 2, 1}) || !bytes.Equal(msg.DstAddr, []byte{192, 0, 2, 1}) {
		t.Errorf("dst_addr % x", msg.DstAddr)
	}
	var u []byte
	u = m.Entry(10, m.Lookup(10, 0, 234)).Append(u, []byte{0, 7})
	u = m.Entry(10, m.Lookup(10, 0, 82)).Append(u, []byte("ge-0/0/1"))
	u = m.Entry(10, m.Lookup(10, 0, 82)).Append(u, []byte("ge-0/0/2"))
	msg.ProtoReflect().SetUnknown(u)
	line := string(framing.AppendJSON(nil, &msg, m.JSONOptions()))
	if !strings.HasSuffix(line, `,"vrf":7,"names":["ge-0/0/1","ge-0/0/2"]}`) {
		t.Errorf("JSON %s", line)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, y := range map[string]string{
		"flow.proto field":   "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1000}\n",
		"reserved number":    "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 19500}\n",
		"collision":          "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1300}\n    - {field: 2, destination: y, protobuf: 1300}\n",
		"bad type":           "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1300, type: float}\n",
		"unknown key":        "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1300, colour: red}\n",
		"no destination":     "ipfix:\n  mapping:\n    - {field: 1, protobuf: 1300}\n",
		"bad endianness":     "ipfix:\n  mapping:\n    - {field: 1, destination: bytes, endianness: middle}\n",
		"protobuf type":      "formatter:\n  protobuf:\n    - {name: x, index: 1300, type: float}\n",
		"protobuf on proto":  "formatter:\n  protobuf:\n    - {name: x, index: 9, type: varint}\n",
		"protobuf collision": "formatter:\n  protobuf:\n    - {name: x, index: 1300, type: varint}\n    - {name: y, index: 1300, type: varint}\n",
		"renderer":           "formatter:\n  render: {bytes: binary}\n",
		"field":              "formatter:\n  fields: [bytes, no_such_field]\n",
		"key":                "formatter:\n  key: [no_such_field]\n",
		"parser":             "sflow:\n  ports:\n    - {proto: udp, dir: dst, port: 1, parser: quic}\n",
		"port dir":           "sflow:\n  ports:\n    - {proto: udp, dir: up, port: 1, parser: gre}\n",
		"bits":               "sflow:\n  mapping:\n    - {layer: udp, offset: 0, length: 0, destination: bytes}\n",
	} {
		if _, err := Load(strings.NewReader(y)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "mapping: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

// TestLayerVisitor maps bits of a UDP and an inner (encapsulated) UDP
// header, goflow2's "udp" entries of its example file and of docs/mapping.md.
func TestLayerVisitor(t *testing.T) {
	m, err := Load(strings.NewReader(`
formatter:
  protobuf:
    - {name: csum, index: 999, type: varint}
    - {name: inner_dst_port, index: 1022, type: varint, array: true}
sflow:
  ports:
    - {proto: udp, dir: both, port: 4754, parser: gre}
  mapping:
    - {layer: udp, offset: 48, length: 16, destination: csum}
    - {layer: udp, encap: true, offset: 16, length: 16, destination: inner_dst_port}
    - {layer: ipv4, offset: 64, length: 8, destination: ip_ttl}
`))
	if err != nil {
		t.Fatal(err)
	}
	// IPv4/UDP 4754 (GRE in UDP) / GRE / IPv4 / UDP 53.
	ip := func(proto byte, ttl byte) []byte {
		return []byte{0x45, 0, 0, 60, 0, 0, 0, 0, ttl, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}
	}
	pkt := append(ip(17, 9), 0x30, 0x39, 0x12, 0x92, 0, 40, 0xbe, 0xef) // sport 12345, dport 4754, csum beef
	pkt = append(pkt, 0, 0, 0x08, 0x00)                                 // GRE, IPv4
	pkt = append(pkt, ip(17, 3)...)
	pkt = append(pkt, 0x04, 0x00, 0x00, 0x35, 0, 8, 0x12, 0x34) // sport 1024, dport 53, csum 1234
	var msg flowpb.FlowMessage
	packet.ParseWith(&msg, pkt, packet.IPv4, 8, m.PacketOptions())
	if msg.IpTtl != 9 || msg.DstPort != 4754 {
		t.Errorf("outer fields: ttl %d dport %d", msg.IpTtl, msg.DstPort)
	}
	u := msg.ProtoReflect().GetUnknown()
	want := protowire.AppendVarint(protowire.AppendTag(nil, 999, protowire.VarintType), 0xbeef)
	want = protowire.AppendVarint(protowire.AppendTag(want, 1022, protowire.VarintType), 53)
	if !bytes.Equal(u, want) {
		t.Errorf("custom fields % x, want % x (layers %v)", u, want, msg.LayerStack)
	}
}

func TestAppendBitsTable(t *testing.T) {
	b := []byte{0xAA, 0x55, 0x0F}
	for _, c := range []struct {
		off, n int
		want   []byte
		ok     bool
	}{
		{0, 8, []byte{0xAA}, true},
		{4, 6, []byte{0x29}, true}, // goflow2's own example: 1010 0101 -> 10 1001
		{8, 16, []byte{0x55, 0x0F}, true},
		{16, 16, []byte{0x0F, 0}, true}, // past the end: zeros
		{4, 12, []byte{0xA5, 0x05}, true},
		{24, 8, []byte{0}, true},
		{25, 8, nil, false},
		{0, 0, nil, false},
	} {
		got, ok := AppendBits(nil, b, c.off, c.n)
		if ok != c.ok || !bytes.Equal(got, c.want) {
			t.Errorf("AppendBits(%d, %d) = % x %v, want % x %v", c.off, c.n, got, ok, c.want, c.ok)
		}
	}
}

// FuzzAppendBits checks the extraction of sflow.mapping against goflow2
// v2.2.6's own (GetBytes): the same bytes for every input, offset and
// length, never a panic, never more than ceil(length/8) bytes.
func FuzzAppendBits(f *testing.F) {
	f.Add([]byte{0xAA, 0x55}, 4, 6)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, 48, 16)
	f.Add([]byte{0xff}, 8, 3)
	f.Fuzz(func(t *testing.T, b []byte, off, n int) {
		if off < 0 || n < 0 || off > 1<<16 || n > 1<<12 {
			return
		}
		got, ok := AppendBits(nil, b, off, n)
		if ok && len(got) != (n+7)/8 {
			t.Fatalf("%d bytes for %d bits", len(got), n)
		}
		want := gfproto.GetBytes(b, off, n, true)
		if !ok {
			if want != nil && n > 0 {
				t.Fatalf("refused, goflow2 gives % x", want)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendBits(% x, %d, %d) = % x, goflow2 % x", b, off, n, got, want)
		}
	})
}

// FuzzMappingYAML: Load never panics; what it accepts has usable numbers.
func FuzzMappingYAML(f *testing.F) {
	f.Add([]byte("ipfix:\n  mapping:\n    - {field: 82, destination: n, protobuf: 1200, type: string}\n"))
	f.Add([]byte("formatter:\n  protobuf:\n    - {name: x, index: 42, type: varint}\nsflow:\n  mapping:\n    - {layer: udp, offset: 48, length: 16, destination: x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range append(m.IPFIX, m.NetFlowV9...) {
			if e.active && (!e.Number.IsValid() || e.Destination == "") {
				t.Fatalf("accepted %+v", e)
			}
		}
		_ = m.JSONOptions()
		_ = m.PacketOptions()
	})
}

// FuzzLayerMapping walks arbitrary sampled headers with port parsers for
// every kind (GRE in UDP, Geneve, Teredo, VXLAN, on ports the input's UDP
// and TCP headers may well carry) and a layer mapping on every layer
// name: never a panic, layer_stack and layer_size stay in step, and the
// custom fields written are well-formed protobuf of the mapped numbers.
func FuzzLayerMapping(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 60, 0, 0, 0, 0, 9, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x12, 0x92, 0, 40, 0xbe, 0xef, 0, 0, 0x08, 0x00}, uint8(1))
	f.Add([]byte{0x45, 0, 0, 60, 0, 0, 0, 0, 9, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x17, 0xc1, 0, 40, 0, 0, 0x01, 0, 0x65, 0x58, 0, 0, 0, 0}, uint8(1))
	f.Add(bytes.Repeat([]byte{0x60}, 80), uint8(2))
	m, err := Load(strings.NewReader(`
formatter:
  protobuf:
    - {name: a, index: 2001, type: varint}
    - {name: b, index: 2002, type: bytes, array: true}
sflow:
  ports:
    - {proto: udp, dir: both, port: 4754, parser: gre}
    - {proto: udp, dir: dst, port: 6081, parser: geneve}
    - {proto: udp, dir: src, port: 12345, parser: teredo-dst}
    - {proto: tcp, dir: both, port: 4789, parser: vxlan}
  mapping:
    - {layer: ethernet, offset: 96, length: 16, destination: a}
    - {layer: ip, offset: 64, length: 8, destination: ip_ttl}
    - {layer: "4", offset: 0, length: 16, destination: a}
    - {layer: udp4754, offset: 0, length: 32, destination: b}
    - {layer: geneve, offset: 3, length: 13, destination: b}
    - {layer: gre, encap: true, offset: 16, length: 16, destination: a}
    - {layer: ipv6, encap: true, offset: 64, length: 128, destination: b}
    - {layer: teredo, offset: 0, length: 8, destination: a}
`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hdr []byte, first uint8) {
		start := []packet.Layer{packet.Ethernet, packet.IPv4, packet.IPv6, packet.MPLS}[first%4]
		var msg flowpb.FlowMessage
		packet.ParseWith(&msg, hdr, start, 8, m.PacketOptions())
		if len(msg.LayerSize) < len(msg.LayerStack) {
			t.Fatalf("%d sizes for %d layers", len(msg.LayerSize), len(msg.LayerStack))
		}
		for u := msg.ProtoReflect().GetUnknown(); len(u) > 0; {
			num, typ, n := protowire.ConsumeField(u)
			if n < 0 || num != 2001 && num != 2002 || num == 2001 && typ != protowire.VarintType {
				t.Fatalf("custom fields % x", msg.ProtoReflect().GetUnknown())
			}
			u = u[n:]
		}
	})
}

// TestRenderWithoutFields: formatter.render alone renders goflow2's
// fields so (here the receive time as RFC 3339), keeps the layout's order,
// and writes flowpipe's own fields only when set, then custom ones.
func TestRenderWithoutFields(t *testing.T) {
	m, err := Load(strings.NewReader(`
formatter:
  protobuf:
    - {name: vrf, index: 39, type: varint}
  render: {time_received_ns: datetimenano, proto: none}
  rename: {sampler_address: exporter}
`))
	if err != nil {
		t.Fatal(err)
	}
	msg := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, TimeReceivedNs: 1_700_000_000_123_456_789, Proto: 6,
		SamplerAddress: []byte{192, 0, 2, 1}, SrcAsName: "EXAMPLE", SrcAddr: []byte{10, 0, 0, 1}, SrcNet: 8, Etype: 0x800,
		SrcMac: 0x0a0b0c0d0e0f, AsPath: []uint32{1, 2}, MplsIp: [][]byte{{10, 1, 1, 1}}, BgpCommunities: []uint32{7},
		LayerStack: []flowpb.FlowMessage_LayerStack{flowpb.FlowMessage_IPv4, flowpb.FlowMessage_UDP}, Bytes: 99,
		FlowDirection: flowpb.FlowMessage_EGRESS, SrcNetLabels: map[string]string{"b": "2", "a": "1"}}
	msg.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 39, protowire.VarintType), 5))
	plain := string(framing.AppendJSON(nil, msg, nil))
	line := string(framing.AppendJSON(nil, msg, m.JSONOptions()))
	for _, s := range []string{`{"type":"IPFIX","time_received_ns":"2023-11-14T22:13:20.123456789Z",`, `"proto":6,`,
		`"exporter":"192.0.2.1"`, `"src_as_name":"EXAMPLE"`} {
		if !strings.Contains(line, s) {
			t.Errorf("no %s in %s", s, line)
		}
	}
	if !strings.HasSuffix(line, `,"vrf":5}`) || strings.Contains(line, "dst_as_name") {
		t.Errorf("%s", line)
	}
	// The same members as the default layout, but for the renames.
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(plain), &b); err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b)+1 { // + vrf
		t.Errorf("%d members, default layout %d", len(a), len(b))
	}
	for k, v := range b {
		switch k {
		case "time_received_ns", "proto", "sampler_address":
			continue
		}
		if string(a[k]) != string(v) {
			t.Errorf("%s: %s, default layout %s", k, a[k], v)
		}
	}
}
