package publish

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/wire"
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
		n := wire.SizeVarint(uint64(len(body))) + len(body)
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
