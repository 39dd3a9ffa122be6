package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// testFlow is a collector's record; benchFlow one of 198 bytes with most
// of what an enriched IPFIX record holds (the same as pkg/publish's, so
// that the two packages' benchmarks compare).
func testFlow(i, samplers int) *flowpb.FlowMessage {
	s := byte(i % samplers)
	return &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_IPFIX, TimeReceivedNs: uint64(1_700_000_000_000_000_000 + i),
		SequenceNum: uint32(i / samplers), SamplingRate: 1000, SamplerAddress: []byte{192, 0, 2, s},
		SrcAddr: []byte{10, 0, byte(i >> 8), byte(i)}, DstAddr: []byte{10, 1, byte(i >> 8), byte(i)},
		Bytes: uint64(1500 + i%100), Packets: uint64(1 + i%10), Etype: 0x800, Proto: 6,
		SrcPort: uint32(1024 + i%60000), DstPort: 443, SrcAs: 64500, DstAs: 64501, InIf: 1, OutIf: 2,
	}
}

func benchFlow(i int) *flowpb.FlowMessage {
	m := testFlow(i, 16)
	m.TimeFlowStartNs = m.TimeReceivedNs - 5e9
	m.TimeFlowEndNs = m.TimeReceivedNs - 1e9
	m.SrcMac, m.DstMac = 0x0a0b0c0d0e0f, 0x0f0e0d0c0b0a
	m.NextHop = []byte{192, 0, 2, 254}
	m.BgpNextHop = []byte{192, 0, 2, 253}
	m.SrcNet, m.DstNet = 24, 24
	m.TcpFlags, m.IpTtl, m.ForwardingStatus = 0x18, 64, 64
	m.AsPath = []uint32{64500, 64510, 64520, 64501}
	m.BgpCommunities = []uint32{0xfde80001, 0xfde80002}
	m.DstCountry = "US"
	m.SrcCountry = "FR"
	if n := m.SizeVT(); n < 197 {
		m.SrcCountry += strings.Repeat(" ", 197-n) // value: 2-byte prefix + 198-byte body
	}
	return m
}

func body(m *flowpb.FlowMessage) []byte { return m.AppendMarshal(nil) }

// FuzzWellFormed: WellFormed accepts exactly what protowire can walk
// field by field (groups aside), so a stage passing records through
// rejects what a decoder would.
func FuzzWellFormed(f *testing.F) {
	f.Add(body(benchFlow(1)))
	f.Add([]byte{0x08, 0x96, 0x01})
	f.Add([]byte{0x0a, 0x05, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := wire.WellFormed(b), protowireWalk(b); got != want {
			t.Fatalf("WellFormed %v, protowire %v for %x", got, want, b)
		}
		// Both halves, and a half with a valid record, as pairs: the
		// interleaved walk must judge each as the single one does.
		h := len(b) / 2
		valid := body(benchFlow(h))
		for _, pair := range [][2][]byte{{b[:h], b[h:]}, {b[h:], b[:h]}, {b, valid}, {valid, b}} {
			want := protowireWalk(pair[0]) && protowireWalk(pair[1])
			if got := wire.WellFormed2(pair[0], pair[1]); got != want {
				t.Fatalf("WellFormed2 %v, protowire %v for %x and %x", got, want, pair[0], pair[1])
			}
		}
	})
}

// TestWellFormedPairs: every cut of a record (most are not well formed),
// paired with whole records longer and shorter than it, is judged by the
// interleaved walk as by protowire, whichever walk ends first.
func TestWellFormedPairs(t *testing.T) {
	long := body(benchFlow(7))
	short := body(testFlow(3, 4))
	for _, whole := range [][]byte{long, short} {
		for cut := 0; cut <= len(long); cut++ {
			b := long[:cut]
			want := protowireWalk(b)
			if got := wire.WellFormed(b); got != want {
				t.Fatalf("WellFormed(cut %d) = %v, protowire %v", cut, got, want)
			}
			if got := wire.WellFormed2(b, whole); got != want {
				t.Fatalf("WellFormed2(cut %d, %d bytes) = %v, protowire %v", cut, len(whole), got, want)
			}
			if got := wire.WellFormed2(whole, b); got != want {
				t.Fatalf("WellFormed2(%d bytes, cut %d) = %v, protowire %v", len(whole), cut, got, want)
			}
		}
	}
}

// protowireWalk is the reference of WellFormed: protowire's field walk,
// groups rejected.
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
	msg := body(benchFlow(1))
	b.ReportAllocs()
	for b.Loop() {
		if !wire.WellFormed(msg) {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkWellFormed2 checks two records per op (compare with two ops of
// BenchmarkWellFormed).
func BenchmarkWellFormed2(b *testing.B) {
	x, y := body(benchFlow(1)), body(benchFlow(2))
	b.ReportAllocs()
	for b.Loop() {
		if !wire.WellFormed2(x, y) {
			b.Fatal("rejected")
		}
	}
}

func frames(bodies ...[]byte) []byte {
	var out []byte
	for _, b := range bodies {
		out = append(binary.AppendUvarint(out, uint64(len(b))), b...)
	}
	return out
}

func TestNextFrame(t *testing.T) {
	rec := body(testFlow(1, 1))
	stream := frames(rec, []byte{})
	b, end, need, err := wire.NextFrame(stream, 0, 1000)
	if err != nil || !bytes.Equal(b, rec) || end != 1+len(rec) || need != 0 || cap(b) != len(b) {
		t.Fatalf("first frame: %x %d %d %v", b, end, need, err)
	}
	if b, end, _, err = wire.NextFrame(stream, end, 1000); err != nil || len(b) != 0 || end != len(stream) {
		t.Fatalf("empty frame: %x %d %v", b, end, err)
	}
	for _, tc := range []struct {
		name       string
		data       []byte
		max        int
		need       int
		err        error
		errMessage string
	}{
		{"nothing", nil, 100, wire.MaxPrefixLen, nil, ""},
		{"cut prefix", []byte{0x80}, 100, wire.MaxPrefixLen, nil, ""},
		{"cut body", []byte{5, 1, 2}, 100, 6, nil, ""},
		{"two-byte prefix, cut body", []byte{0x80, 0x01}, 200, 130, nil, ""},
		{"too large", []byte{0x80, 0x01}, 100, 0, wire.ErrTooLarge, "frame too large: 128 bytes, limit 100"},
		{"not a varint", bytes.Repeat([]byte{0xff}, 10), 100, 0, wire.ErrBadPrefix, "bad length prefix"},
		{"64 bits overflow", append(bytes.Repeat([]byte{0xff}, 9), 0x02), 100, 0, wire.ErrBadPrefix, ""},
	} {
		_, end, need, err := wire.NextFrame(tc.data, 0, tc.max)
		if end != 0 || need != tc.need || !errors.Is(err, tc.err) || tc.errMessage != "" && err.Error() != tc.errMessage {
			t.Errorf("%s: end %d need %d err %v", tc.name, end, need, err)
		}
	}
}

// FuzzScanFrames checks ScanFrames against a frame-by-frame reference
// (binary.Uvarint and protowire): the same count of whole frames, bytes
// and body bytes, the same need or error for what follows; never reading
// past data.
func FuzzScanFrames(f *testing.F) {
	f.Add(frames(body(benchFlow(1)), body(testFlow(2, 3)), body(benchFlow(3))), uint16(300))
	f.Add(frames(body(benchFlow(1)), []byte{0x00}), uint16(300))
	f.Add(frames(body(benchFlow(1)))[:50], uint16(300))
	f.Add(frames(body(benchFlow(1))), uint16(10))
	f.Add(bytes.Repeat([]byte{0x80}, 12), uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		maxSize := int(max)
		n, records, bodies, need, err := wire.ScanFrames(data, maxSize)
		var wn, wrecords, wbodies, wneed int
		var werr error
		for {
			size, plen := binary.Uvarint(data[wn:])
			rest := len(data) - wn
			if plen < 0 || plen == 0 && rest >= wire.MaxPrefixLen {
				werr = wire.ErrBadPrefix
				break
			}
			if plen > 0 && size > uint64(maxSize) {
				werr = wire.ErrTooLarge
				break
			}
			if plen == 0 {
				wneed = wire.MaxPrefixLen
				break
			}
			if uint64(rest-plen) < size {
				wneed = plen + int(size)
				break
			}
			if !protowireWalk(data[wn+plen : wn+plen+int(size)]) {
				werr = wire.ErrBadMessage
				break
			}
			wn, wrecords, wbodies = wn+plen+int(size), wrecords+1, wbodies+int(size)
		}
		if n != wn || records != wrecords || bodies != wbodies || need != wneed || !errors.Is(err, werr) || (err == nil) != (werr == nil) {
			t.Fatalf("ScanFrames = %d %d %d %d %v, reference %d %d %d %d %v", n, records, bodies, need, err, wn, wrecords, wbodies, wneed, werr)
		}
	})
}

func BenchmarkScanFrames(b *testing.B) {
	var bodies [][]byte
	for i := range 1024 {
		bodies = append(bodies, body(benchFlow(i)))
	}
	data := frames(bodies...)
	b.SetBytes(int64(len(data) / len(bodies)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, records, _, _, err := wire.ScanFrames(data, 1<<20); err != nil || records != len(bodies) {
			b.Fatal(records, err)
		}
		n += len(bodies)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
