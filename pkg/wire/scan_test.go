package wire_test

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// referenceFields walks msg with protowire: every field, as AppendFields
// must find it, and whether the whole message is well formed.
func referenceFields(msg []byte) ([]wire.Field, bool) {
	var out []wire.Field
	for i := 0; i < len(msg); {
		num, typ, n := protowire.ConsumeTag(msg[i:])
		if n < 0 {
			return out, false
		}
		m := protowire.ConsumeFieldValue(num, typ, msg[i+n:])
		if m < 0 {
			return out, false
		}
		val := i + n
		if typ == protowire.BytesType {
			_, k := protowire.ConsumeVarint(msg[val:])
			val += k
		}
		out = append(out, wire.Field{Num: num, Type: typ, Start: i, Value: val, End: i + n + m})
		i += n + m
	}
	return out, true
}

func scanAll(msg []byte, set *wire.FieldSet) ([]wire.Field, error) {
	return wire.AppendFields(nil, msg, set)
}

func checkScan(t *testing.T, msg []byte) {
	t.Helper()
	want, ok := referenceFields(msg)
	got, err := scanAll(msg, nil)
	if (err == nil) != ok {
		t.Fatalf("% x: scanner error %v, protowire ok %v", msg, err, ok)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("% x:\n got %v\nwant %v", msg, got, want)
	}
}

// TestAppendFieldsMatchesProtowire: the scanner's inline fast path finds
// exactly the fields protowire's walk finds, and fails where it fails, on
// every one- and two-byte tag followed by varints, bytes, fixed-size and
// truncated values (the shapes the fast path decodes itself).
func TestAppendFieldsMatchesProtowire(t *testing.T) {
	vals := [][]byte{nil, {0x01}, {0x81}, {0x81, 0x01}, {0x02, 'a'}, {0x02, 'a', 'b'}, {0x7f},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		{0x01, 0x02, 0x03, 0x04}, {0x80, 0x01}, append([]byte{0x80, 0x01}, make([]byte, 128)...)}
	for x := range 1 << 16 {
		tag := []byte{byte(x), byte(x >> 8)}
		for _, val := range vals {
			if x < 256 {
				checkScan(t, append(tag[:1:1], val...))
			}
			checkScan(t, append(tag[:2:2], val...))
		}
	}
}

func TestAppendFieldsWholeRecords(t *testing.T) {
	for i := range 50 {
		m := benchFlow(i)
		m.MplsIp = [][]byte{{}, {10, 0, 0, 1}}
		m.SrcNetLabels = map[string]string{"site": "ams1"}
		m.SrcAsName = string(make([]byte, 200+i)) // a two-byte length
		msg := m.AppendMarshal(nil)
		msg = protowire.AppendTag(msg, 3000, protowire.StartGroupType) // a group: protowire takes it
		msg = protowire.AppendTag(msg, 1, protowire.VarintType)
		msg = protowire.AppendVarint(msg, 5)
		msg = protowire.AppendTag(msg, 3000, protowire.EndGroupType)
		checkScan(t, msg)
		for cut := range len(msg) {
			checkScan(t, msg[:cut])
		}
	}
}

// TestAppendFieldsSet: only the fields of the set are found, small and
// large numbers alike, and the values it points at decode.
func TestAppendFieldsSet(t *testing.T) {
	m := benchFlow(3)
	msg := m.AppendMarshal(nil)
	msg = protowire.AppendTag(msg, 5000, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 1<<40)
	set := wire.NewFieldSet(flowpb.FieldSrcAs, flowpb.FieldSrcAddr, flowpb.FieldDstCountry, 5000)
	got, err := scanAll(msg, set)
	if err != nil || len(got) != 4 {
		t.Fatalf("%v %v", got, err)
	}
	want := map[protowire.Number]string{flowpb.FieldSrcAddr: "[10 0 0 3]", flowpb.FieldSrcAs: "64500",
		flowpb.FieldDstCountry: "[85 83]", 5000: "1099511627776"}
	for _, f := range got {
		var s string
		if f.Type == protowire.VarintType {
			s = fmt.Sprint(wire.Varint(msg[f.Value:f.End]))
		} else {
			s = fmt.Sprint(msg[f.Value:f.End])
		}
		if s != want[f.Num] {
			t.Errorf("field %d: %s, want %s", f.Num, s, want[f.Num])
		}
	}
	u := set.Union(wire.NewFieldSet(flowpb.FieldDstAs, 1<<29))
	for _, n := range []protowire.Number{flowpb.FieldSrcAs, flowpb.FieldDstAs, 5000, 1 << 29} {
		if !u.Has(n) {
			t.Errorf("union lacks %d", n)
		}
	}
	if set.Has(flowpb.FieldDstAs) || set.Has(1<<29) || set.Has(1) {
		t.Error("union changed its operand, or Has is wrong")
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 35, 1<<64 - 1} {
		b := binary.AppendUvarint(nil, v)
		if got := wire.Varint(b); got != v {
			t.Errorf("Varint(% x) = %d, want %d", b, got, v)
		}
		if wire.SizeVarint(v) != len(b) || string(wire.AppendVarint(nil, v)) != string(b) {
			t.Errorf("AppendVarint/SizeVarint(%d)", v)
		}
	}
}

func TestAppendPackedSigned(t *testing.T) {
	got := wire.AppendPackedField(nil, 1, []int32{-1, 2})
	want := protowire.AppendTag(nil, 1, protowire.BytesType)
	minus1 := int64(-1)
	inner := protowire.AppendVarint(nil, uint64(minus1))
	inner = protowire.AppendVarint(inner, 2)
	want = protowire.AppendBytes(want, inner)
	if string(got) != string(want) {
		t.Fatalf("% x, want % x", got, want)
	}
}

// FuzzAppendFields checks the scan against protowire's field walk on any
// input: the same fields, the same verdict, never a panic.
func FuzzAppendFields(f *testing.F) {
	f.Add(body(benchFlow(1)))
	f.Add([]byte{0x08, 0x96, 0x01, 0x0b, 0x08, 0x01, 0x0c})
	f.Add([]byte{0x80, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, msg []byte) { checkScan(t, msg) })
}

func BenchmarkAppendFields(b *testing.B) {
	msg := body(benchFlow(1))
	set := wire.NewFieldSet(flowpb.FieldSrcAddr, flowpb.FieldDstAddr, flowpb.FieldSrcAs, flowpb.FieldDstAs,
		flowpb.FieldSrcCountry, flowpb.FieldDstCountry, flowpb.FieldSrcAsName, flowpb.FieldDstAsName)
	var found []wire.Field
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if found, err = wire.AppendFields(found[:0], msg, set); err != nil {
			b.Fatal(err)
		}
	}
}
