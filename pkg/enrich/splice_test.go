package enrich

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

// spliceCases are records as collectors and earlier stages send them: bare,
// with an exporter's AS, already enriched, with custom (unknown) fields.
func spliceCases() []*flowpb.FlowMessage {
	custom := protowire.AppendTag(nil, 2001, protowire.BytesType)
	custom = protowire.AppendString(custom, "ge-0/0/1")
	withCustom := &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr("10.1.2.3"), Bytes: 1500}
	if err := withCustom.UnmarshalVT(append(withCustom.AppendMarshal(nil), custom...)); err != nil {
		panic(err)
	}
	return []*flowpb.FlowMessage{
		{},
		{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr(enrichtest.AddrAS64501), Bytes: 100, Packets: 1, Proto: 6},
		{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr("2001:db8::1"), SrcAs: 65000, DstAs: 65001, SamplingRate: 10},
		{SrcAddr: addr("10.0.0.1"), DstAddr: addr("172.16.0.1"), SrcCountry: "ZZ", DstAsName: "OLD", Etype: 0x800},
		{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr(enrichtest.AddrAS64501), SrcNetName: "stale",
			SrcNetLabels: map[string]string{"old": "x"}, FlowDirection: flowpb.FlowMessage_EXTERNAL, AsPath: []uint32{1, 2, 3}},
		{SrcAddr: []byte{1, 2, 3}, DstAddr: addr(enrichtest.AddrAS64501)},
		withCustom,
	}
}

// TestSpliceMatchesDecodeEncode: for every case, with and without a
// networks file, the spliced record decodes to exactly what decoding,
// enriching and re-encoding the record gives, unknown fields included.
func TestSpliceMatchesDecodeEncode(t *testing.T) {
	for _, nets := range []string{"", testNets} {
		e, _ := standard(t, ModeTable, nets)
		var sp splicer
		for i, in := range spliceCases() {
			frame := in.AppendMarshal(nil)
			var st1, st2 Stats
			got, err := sp.enrich(e, frame, &st1)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			want := in.CloneVT()
			e.Enrich(want, &st2)
			var back flowpb.FlowMessage
			if err := back.UnmarshalVT(got); err != nil {
				t.Fatalf("case %d: spliced record does not decode: %v", i, err)
			}
			if !back.EqualVT(want) || !bytes.Equal(back.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown()) {
				t.Errorf("networks %v, case %d:\n got %v\nwant %v", nets != "", i, &back, want)
			}
			if st1 != st2 {
				t.Errorf("case %d: stats %+v, want %+v", i, st1, st2)
			}
		}
	}
}

func TestSpliceRejectsBadFrames(t *testing.T) {
	e, _ := standard(t, ModeTable, "")
	var sp splicer
	for name, frame := range map[string][]byte{
		"truncated varint":        {0x08},
		"field 0":                 {0x00, 0x01},
		"bytes past the end":      {0x32, 0x10, 1, 2},
		"src_as as bytes":         {0x72, 0x01, 0x05},
		"src_addr as varint":      {0x30, 0x05},
		"country as fixed32":      {0xc5, 0x3e, 1, 2, 3, 4},
		"end group without start": {0x0c},
	} {
		if _, err := sp.enrich(e, frame, &Stats{}); err == nil {
			t.Errorf("%s: accepted % x", name, frame)
		}
	}
}

// TestStreamBadFrameNamesOffset: the splicing stage stops at a frame that
// is not a message, after writing every record before it.
func TestStreamBadFrameNamesOffset(t *testing.T) {
	e, _ := standard(t, ModeTable, "")
	var in bytes.Buffer
	w := framing.NewWriter(&in)
	good := &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500), Bytes: 1}
	_ = w.WriteMessage(good)
	_ = w.WriteMessage(good)
	_ = w.Flush()
	offset := int64(in.Len())
	in.Write([]byte{2, 0x00, 0x01}) // a frame holding field number 0
	var out bytes.Buffer
	s := NewStream(e, StreamConfig{In: &in, Out: &out, InputFormat: framing.FormatAuto, OutputFormat: framing.FormatBin})
	err := s.Run(t.Context())
	var fe *framing.FrameError
	if !errors.As(err, &fe) || fe.Offset != offset || !errors.Is(err, framing.ErrBadMessage) {
		t.Fatalf("Run() = %v, want a bad message at offset %d", err, offset)
	}
	r := framing.NewMessageReader(&out, framing.FormatBin, 0, nil)
	var m flowpb.FlowMessage
	n := 0
	for r.Read(&m) == nil {
		if m.SrcAs != 64500 {
			t.Errorf("record %d not enriched: %v", n, &m)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d records written before the bad frame, want 2", n)
	}
}

func TestSpliceNoAllocs(t *testing.T) {
	e, _ := standard(t, ModeTable, testNets)
	var sp splicer
	var st Stats
	frame := spliceCases()[1].AppendMarshal(nil)
	_, _ = sp.enrich(e, frame, &st)
	if n := testing.AllocsPerRun(200, func() { _, _ = sp.enrich(e, frame, &st) }); n != 0 {
		t.Fatalf("splice allocates %v times per record", n)
	}
}

// FuzzSplice checks: never panics; whenever the full decoder accepts a
// frame, the splicer accepts it too and both paths give equal records.
func FuzzSplice(f *testing.F) {
	for _, m := range spliceCases() {
		f.Add(m.AppendMarshal(nil))
	}
	e, _ := standard(f, ModeTable, testNets)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var sp splicer
		got, serr := sp.enrich(e, frame, &Stats{})
		if serr == nil && !wireOK(frame) {
			t.Fatalf("splice accepts a malformed frame")
		}
		var want flowpb.FlowMessage
		if want.UnmarshalVT(frame) != nil || !canonicalInput(frame) {
			return
		}
		if serr != nil {
			t.Fatalf("splice rejects a valid frame: %v", serr)
		}
		e.Enrich(&want, &Stats{})
		var back flowpb.FlowMessage
		if err := back.UnmarshalVT(got); err != nil {
			t.Fatalf("spliced record does not decode: %v", err)
		}
		if !back.EqualVT(&want) {
			t.Fatalf("splice and decode/encode differ:\n got %v\nwant %v", &back, &want)
		}
	})
}

// canonicalInput leaves out inputs where the two paths may rightly differ:
// repeated occurrences of a field, whose merge order decoding defines.
func canonicalInput(b []byte) bool {
	seen := map[protowire.Number]bool{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			return false
		}
		if seen[num] && typ != protowire.BytesType {
			return false
		}
		if seen[num] && num >= flowpb.FieldSrcCountry {
			return false
		}
		seen[num] = true
		b = b[n:]
	}
	return true
}

// TestSpliceScanMatchesProtowire: the splicer's inline field scan accepts
// exactly the inputs protowire's field walk accepts, on every one- and
// two-byte tag followed by varint, bytes and truncated values.
func TestSpliceScanMatchesProtowire(t *testing.T) {
	e, _ := standard(t, ModeTable, "")
	var sp splicer
	for x := range 1 << 16 {
		tag := []byte{byte(x), byte(x >> 8)}
		for _, val := range [][]byte{nil, {0x01}, {0x81}, {0x81, 0x01}, {0x02, 'a'}, {0x02, 'a', 'b'}, {0x7f}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0x01, 0x02, 0x03, 0x04}} {
			for _, frame := range [][]byte{append(tag[:1:1], val...), append(tag[:2:2], val...)} {
				_, err := sp.enrich(e, frame, &Stats{})
				if wireOK(frame) != (err == nil) && (err == nil || !strings.Contains(err.Error(), "want")) {
					t.Fatalf("% x: splice error %v, protowire walk ok %v", frame, err, wireOK(frame))
				}
			}
		}
	}
}

// wireOK reports whether b is a sequence of well-formed protobuf fields.
func wireOK(b []byte) bool {
	for len(b) > 0 {
		_, _, n := protowire.ConsumeField(b)
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}
