package export

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// testFlow is a flow with the fields flowexport reads.
func testFlow(src, dst uint32, bytes, packets, rate uint64, sampler string) *flowpb.FlowMessage {
	return &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_IPFIX, SrcAs: src, DstAs: dst, Bytes: bytes, Packets: packets,
		SamplingRate: rate, SamplerAddress: netip.MustParseAddr(sampler).AsSlice(),
		SrcAddr: []byte{192, 0, 2, 1}, DstAddr: []byte{198, 51, 100, 7}, Proto: 6, SrcPort: 443, DstPort: 51000,
		BgpCommunities: []uint32{1, 2}, SrcNetLabels: map[string]string{"site": "a"},
	}
}

func framed(m *flowpb.FlowMessage) []byte {
	b, err := m.MarshalVT()
	if err != nil {
		panic(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func bare(m *flowpb.FlowMessage) []byte {
	b, err := m.MarshalVT()
	if err != nil {
		panic(err)
	}
	return b
}

func jsonFlow(m *flowpb.FlowMessage) []byte { return framing.AppendJSON(nil, m, nil) }

const pmacctRecord = `{"event_type": "purge", "label": "bdr1.ny1", "as_src": 15169, "as_dst": 6939, ` +
	`"peer_ip_src": "192.0.2.254", "ip_src": "8.8.8.8", "ip_dst": "192.0.2.9", "port_src": 443, ` +
	`"tos": 0, "ip_proto": "tcp", "timestamp_start": "2024-01-01 00:00:00.000000", ` +
	`"packets": 3, "flows": 2, "bytes": 4500, "sampling_rate": 10, "tags": {"a": [1, 2.5e3, null, true]}}`

func TestParse(t *testing.T) {
	named := testFlow(64500, 15169, 1500, 1, 100, "192.0.2.1")
	named.SrcAsName, named.DstAsName = "EXAMPLE-AS", "GOOGLE"
	v6 := testFlow(64500, 6939, 100, 2, 0, "2001:db8::1")
	for _, tc := range []struct {
		name  string
		value []byte
		want  Record
	}{
		{"framed bin", framed(named), Record{Format: FormatBin, SrcAS: 64500, DstAS: 15169, Bytes: 1500, Packets: 1, Flows: 1,
			SamplingRate: 100, Sampler: netip.MustParseAddr("192.0.2.1"), SrcASName: []byte("EXAMPLE-AS"), DstASName: []byte("GOOGLE")}},
		{"bare bin", bare(v6), Record{Format: FormatBin, SrcAS: 64500, DstAS: 6939, Bytes: 100, Packets: 2, Flows: 1,
			Sampler: netip.MustParseAddr("2001:db8::1")}},
		{"json", jsonFlow(named), Record{Format: FormatJSON, SrcAS: 64500, DstAS: 15169, Bytes: 1500, Packets: 1, Flows: 1,
			SamplingRate: 100, Sampler: netip.MustParseAddr("192.0.2.1"), SrcASName: []byte("EXAMPLE-AS"), DstASName: []byte("GOOGLE")}},
		{"json with spaces", append([]byte(" \n"), jsonFlow(v6)...), Record{Format: FormatJSON, SrcAS: 64500, DstAS: 6939,
			Bytes: 100, Packets: 2, Flows: 1, Sampler: netip.MustParseAddr("2001:db8::1")}},
		{"pmacct", []byte(pmacctRecord), Record{Format: FormatPmacct, SrcAS: 15169, DstAS: 6939, Bytes: 4500, Packets: 3, Flows: 2,
			SamplingRate: 10, Sampler: netip.MustParseAddr("192.0.2.254"), Label: []byte("bdr1.ny1")}},
		{"pmacct escaped label, quoted numbers", []byte(`{"label":"r\u00e9\n1","as_src":"1","as_dst":2,"bytes":"10"}`),
			Record{Format: FormatPmacct, SrcAS: 1, DstAS: 2, Bytes: 10, Flows: 1, Label: []byte("ré\n1")}},
		{"flow-exporter README", []byte(`{"label": "bdr1.ny1.fqdn.com", "as_src": 15169, "as_dst": 6939, "bytes": 52}`),
			Record{Format: FormatPmacct, SrcAS: 15169, DstAS: 6939, Bytes: 52, Flows: 1, Label: []byte("bdr1.ny1.fqdn.com")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Parser
			var r Record
			if err := p.Parse(tc.value, &r); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !equalRecords(r, tc.want) {
				t.Errorf("Parse:\n got %+v\nwant %+v", r, tc.want)
			}
		})
	}
}

func equalRecords(a, b Record) bool {
	return a.Format == b.Format && a.SrcAS == b.SrcAS && a.DstAS == b.DstAS && a.Bytes == b.Bytes &&
		a.Packets == b.Packets && a.Flows == b.Flows && a.SamplingRate == b.SamplingRate && a.Sampler == b.Sampler &&
		string(a.Label) == string(b.Label) && string(a.SrcASName) == string(b.SrcASName) && string(a.DstASName) == string(b.DstASName)
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		want  error
	}{
		{"empty", "", ErrEmpty},
		{"spaces", "  \n", ErrEmpty},
		{"text", "hello, world", ErrBadProto},
		{"truncated frame", string(framed(testFlow(1, 2, 3, 4, 5, "192.0.2.1"))[:20]), ErrBadProto},
		{"broken JSON", `{"as_src": 1, "bytes": }`, ErrBadJSON},
		{"JSON array", `[1,2]`, ErrBadProto},
		{"negative pmacct bytes", `{"as_src": 1, "as_dst": 2, "bytes": -5}`, ErrBadJSON},
		{"float pmacct bytes", `{"as_src": 1, "as_dst": 2, "bytes": 1.5}`, ErrBadJSON},
		{"pmacct without counters", `{"label": "x", "as_src": 1, "as_dst": 2}`, ErrNoCounter},
		{"pmacct AS too large", `{"as_src": 4294967296, "bytes": 1}`, ErrBadJSON},
		{"trailing data", `{"as_src": 1, "bytes": 1} x`, ErrBadJSON},
		{"goflow JSON wrong type", `{"type": "IPFIX", "bytes": "lots"}`, ErrBadJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Parser
			var r Record
			err := p.Parse([]byte(tc.value), &r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tc.value, err, tc.want)
			}
		})
	}
}

// TestParseProtoMatchesUnmarshal checks the partial decoder against the
// protobuf runtime on a full message.
func TestParseProtoMatchesUnmarshal(t *testing.T) {
	m := testFlow(4200000000, 13335, 1<<40, 7, 512, "10.1.2.3")
	m.DstAsName = "CLOUDFLARENET"
	var r Record
	if err := parseProto(bare(m), &r); err != nil {
		t.Fatal(err)
	}
	checkAgainstProto(t, bare(m), &r)
}

func checkAgainstProto(t *testing.T, msg []byte, r *Record) {
	t.Helper()
	var m flowpb.FlowMessage
	if err := proto.Unmarshal(msg, &m); err != nil {
		t.Fatalf("proto.Unmarshal: %v", err)
	}
	want := Record{SrcAS: m.SrcAs, DstAS: m.DstAs, Bytes: m.Bytes, Packets: m.Packets, Flows: r.Flows, Format: r.Format,
		SamplingRate: m.SamplingRate, Sampler: addrFromBytes(m.SamplerAddress),
		SrcASName: []byte(m.SrcAsName), DstASName: []byte(m.DstAsName)}
	if !equalRecords(*r, want) {
		t.Fatalf("parseProto disagrees with proto.Unmarshal:\n got %+v\nwant %+v", *r, want)
	}
}

func TestScaled(t *testing.T) {
	for _, tc := range []struct{ v, rate, want uint64 }{
		{10, 0, 10}, {10, 1, 10}, {10, 100, 1000}, {1 << 63, 4, ^uint64(0)},
	} {
		if got := scaled(tc.v, tc.rate); got != tc.want {
			t.Errorf("scaled(%d, %d) = %d, want %d", tc.v, tc.rate, got, tc.want)
		}
	}
}

// FuzzParse checks, for any value: Parse never panics; a value that the
// protobuf runtime (proto.Unmarshal) accepts as a bare message is
// accepted, and when it is not also a valid frame, with the same fields.
// (The generated UnmarshalVT is no reference: it reads packed varints past
// their field's end.)
func FuzzParse(f *testing.F) {
	named := testFlow(64500, 15169, 1500, 1, 100, "192.0.2.1")
	named.SrcAsName = "EXAMPLE"
	f.Add(framed(named))
	f.Add(bare(named))
	f.Add(jsonFlow(named))
	f.Add([]byte(pmacctRecord))
	f.Add([]byte(`{"label":"a\ud83d\ude00b","as_src":1,"bytes":2}`))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, value []byte) {
		var p Parser
		var r Record
		err := p.Parse(value, &r)
		var m flowpb.FlowMessage
		if i := skipSpace(value, 0); i < len(value) && value[i] != '{' && proto.Unmarshal(value, &m) == nil {
			if err != nil {
				t.Fatalf("proto.Unmarshal accepts %x, Parse says %v", value, err)
			}
			if n, k := binary.Uvarint(value); !(k > 0 && n == uint64(len(value)-k)) {
				checkAgainstProto(t, value, &r)
			}
		}
	})
}

// TestParseFramedRecordStartingWithBrace: a framed record whose body is 123
// bytes long starts with its length prefix 0x7b, which is '{'; it must be
// read as protobuf, not rejected as broken JSON (1 record in ~500 of a real
// stream was).
func TestParseFramedRecordStartingWithBrace(t *testing.T) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, Bytes: 1500, Packets: 3, SrcAs: 64500, DstAs: 64501,
		SamplerAddress: []byte{192, 0, 2, 1}}
	for m.SizeVT() < 123 {
		m.SrcAsName += "x"
	}
	if m.SizeVT() != 123 {
		t.Fatalf("could not build a 123-byte record (got %d)", m.SizeVT())
	}
	value := m.AppendDelimited(nil)
	if value[0] != '{' {
		t.Fatalf("prefix %#x, want '{'", value[0])
	}
	var p Parser
	var r Record
	if err := p.Parse(value, &r); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if r.Format != FormatBin || r.Bytes != 1500 || r.SrcAS != 64500 || r.DstAS != 64501 || string(r.SrcASName) != m.SrcAsName {
		t.Fatalf("Parse = %+v", r)
	}
	// And a JSON record is still JSON.
	if err := p.Parse([]byte(`{"type":"IPFIX","bytes":10,"packets":1,"src_as":1,"dst_as":2}`), &r); err != nil || r.Format != FormatJSON || r.Bytes != 10 {
		t.Fatalf("JSON: %+v, %v", r, err)
	}
}

// TestReadFields: any singular field of flow.proto is read by name, from
// bin and JSON records alike (what a --group-by on one more field needs);
// pmacct's records, whose keys differ, leave them zero.
func TestReadFields(t *testing.T) {
	m := testFlow(64500, 15169, 1500, 1, 100, "192.0.2.1")
	m.SrcUser, m.NatPoolId, m.FlowDirection, m.BiflowReverse = "alice", 7, flowpb.FlowMessage_EGRESS, true
	var p Parser
	if err := p.ReadFields("src_user", "nat_pool_id", "dst_port", "src_addr", "flow_direction", "biflow_reverse", "src_as"); err != nil {
		t.Fatal(err)
	}
	want := []Value{{Bytes: []byte("alice")}, {Uint: 7}, {Uint: 51000}, {Bytes: []byte{192, 0, 2, 1}}, {Uint: 2}, {Uint: 1}, {Uint: 64500}}
	for _, value := range [][]byte{framed(m), bare(m), jsonFlow(m)} {
		var r Record
		if err := p.Parse(value, &r); err != nil {
			t.Fatal(err)
		}
		if r.SrcAS != 64500 || len(r.Fields) != len(want) {
			t.Fatalf("%v: %+v", r.Format, r)
		}
		for i, w := range want {
			if r.Fields[i].Uint != w.Uint || string(r.Fields[i].Bytes) != string(w.Bytes) {
				t.Errorf("%v: field %d = %+v, want %+v", r.Format, i, r.Fields[i], w)
			}
		}
	}
	var r Record
	if err := p.Parse([]byte(pmacctRecord), &r); err != nil || len(r.Fields) != len(want) || r.Fields[0].Bytes != nil || r.Fields[1].Uint != 0 {
		t.Fatalf("pmacct: %+v %v", r.Fields, err)
	}
	// A field of the wrong wire type is skipped, as the protobuf runtime
	// keeps it unknown.
	odd := protowire.AppendTag(bare(&flowpb.FlowMessage{Bytes: 1}), flowpb.FieldNatPoolId, protowire.BytesType)
	odd = protowire.AppendBytes(odd, []byte{5})
	if err := p.Parse(odd, &r); err != nil || r.Fields[1].Uint != 0 {
		t.Fatalf("wrong wire type: %+v %v", r.Fields, err)
	}
	for _, bad := range []string{"nosuch", "as_path", "src_net_labels"} {
		if err := p.ReadFields(bad); err == nil {
			t.Errorf("ReadFields(%s) accepted", bad)
		}
	}
	value := framed(m)
	if n := testing.AllocsPerRun(100, func() { _ = p.Parse(value, &r) }); n != 0 {
		t.Errorf("%v allocs", n)
	}
}
