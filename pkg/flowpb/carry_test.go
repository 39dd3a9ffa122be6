package flowpb_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowpipe/flowpipe/pkg/enrich"
	"github.com/flowpipe/flowpipe/pkg/export"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/publish"
)

// addedFieldsEnv names fields TestAddFieldToProto added to a copy of
// flow.proto before running TestEveryFieldCarried on the regenerated code.
const addedFieldsEnv = "FLOWPIPE_ADDED_FIELDS"

// baseRecord is a collector's record whose goflow2 fields all survive
// goflow2's JSON renderings.
func baseRecord() *flowpb.FlowMessage {
	return &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_IPFIX, TimeReceivedNs: 1700000000123456789, SequenceNum: 77, SamplingRate: 1000,
		SamplerAddress: []byte{10, 0, 0, 254}, TimeFlowStartNs: 1699999990000000000, TimeFlowEndNs: 1699999999000000000,
		Bytes: 123456, Packets: 89, SrcAddr: []byte{198, 51, 100, 7}, DstAddr: []byte{203, 0, 113, 9},
		Etype: 0x800, Proto: 17, SrcPort: 53, DstPort: 33000, InIf: 3, OutIf: 7, SrcMac: 0x0011223344aa,
		DstMac: 0xa0b1c2d3e4f5, SrcVlan: 10, DstVlan: 20, VlanId: 10, IpTos: 184, ForwardingStatus: 64, IpTtl: 63,
		IpFlags: 2, TcpFlags: 0x1b, FragmentId: 4242, SrcAs: 64500, DstAs: 64511, NextHop: []byte{10, 0, 0, 1},
		NextHopAs: 64501, SrcNet: 24, DstNet: 16, BgpNextHop: []byte{10, 0, 0, 2}, BgpCommunities: []uint32{65000},
		AsPath: []uint32{64501, 64511}, ObservationDomainId: 256,
	}
}

// setFlowpipeFields sets every field outside goflow2's record (flowpipe's
// own, and any field added to flow.proto) to a value of its kind that
// depends on seed, knowing nothing of the fields but the descriptor.
func setFlowpipeFields(t testing.TB, m *flowpb.FlowMessage, seed int) {
	mr := m.ProtoReflect()
	fds := mr.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		f, ok := flowpb.FieldByNumber(fd.Number())
		if !ok || f.Name != string(fd.Name()) {
			t.Fatalf("field %s is not in the generated table: run make proto", fd.Name())
		}
		if f.Goflow2 {
			continue
		}
		val := func() protoreflect.Value {
			switch fd.Kind() {
			case protoreflect.StringKind:
				return protoreflect.ValueOfString(fmt.Sprintf("%s-%d \"é\"", fd.Name(), seed))
			case protoreflect.BytesKind:
				if seed%2 == 1 {
					return protoreflect.ValueOfBytes([]byte{192, 0, 2, byte(i)})
				}
				return protoreflect.ValueOfBytes([]byte{0xde, 0xad, byte(i), byte(seed), 0, 1}) // not an address: hex
			case protoreflect.BoolKind:
				return protoreflect.ValueOfBool(seed%2 == 1)
			case protoreflect.EnumKind:
				vals := fd.Enum().Values()
				return protoreflect.ValueOfEnum(vals.Get(1 + (seed+i)%(vals.Len()-1)).Number())
			case protoreflect.Uint32Kind:
				return protoreflect.ValueOfUint32(uint32(1000*seed + i))
			case protoreflect.Uint64Kind:
				return protoreflect.ValueOfUint64(uint64(1<<40*seed + i))
			case protoreflect.Int32Kind:
				return protoreflect.ValueOfInt32(int32(-1000*seed - i))
			case protoreflect.Int64Kind:
				return protoreflect.ValueOfInt64(int64(-1<<40*seed - i))
			}
			t.Fatalf("field %s: kind %v not covered by this test", fd.Name(), fd.Kind())
			return protoreflect.Value{}
		}
		switch {
		case fd.IsMap():
			mp := mr.Mutable(fd).Map()
			mp.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString(fmt.Sprintf("%s-%d", fd.Name(), seed)))
		case fd.IsList():
			l := mr.Mutable(fd).List()
			l.Append(val())
			l.Append(val())
		default:
			mr.Set(fd, val())
		}
	}
}

// unknownField is a protobuf field no flow.proto knows (as a goflow2
// mapping's custom field travels): every stage carries it byte for byte.
func withUnknown(m *flowpb.FlowMessage) *flowpb.FlowMessage {
	u := protowire.AppendTag(nil, 2001, protowire.BytesType)
	u = protowire.AppendString(u, "ge-0/0/1")
	m.ProtoReflect().SetUnknown(u)
	return m
}

// enrichOwned are the fields flowenrich writes: every other one passes it.
var enrichOwned = []string{"src_as", "dst_as", "src_country", "dst_country", "src_as_name", "dst_as_name",
	"src_net_name", "dst_net_name", "src_net_labels", "dst_net_labels", "src_net_prefix", "dst_net_prefix", "flow_direction"}

// TestEveryFieldCarried sets every field of flow.proto that goflow2's
// record does not have, generically from the descriptor, and follows the
// record through every stage: framing bin and JSON, flowenrich's splicer
// and its JSON path (with unknown JSON keys), flowpublish's --key and its
// pass-through to Kafka, and flowexport's reading of a field by name. No
// stage names these fields: a field added to flow.proto is carried as soon
// as make proto has run (TestAddFieldToProto runs this test on a copy of
// flow.proto with fields added).
func TestEveryFieldCarried(t *testing.T) {
	if added := os.Getenv(addedFieldsEnv); added != "" {
		for _, name := range strings.Split(added, ",") {
			if _, ok := flowpb.FieldByName(name); !ok {
				t.Fatalf("added field %s is not in the generated table", name)
			}
		}
	}
	m := withUnknown(baseRecord())
	setFlowpipeFields(t, m, 1)
	var flowpipeNames []string
	for _, f := range flowpb.Fields() {
		if !f.Goflow2 {
			flowpipeNames = append(flowpipeNames, f.Name)
		}
	}

	t.Run("framing bin", func(t *testing.T) {
		var buf bytes.Buffer
		w := framing.NewWriter(&buf)
		if err := w.WriteMessage(m); err != nil || w.Flush() != nil {
			t.Fatal(err)
		}
		var got flowpb.FlowMessage
		r := framing.NewMessageReader(&buf, framing.FormatAuto, 0, nil)
		if err := r.Read(&got); err != nil {
			t.Fatal(err)
		}
		requireSame(t, &got, m, nil)
	})

	t.Run("framing JSON", func(t *testing.T) {
		line := framing.AppendJSON(nil, m, nil)
		for _, name := range flowpipeNames {
			if !bytes.Contains(line, []byte(`"`+name+`":`)) {
				t.Errorf("%s missing from %s", name, line)
			}
		}
		var got flowpb.FlowMessage
		if err := framing.ParseJSON(line, &got, nil); err != nil {
			t.Fatalf("%v\n%s", err, line)
		}
		m2 := m.CloneVT()
		m2.ProtoReflect().SetUnknown(nil) // JSON has no place for an unmapped protobuf field
		requireSame(t, &got, m2, nil)
		m3 := baseRecord()
		setFlowpipeFields(t, m3, 2) // bytes as hex, bools false
		line = framing.AppendJSON(nil, m3, nil)
		got.Reset()
		if err := framing.ParseJSON(line, &got, nil); err != nil {
			t.Fatalf("%v\n%s", err, line)
		}
		requireSame(t, &got, m3, nil)
	})

	e := newEnricher(t)
	t.Run("enrich bin", func(t *testing.T) {
		out := runEnrich(t, e, m.AppendDelimited(nil), framing.FormatBin)
		var got flowpb.FlowMessage
		r := framing.NewMessageReader(bytes.NewReader(out), framing.FormatBin, 0, nil)
		if err := r.Read(&got); err != nil {
			t.Fatal(err)
		}
		requireSame(t, &got, m, enrichOwned)
		if !bytes.HasSuffix(got.ProtoReflect().GetUnknown(), m.ProtoReflect().GetUnknown()) {
			t.Errorf("unknown field lost: % x", got.ProtoReflect().GetUnknown())
		}
	})

	// Keys of other producers, and a goflow2 custom field this stage was
	// given no mapping for: passed on as they are.
	const foreign = `"in_if_name" : "ge-0/0/1","x":{"a":[1,-2.5e+3,{"b":"\"}"}],"c":null},"z":true`
	t.Run("enrich JSON", func(t *testing.T) {
		line := framing.AppendJSON(nil, m, nil)
		line = append(append(append(line[:len(line)-1:len(line)-1], ','), foreign...), "}\n"...)
		out := runEnrich(t, e, line, framing.FormatJSON)
		if !bytes.HasSuffix(out, []byte(","+foreign+"}\n")) {
			t.Errorf("unknown keys not passed on as they were:\n%s", out)
		}
		var got flowpb.FlowMessage
		if err := framing.ParseJSON(bytes.TrimSpace(out), &got, nil); err != nil {
			t.Fatal(err)
		}
		m2 := m.CloneVT()
		m2.ProtoReflect().SetUnknown(nil)
		requireSame(t, &got, m2, enrichOwned)
	})

	t.Run("publish key", func(t *testing.T) {
		other := withUnknown(baseRecord())
		setFlowpipeFields(t, other, 2)
		for _, name := range flowpipeNames {
			f, _ := flowpb.FieldByName(name)
			k, err := publish.ParseKey(name)
			if !f.Singular() {
				if err == nil {
					t.Errorf("%s: a list or map taken as a key", name)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if a, b := k.Append(nil, m), k.Append(nil, other); bytes.Equal(a, b) || !bytes.Equal(a, k.Append(nil, m.CloneVT())) {
				t.Errorf("--key %s: %x for both values, or unstable", name, a)
			}
		}
	})

	t.Run("publish pass-through", func(t *testing.T) {
		bin := m.AppendDelimited(nil)
		for _, tc := range []struct {
			name   string
			format framing.Format
			in     []byte
			want   []byte
		}{
			{"bin", framing.FormatBin, bin, bin},
			{"JSON", framing.FormatJSON, []byte(`{"type":"IPFIX",` + foreign + `,"src_user":"alice"}` + "\n"),
				[]byte(`{"type":"IPFIX",` + foreign + `,"src_user":"alice"}`)},
		} {
			if got := publishOne(t, tc.format, tc.in); !bytes.Equal(got, tc.want) {
				t.Errorf("%s: value\n% x\nwant\n% x", tc.name, got, tc.want)
			}
		}
	})

	t.Run("export by name", func(t *testing.T) {
		var singular []flowpb.Field
		var names []string
		for _, f := range flowpb.Fields() {
			if f.Singular() {
				singular, names = append(singular, f), append(names, f.Name)
			}
		}
		var p export.Parser
		if err := p.ReadFields(names...); err != nil {
			t.Fatal(err)
		}
		for _, value := range [][]byte{m.AppendDelimited(nil), framing.AppendJSON(nil, m, nil)} {
			var r export.Record
			if err := p.Parse(value, &r); err != nil {
				t.Fatal(err)
			}
			for i, f := range singular {
				u, b, _ := m.Scalar(f.Number)
				if r.Fields[i].Uint != u || !bytes.Equal(r.Fields[i].Bytes, b) {
					t.Errorf("%v record, field %s: %+v, want %d %q", r.Format, f.Name, r.Fields[i], u, b)
				}
			}
		}
	})
}

// requireSame compares two records field by field, leaving out the named
// fields, unknown fields included.
func requireSame(t *testing.T, got, want *flowpb.FlowMessage, except []string) {
	t.Helper()
	g, w := got.CloneVT(), want.CloneVT()
	for _, name := range except {
		fd := g.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
		g.ProtoReflect().Clear(fd)
		w.ProtoReflect().Clear(fd)
	}
	if except != nil { // the fields enrichment owns come last: compare sets of unknown fields
		g.ProtoReflect().SetUnknown(nil)
		w.ProtoReflect().SetUnknown(nil)
	}
	if !g.EqualVT(w) {
		t.Errorf("records differ\n got %v\nwant %v", g, w)
	}
}

func newEnricher(t *testing.T) *enrich.Enricher {
	path := filepath.Join(t.TempDir(), "nets.yaml")
	nets := "networks:\n  - name: lan\n    cidrs: [198.51.100.0/24]\n    labels: {site: ams1}\n"
	if err := os.WriteFile(path, []byte(nets), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := enrich.New(enrich.Config{NetworksPath: path})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func runEnrich(t *testing.T, e *enrich.Enricher, in []byte, out framing.Format) []byte {
	var buf bytes.Buffer
	s := enrich.NewStream(e, enrich.StreamConfig{In: bytes.NewReader(in), Out: &buf, OutputFormat: out})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// publishOne runs flowpublish's library on in against an in-process
// broker and returns the one record's value it produced.
func publishOne(t *testing.T, format framing.Format, in []byte) []byte {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "flows"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := publish.DefaultConfig()
	cfg.ValueFormat = format
	p, err := publish.New(cfg, []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("flows"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal(err)
		}
		var values [][]byte
		fs.EachRecord(func(r *kgo.Record) { values = append(values, r.Value) })
		if len(values) > 0 {
			return slices.Concat(values...)
		}
	}
}
