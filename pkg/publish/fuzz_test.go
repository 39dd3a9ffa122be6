package publish

import (
	"bytes"
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// FuzzRecord feeds arbitrary frame bodies through what the read loop does
// to each record before producing it: parse (as framing's reader does),
// key, and build the value into a slab.
//
// Invariants: no panic; a body that parses yields a KeySize-byte key that
// is the same for a re-parse of the same bytes; the bin value is the
// body behind its varint length, byte for byte; the JSON value parses back.
func FuzzRecord(f *testing.F) {
	for i := 0; i < 4; i++ {
		b, _ := testFlow(i, 3).MarshalVT()
		f.Add(b, "sampler_address")
	}
	b, _ := benchFlow(7).MarshalVT()
	f.Add(b, "src_dst,dst_port,src_country")
	f.Add([]byte{0x0a, 0x00}, "none")
	f.Fuzz(func(t *testing.T, body []byte, spec string) {
		k, err := ParseKey(spec)
		if err != nil {
			return
		}
		var m flowpb.FlowMessage
		if m.UnmarshalVT(body) != nil {
			return
		}
		s := newSlabs()
		if k != nil {
			k1 := k.Append(nil, &m)
			var m2 flowpb.FlowMessage
			_ = m2.UnmarshalVT(body)
			if len(k1) != KeySize || !bytes.Equal(k1, k.Append(nil, &m2)) {
				t.Fatalf("key %x not stable", k1)
			}
		}
		n := uvarintLen(uint64(len(body))) + len(body)
		buf, sl := s.alloc(n)
		buf = append(binary.AppendUvarint(buf, uint64(len(body))), body...)
		if len(buf) != n {
			t.Fatalf("value of %d bytes, want %d", len(buf), n)
		}
		frames := framing.NewReader(bytes.NewReader(buf), 0)
		got, err := frames.Next()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("value does not frame the body: %v", err)
		}
		s.release(sl)
		js := framing.AppendJSON(nil, &m, nil)
		var back flowpb.FlowMessage
		if err := framing.ParseJSON(js, &back, nil); err != nil {
			t.Fatalf("JSON value does not parse back: %v\n%s", err, js)
		}
	})
}

// FuzzWellFormed: wellFormed accepts exactly what protowire can walk
// field by field (groups aside), so the pass-through path rejects what a
// decoder would.
func FuzzWellFormed(f *testing.F) {
	b, _ := benchFlow(1).MarshalVT()
	f.Add(b)
	f.Add([]byte{0x08, 0x96, 0x01})
	f.Add([]byte{0x0a, 0x05, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := wellFormed(b), protowireWalk(b); got != want {
			t.Fatalf("wellFormed %v, protowire %v for %x", got, want, b)
		}
		// Both halves, and a half with a valid record, as pairs: the
		// interleaved walk must judge each as the single one does.
		h := len(b) / 2
		valid, _ := benchFlow(h).MarshalVT()
		for _, pair := range [][2][]byte{{b[:h], b[h:]}, {b[h:], b[:h]}, {b, valid}, {valid, b}} {
			want := protowireWalk(pair[0]) && protowireWalk(pair[1])
			if got := wellFormed2(pair[0], pair[1]); got != want {
				t.Fatalf("wellFormed2 %v, protowire %v for %x and %x", got, want, pair[0], pair[1])
			}
		}
	})
}

// TestWellFormedPairs: every cut of a record (most are not well formed),
// paired with whole records longer and shorter than it, is judged by the
// interleaved walk as by protowire, whichever walk ends first.
func TestWellFormedPairs(t *testing.T) {
	long, _ := benchFlow(7).MarshalVT()
	short, _ := testFlow(3, 4).MarshalVT()
	for _, whole := range [][]byte{long, short} {
		for cut := 0; cut <= len(long); cut++ {
			b := long[:cut]
			want := protowireWalk(b)
			if got := wellFormed(b); got != want {
				t.Fatalf("wellFormed(cut %d) = %v, protowire %v", cut, got, want)
			}
			if got := wellFormed2(b, whole); got != want {
				t.Fatalf("wellFormed2(cut %d, %d bytes) = %v, protowire %v", cut, len(whole), got, want)
			}
			if got := wellFormed2(whole, b); got != want {
				t.Fatalf("wellFormed2(%d bytes, cut %d) = %v, protowire %v", len(whole), cut, got, want)
			}
		}
	}
}

func protowireWalk(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ == protowire.StartGroupType || typ == protowire.EndGroupType {
			return false
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

func BenchmarkWellFormed(b *testing.B) {
	body, _ := benchFlow(1).MarshalVT()
	b.ReportAllocs()
	for b.Loop() {
		if !wellFormed(body) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkWellFormed2 checks two records per op (compare with two ops of
// BenchmarkWellFormed).
func BenchmarkWellFormed2(b *testing.B) {
	x, _ := benchFlow(1).MarshalVT()
	y, _ := benchFlow(2).MarshalVT()
	b.ReportAllocs()
	for b.Loop() {
		if !wellFormed2(x, y) {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkUnmarshalUnsafe(b *testing.B) {
	body, _ := benchFlow(1).MarshalVT()
	var m flowpb.FlowMessage
	b.ReportAllocs()
	for b.Loop() {
		m.ResetVT()
		if m.UnmarshalVTUnsafe(body) != nil {
			b.Fatal("rejected")
		}
	}
}
