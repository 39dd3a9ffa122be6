package framing_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// TestColumns writes goflow2's formatter columns: listed fields only, in
// order, flow.proto's always (zero values too), custom ones when present,
// renderers as goflow2's; no allocation once the buffer has grown.
func TestColumns(t *testing.T) {
	cols := []framing.Column{
		{Key: "type", Number: flowpb.FieldType},
		{Key: "time", Number: flowpb.FieldTimeReceivedNs, Render: framing.RenderDateTimeNano},
		{Key: "exporter", Number: flowpb.FieldSamplerAddress},
		{Key: "src_net", Number: flowpb.FieldSrcNet},
		{Key: "proto", Number: flowpb.FieldProto},
		{Key: "src_mac", Number: flowpb.FieldSrcMac},
		{Key: "dst_port", Number: flowpb.FieldDstPort},
		{Key: "as_path", Number: flowpb.FieldAsPath},
		{Key: "icmp_name", Render: framing.RenderICMPName},
		{Key: "dir", Number: 42, Custom: true},
		{Key: "absent", Number: 43, Custom: true},
		{Key: "names", Number: 2000, Custom: true, Array: true, Render: framing.RenderString},
	}
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_SFLOW_5, TimeReceivedNs: 1_700_000_000_000_000_001,
		SamplerAddress: []byte{192, 0, 2, 1}, SrcAddr: []byte{10, 1, 2, 3}, SrcNet: 16, Proto: 1, IcmpType: 8,
		SrcMac: 0x0a0b0c0d0e0f, AsPath: []uint32{64500, 64501}}
	u := protowire.AppendVarint(protowire.AppendTag(nil, 42, protowire.VarintType), 1)
	u = protowire.AppendBytes(protowire.AppendTag(u, 2000, protowire.BytesType), []byte("a"))
	u = protowire.AppendBytes(protowire.AppendTag(u, 2000, protowire.BytesType), []byte("b"))
	m.ProtoReflect().SetUnknown(u)
	opts := &framing.JSONOptions{Columns: cols}
	got := string(framing.AppendJSON(nil, m, opts))
	want := `{"type":"SFLOW_5","time":"2023-11-14T22:13:20.000000001Z","exporter":"192.0.2.1","src_net":"10.1.0.0/16",` +
		`"proto":"ICMP","src_mac":"0a:0b:0c:0d:0e:0f","dst_port":0,"as_path":[64500,64501],"icmp_name":"Echo","dir":1,"names":["a","b"]}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Fatal("invalid JSON")
	}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = framing.AppendJSON(buf[:0], m, opts) }); n != 0 {
		t.Errorf("%v allocations per record", n)
	}
}

// FuzzColumns writes arbitrary records (any protobuf the reader accepts,
// unknown fields included) through goflow2 formatter columns of every
// kind: always valid JSON, never a panic.
func FuzzColumns(f *testing.F) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, SrcAddr: []byte{10, 0, 0, 1}, SrcNet: 8, AsPath: []uint32{1},
		SrcNetLabels: map[string]string{"k": "v\""}, MplsIp: [][]byte{{1, 2, 3}}}
	b, _ := m.MarshalVT()
	b = protowire.AppendBytes(protowire.AppendTag(b, 2000, protowire.BytesType), []byte("\x00\xff"))
	f.Add(b)
	f.Add([]byte{0xd0, 0x02, 0x05, 0xb8, 0x3e, 0x80, 0x01})
	var cols []framing.Column
	for _, fd := range flowpb.Fields() {
		cols = append(cols, framing.Column{Key: fd.Name, Number: fd.Number})
	}
	for r := framing.RenderUint; r <= framing.RenderICMPName; r++ {
		cols = append(cols, framing.Column{Key: "src_net", Number: flowpb.FieldSrcNet, Render: r},
			framing.Column{Key: "c", Number: 2000, Custom: true, Render: r},
			framing.Column{Key: "a", Number: 42, Custom: true, Array: true, Render: r},
			framing.Column{Key: "v", Render: r})
	}
	opts := &framing.JSONOptions{Columns: cols}
	f.Fuzz(func(t *testing.T, rec []byte) {
		var m flowpb.FlowMessage
		if m.UnmarshalVT(rec) != nil {
			return
		}
		if out := framing.AppendJSON(nil, &m, opts); !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
	})
}
