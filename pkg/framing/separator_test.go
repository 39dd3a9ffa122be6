package framing_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// separated writes bodies as goflow2 -format=bin does with its default
// -transport.file.sep="\n": each frame followed by a newline.
func separated(bodies ...[]byte) []byte {
	var out []byte
	for _, b := range bodies {
		out = protowire.AppendBytes(out, b)
		out = append(out, '\n')
	}
	return out
}

func readSeparated(t *testing.T, in []byte, oneByte bool) ([][]byte, framing.Separator, error) {
	t.Helper()
	var src io.Reader = bytes.NewReader(in)
	if oneByte {
		src = iotest.OneByteReader(src)
	}
	r := framing.NewReader(src, 1<<10)
	var got [][]byte
	for {
		f, err := r.Next()
		if err == io.EOF {
			return got, r.Separator(), nil
		}
		if err != nil {
			return got, r.Separator(), err
		}
		got = append(got, bytes.Clone(f))
	}
}

func TestNewlineSeparator(t *testing.T) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, Bytes: 1500, Packets: 1, SamplerAddress: []byte{192, 0, 2, 1}}
	rec, _ := m.MarshalVT()
	ten := []byte{0x08, 0x04, 0x18, 0x81, 0x01, 0x48, 0xdc, 0x0b, 0x50, 0x02} // well-formed, 10 bytes: its prefix is '\n'
	for _, c := range []struct {
		name string
		in   []byte
		want [][]byte
		sep  framing.Separator
	}{
		{"goflow2 default separator", separated(rec, rec, rec), [][]byte{rec, rec, rec}, framing.SepNewline},
		{"a 10-byte frame between separators", separated(rec, ten, rec), [][]byte{rec, ten, rec}, framing.SepNewline},
		{"last separator missing", separated(rec, rec)[:2*(len(rec)+2)-1], [][]byte{rec, rec}, framing.SepNewline},
		{"one record", separated(rec), [][]byte{rec}, framing.SepNewline},
		{"no separator", append(protowire.AppendBytes(nil, rec), protowire.AppendBytes(nil, rec)...), [][]byte{rec, rec}, framing.SepNone},
		{"no separator, a 10-byte second frame", append(protowire.AppendBytes(nil, rec), protowire.AppendBytes(nil, ten)...), [][]byte{rec, ten}, framing.SepNone},
	} {
		for _, oneByte := range []bool{false, true} {
			got, sep, err := readSeparated(t, c.in, oneByte)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if sep != c.sep && len(c.want) > 1 {
				t.Errorf("%s: separator %s, want %s", c.name, sep, c.sep)
			}
			if len(got) != len(c.want) {
				t.Errorf("%s: %d frames, want %d", c.name, len(got), len(c.want))
				continue
			}
			for i := range got {
				if !bytes.Equal(got[i], c.want[i]) {
					t.Errorf("%s: frame %d % x, want % x", c.name, i, got[i], c.want[i])
				}
			}
		}
	}
}

// TestNewlineSeparatorMissing: once the stream is known to separate
// frames, a frame without its newline is a bad frame at its offset.
func TestNewlineSeparatorMissing(t *testing.T) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_SFLOW_5, Bytes: 64}
	rec, _ := m.MarshalVT()
	in := separated(rec, rec)
	bad := len(in) + 1 + len(rec)
	in = append(in, protowire.AppendBytes(nil, rec)...)
	in = append(in, protowire.AppendBytes(nil, rec)...) // no newline before this one
	got, _, err := readSeparated(t, in, false)
	var fe *framing.FrameError
	if len(got) != 3 || !errors.As(err, &fe) || !errors.Is(err, framing.ErrNoSeparator) || fe.Offset != int64(bad) {
		t.Fatalf("%d frames, err %v (want ErrNoSeparator at %d)", len(got), err, bad)
	}
}

// TestMessageReaderSeparator reads goflow2's newline-separated bin
// through the stages' reader, detected with no flag.
func TestMessageReaderSeparator(t *testing.T) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_NETFLOW_V9, Bytes: 1, SrcAddr: []byte{10, 0, 0, 1}}
	rec, _ := m.MarshalVT()
	r := framing.NewMessageReader(bytes.NewReader(separated(rec, rec, rec)), framing.FormatAuto, 0, nil)
	var got flowpb.FlowMessage
	n := 0
	for ; ; n++ {
		err := r.Read(&got)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !got.EqualVT(m) {
			t.Fatalf("record %d: %v", n, &got)
		}
	}
	if n != 3 || r.Format() != framing.FormatBin || r.Separator() != framing.SepNewline {
		t.Fatalf("%d records, format %s, separator %s", n, r.Format(), r.Separator())
	}
}

// FuzzNewlineSeparated writes frames cut from the input as goflow2 does
// (each followed by a newline) and reads them back: the same frames, in
// order, whatever their sizes (10-byte frames, whose prefix is a newline,
// included), at least when the second one is well-formed protobuf (what
// detection asks); on arbitrary input, never a panic and offsets that
// only grow.
func FuzzNewlineSeparated(f *testing.F) {
	f.Add([]byte{8, 1, 16, 2, 24, 3, 32, 4, 40, 5, 48, 6}, []byte{4, 10, 0})
	f.Add([]byte{8, 4, 24, 1, 72, 220, 11, 80, 2, 0}, []byte{10, 10, 10})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var bodies [][]byte
		rest := data
		for _, c := range cuts {
			n := min(int(c), len(rest))
			bodies = append(bodies, rest[:n])
			rest = rest[n:]
		}
		in := separated(bodies...)
		got, sep, err := readSeparated(t, in, len(data)%2 == 1)
		if len(bodies) > 1 && isMessage(bodies[1]) {
			if err != nil || sep != framing.SepNewline || len(got) != len(bodies) {
				t.Fatalf("%d frames %q: got %d, separator %s, err %v", len(bodies), bodies, len(got), sep, err)
			}
			for i := range got {
				if !bytes.Equal(got[i], bodies[i]) {
					t.Fatalf("frame %d: %q, want %q", i, got[i], bodies[i])
				}
			}
		}
		// Arbitrary input: no panic, offsets only grow.
		r := framing.NewReader(bytes.NewReader(data), 64)
		for last := int64(0); ; {
			if _, err := r.Next(); err != nil {
				break
			}
			if r.Offset() <= last || r.Offset() > int64(len(data)) {
				t.Fatalf("offset %d after %d, input %d bytes", r.Offset(), last, len(data))
			}
			last = r.Offset()
		}
	})
}

// isMessage says whether b is a sequence of protobuf fields without groups.
func isMessage(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num == 0 || typ == protowire.StartGroupType || typ == protowire.EndGroupType {
			return false
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}
