package framing_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

func TestParseFormat(t *testing.T) {
	for _, f := range []framing.Format{framing.FormatAuto, framing.FormatBin, framing.FormatJSON} {
		got, err := framing.ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := framing.ParseFormat("xml"); err == nil || !strings.HasPrefix(err.Error(), "framing: ") {
		t.Errorf("ParseFormat(xml): %v", err)
	}
	if s := framing.Format(9).String(); s != "Format(9)" {
		t.Errorf("Format(9).String() = %q", s)
	}
}

// streamOf writes msgs in format f.
func streamOf(t testing.TB, f framing.Format, msgs ...*flowpb.FlowMessage) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := framing.NewMessageWriter(&buf, f, customOpts())
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readAll reads records until an error, cloning each one; it checks that
// Offset only grows.
func readAll(t testing.TB, r *framing.MessageReader) ([]*flowpb.FlowMessage, error) {
	t.Helper()
	var out []*flowpb.FlowMessage
	var m flowpb.FlowMessage
	last := r.Offset()
	for {
		err := r.Read(&m)
		if r.Offset() < last {
			t.Errorf("offset went back from %d to %d", last, r.Offset())
		}
		last = r.Offset()
		if err != nil {
			return out, err
		}
		out = append(out, m.CloneVT())
	}
}

func requireRecords(t *testing.T, got, want []*flowpb.FlowMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range got {
		requireEqual(t, got[i], want[i])
	}
}

func TestMessageReaderRoundTrip(t *testing.T) {
	msgs := []*flowpb.FlowMessage{goflowSFlowSample(), goflowNetFlowV9Sample(), {}, goflowSFlowSample()}
	msgs[1].SrcNetLabels = map[string]string{"a": "b"}
	for _, f := range []framing.Format{framing.FormatBin, framing.FormatJSON} {
		for _, mode := range []framing.Format{framing.FormatAuto, f} {
			t.Run(f.String()+"/"+mode.String(), func(t *testing.T) {
				in := streamOf(t, f, msgs...)
				// one byte at a time, to prove that nothing depends on read sizes
				r := framing.NewMessageReader(iotest.OneByteReader(bytes.NewReader(in)), mode, 0, nil)
				got, err := readAll(t, r)
				if err != io.EOF {
					t.Fatalf("got %v, want io.EOF", err)
				}
				requireRecords(t, got, msgs)
				if r.Format() != f {
					t.Errorf("format %v, want %v", r.Format(), f)
				}
				if r.Offset() != int64(len(in)) {
					t.Errorf("offset %d at the end of %d bytes", r.Offset(), len(in))
				}
				if err := r.Read(new(flowpb.FlowMessage)); err != io.EOF {
					t.Errorf("read after EOF: %v", err)
				}
			})
		}
	}
}

// goflow2 -format=bin writes with protodelim.MarshalTo.
func TestMessageReaderReadsProtodelim(t *testing.T) {
	msgs := []*flowpb.FlowMessage{goflowSFlowSample(), goflowNetFlowV9Sample(), withUnknown(&flowpb.FlowMessage{})}
	var buf bytes.Buffer
	for _, m := range msgs {
		if _, err := protodelim.MarshalTo(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf.Bytes(), streamOf(t, framing.FormatBin, msgs...)) {
		t.Error("Writer and protodelim disagree")
	}
	got, err := readAll(t, framing.NewMessageReader(&buf, framing.FormatAuto, 0, nil))
	if err != io.EOF {
		t.Fatal(err)
	}
	requireRecords(t, got, msgs)
}

func TestMessageReaderRaw(t *testing.T) {
	m := goflowNetFlowV9Sample()
	frame, _ := m.MarshalVT()
	line := framing.AppendJSON(nil, m, nil)
	for _, tc := range []struct {
		in   []byte
		want []byte
	}{
		{streamOf(t, framing.FormatBin, m), frame},
		{append(append([]byte("\n  \r\n"), line...), "\r\n"...), line},
	} {
		r := framing.NewMessageReader(bytes.NewReader(tc.in), framing.FormatAuto, 0, nil)
		if err := r.Read(new(flowpb.FlowMessage)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Raw(), tc.want) {
			t.Errorf("Raw() = %q, want %q", r.Raw(), tc.want)
		}
	}
}

func TestMessageReaderDetect(t *testing.T) {
	json := string(framing.AppendJSON(nil, goflowSFlowSample(), nil))
	bin := string(streamOf(t, framing.FormatBin, goflowSFlowSample()))
	big := &flowpb.FlowMessage{Type: 1, SrcAsName: strings.Repeat("x", 123-5)} // a 0x7b ('{') length prefix
	bigBin := string(streamOf(t, framing.FormatBin, big))
	if bigBin[0] != '{' {
		t.Fatalf("test frame starts with %#x", bigBin[0])
	}
	// The documented ambiguity: no type, no sampling_rate, sequence_num 34.
	odd := string(streamOf(t, framing.FormatBin, &flowpb.FlowMessage{SequenceNum: 34, SrcAsName: strings.Repeat("x", 118)}))
	if odd[:3] != "{ \"" {
		t.Fatalf("ambiguous frame starts with %q", odd[:3])
	}
	for _, tc := range []struct {
		name  string
		in    string
		want  framing.Format
		count int
		err   error
	}{
		{"empty", "", framing.FormatAuto, 0, io.EOF},
		{"ambiguous bin read as JSON", odd, framing.FormatJSON, 0, framing.ErrBadJSON},
		{"bin", bin, framing.FormatBin, 1, io.EOF},
		{"bin frame of length '{'", bigBin, framing.FormatBin, 1, io.EOF},
		{"json", json + "\n", framing.FormatJSON, 1, io.EOF},
		{"json without final newline", json, framing.FormatJSON, 1, io.EOF},
		{"json after blank lines", "\n\r\n \t\n" + json + "\n\n" + json, framing.FormatJSON, 2, io.EOF},
		{"json empty object", "{ }", framing.FormatJSON, 1, io.EOF},
		{"json with space after brace", "{ \"bytes\":1}", framing.FormatJSON, 1, io.EOF},
		{"whitespace only", " \n\n", framing.FormatJSON, 0, io.EOF},
		{"lone brace", "{", framing.FormatJSON, 0, framing.ErrBadJSON},
		{"json array is bin", "[{}]", framing.FormatBin, 0, framing.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := framing.NewMessageReader(strings.NewReader(tc.in), framing.FormatAuto, 0, nil)
			got, err := readAll(t, r)
			if !errors.Is(err, tc.err) {
				t.Errorf("got error %v, want %v", err, tc.err)
			}
			if len(got) != tc.count {
				t.Errorf("got %d records, want %d", len(got), tc.count)
			}
			if r.Format() != tc.want {
				t.Errorf("format %v, want %v", r.Format(), tc.want)
			}
		})
	}
}

func TestMessageReaderBinErrors(t *testing.T) {
	good := streamOf(t, framing.FormatBin, goflowSFlowSample(), goflowNetFlowV9Sample(), goflowSFlowSample())
	oversized := streamOf(t, framing.FormatBin, &flowpb.FlowMessage{SrcAsName: strings.Repeat("x", 300)})
	for _, tc := range []struct {
		name    string
		tail    []byte
		maxSize int
		err     error
	}{
		{"truncated frame at the end", []byte{50, 8, 1, 2, 3}, 0, framing.ErrTruncated},
		{"truncated prefix at the end", []byte{0x80}, 0, framing.ErrTruncated},
		{"oversized length", oversized, 256, framing.ErrTooLarge},
		{"non-varint prefix", bytes.Repeat([]byte{0xff}, 11), 0, framing.ErrBadPrefix},
		{"not a protobuf message", []byte{2, 0xff, 0xff}, 0, framing.ErrBadMessage},
		{"wrong wire type", []byte{2, 0x0a, 0x00}, 0, framing.ErrBadMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte(nil), good...), tc.tail...)
			r := framing.NewMessageReader(bytes.NewReader(in), framing.FormatAuto, tc.maxSize, nil)
			got, err := readAll(t, r)
			if len(got) != 3 {
				t.Errorf("got %d records before the error, want 3", len(got))
			}
			var fe *framing.FrameError
			if !errors.As(err, &fe) || !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want a FrameError for %v", err, tc.err)
			}
			if fe.Offset != int64(len(good)) {
				t.Errorf("error at offset %d, want %d", fe.Offset, len(good))
			}
			if again := r.Read(new(flowpb.FlowMessage)); again != err {
				t.Errorf("second Read returned %v, want the same error", again)
			}
		})
	}
}

func TestMessageReaderJSONErrors(t *testing.T) {
	l1 := string(framing.AppendJSON(nil, goflowSFlowSample(), nil))
	l2 := string(framing.AppendJSON(nil, goflowNetFlowV9Sample(), nil))
	for _, tc := range []struct {
		name    string
		third   string
		maxSize int
		err     error
		text    string
	}{
		{"invalid JSON line 3", `{"bytes":12,"proto":"TCP",}`, 0, framing.ErrBadJSON,
			"line 3: invalid JSON: expected a key at column 27"},
		{"bad value line 3", `{"src_addr":"300.1.1.1"}`, 0, framing.ErrBadJSON,
			`line 3: invalid JSON: invalid address in "src_addr" at column 13`},
		{"line over maxSize", `{"src_as_name":"` + strings.Repeat("x", 2000) + `"}`, 1500, framing.ErrTooLarge,
			"line 3 is longer than 1500 bytes"},
		{"line over maxSize and the buffer", `{"x":"` + strings.Repeat("x", 600<<10) + `"}`, 500 << 10, framing.ErrTooLarge,
			"line 3 is longer than 512000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := l1 + "\n" + l2 + "\r\n"
			in := head + tc.third + "\n" + l1 + "\n"
			r := framing.NewMessageReader(strings.NewReader(in), framing.FormatAuto, tc.maxSize, nil)
			got, err := readAll(t, r)
			requireRecords(t, got, []*flowpb.FlowMessage{goflowSFlowSample(), goflowNetFlowV9Sample()})
			var fe *framing.FrameError
			if !errors.As(err, &fe) || !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want a FrameError for %v", err, tc.err)
			}
			if fe.Offset != int64(len(head)) {
				t.Errorf("error at offset %d, want %d", fe.Offset, len(head))
			}
			if want := "framing: bad frame at byte offset "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q, want it to contain %q", err, tc.text)
			}
		})
	}
}

func TestMessageReaderLargeRecords(t *testing.T) {
	m := &flowpb.FlowMessage{SrcAsName: strings.Repeat("é", 200<<10), Bytes: 3} // 400 KiB, past the buffer
	for _, f := range []framing.Format{framing.FormatBin, framing.FormatJSON} {
		in := streamOf(t, f, m, goflowSFlowSample(), m)
		r := framing.NewMessageReader(bytes.NewReader(in), framing.FormatAuto, 0, nil)
		got, err := readAll(t, r)
		if err != io.EOF {
			t.Fatal(err)
		}
		requireRecords(t, got, []*flowpb.FlowMessage{m, goflowSFlowSample(), m})
	}
}

func TestMessageReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, f := range []framing.Format{framing.FormatAuto, framing.FormatBin, framing.FormatJSON} {
		r := framing.NewMessageReader(iotest.ErrReader(boom), f, 0, nil)
		if err := r.Read(new(flowpb.FlowMessage)); !errors.Is(err, boom) {
			t.Errorf("%v: got %v, want the reader's error", f, err)
		}
	}
}

// A message read from a bin stream points into the reader's buffer; a
// later ParseJSON into the same message must not write over the frames
// still to be read.
func TestMessageReaderAliasesAreCapped(t *testing.T) {
	a := &flowpb.FlowMessage{SrcAddr: addrBytes("10.0.0.1"), MplsIp: [][]byte{addrBytes("10.0.0.2")}}
	b := goflowNetFlowV9Sample()
	in := streamOf(t, framing.FormatBin, a, b)
	r := framing.NewMessageReader(bytes.NewReader(in), framing.FormatBin, 0, nil)
	var m flowpb.FlowMessage
	if err := r.Read(&m); err != nil {
		t.Fatal(err)
	}
	if err := framing.ParseJSON([]byte(`{"src_addr":"2001:db8::1","mpls_ip":["2001:db8::2"]}`), &m, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Read(&m); err != nil {
		t.Fatal(err)
	}
	requireEqual(t, &m, b)
}

func TestMessageWriterNoAllocs(t *testing.T) {
	m := goflowNetFlowV9Sample()
	for _, f := range []framing.Format{framing.FormatBin, framing.FormatJSON} {
		w := framing.NewMessageWriter(io.Discard, f, nil)
		if n := testing.AllocsPerRun(1000, func() {
			if err := w.Write(m); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: %v allocs per Write, want 0", f, n)
		}
		if w.Buffered() == 0 {
			t.Errorf("%v: nothing buffered before Flush", f)
		}
	}
}

func TestMessageReaderNoAllocs(t *testing.T) {
	m := goflowNetFlowV9Sample()
	withLabels := goflowNetFlowV9Sample()
	withLabels.SrcNetLabels = map[string]string{"site": "par1"} // vtprotobuf would make a map per record
	for _, tc := range []struct {
		f framing.Format
		m *flowpb.FlowMessage
	}{{framing.FormatBin, m}, {framing.FormatJSON, withLabels}} {
		in := bytes.Repeat(streamOf(t, tc.f, tc.m), 300)
		r := framing.NewMessageReader(bytes.NewReader(in), tc.f, 0, nil)
		var got flowpb.FlowMessage
		_ = r.Read(&got) // grows got
		if n := testing.AllocsPerRun(100, func() {
			if err := r.Read(&got); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%v: %v allocs per Read, want 0", tc.f, n)
		}
	}
}
