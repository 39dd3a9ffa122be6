package framing_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

func addJSONSeeds(f *testing.F) {
	for _, l := range goldenLines(f) {
		f.Add([]byte(l))
	}
	enriched := goflowNetFlowV9Sample()
	enriched.SrcNetLabels = map[string]string{"site": "par1", "q\"": "\t\x01"}
	enriched.SrcAsName, enriched.FlowDirection, enriched.BiflowReverse = "Ex\u00e9mple", 2, true
	f.Add(framing.AppendJSON(nil, enriched, nil))
	f.Add(framing.AppendJSON(nil, withUnknown(&flowpb.FlowMessage{}), customOpts()))
	f.Add([]byte(`{"src_c\u006funtry":"\ud83d\ude00 \ud800x","x":{"a":[1,-2.5e+3,{"b":"\"}"}],"c":null},"time_received_ns":"2025-03-15T17:10:51.064235982Z"}`))
	for _, l := range []string{
		`{}`, `{"bytes":1,}`, `{"type":3}`, `{"type":"NETFLOW_V5"}`, `{"etype":"IPv6","proto":"17"}`,
		`{"bytes":"18446744073709551615"}`, `{"src_addr":"192.0.2.1","dst_addr":"::ffff:192.0.2.1"}`,
		`{"src_mac":"AA-BB-CC-DD-EE-0F","dst_mac":1}`, `{"src_net":24,"dst_net":"10.0.0.0/8"}`,
		`{"as_path":[1,2],"mpls_ip":["10.0.0.1",""],"layer_stack":["MPLS"]}`,
		`{"src_net_labels":{"a":"1"},"dst_net_labels":{}}`, `{"flow_direction":"ingress","biflow_reverse":true}`,
		`{"app_id":"0d00beef","app_name":"web","post_nat_src_ipv4_address":"192.0.2.9","post_napt_src_transport_port":1}`,
		`{"src_as_name":"\u00e9\n","time_flow_end_ns":"1970-01-01T02:00:01+01:00"}`,
		`{"x":[{"y":[true,false,null,-0.5E-3]}]}`,
	} {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"src_net":"invalid Prefix","proto":"unassigned","type":"9","layer_stack":["IPv4",6,"99"]}`))
}

// FuzzParseJSON checks: ParseJSON never panics; it accepts only valid JSON,
// and rejects the rest with a *JSONError whose column is in the line; what
// it accepts, AppendJSON writes as valid JSON that reads back equal but for
// the losses AppendJSON documents; after that round trip, the message and
// its line are a fixed point.
func FuzzParseJSON(f *testing.F) {
	addJSONSeeds(f)
	opts := customOpts()
	f.Fuzz(func(t *testing.T, line []byte) {
		var m1 flowpb.FlowMessage
		if err := framing.ParseJSON(line, &m1, opts); err != nil {
			var je *framing.JSONError
			if !errors.As(err, &je) || je.Column < 1 || je.Column > len(line)+1 {
				t.Fatalf("error %v for %d bytes", err, len(line))
			}
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		l2 := framing.AppendJSON(nil, &m1, opts)
		if !json.Valid(l2) {
			t.Fatalf("wrote invalid JSON %s", l2)
		}
		var m2, m3 flowpb.FlowMessage
		if err := framing.ParseJSON(l2, &m2, opts); err != nil {
			t.Fatalf("cannot read back %s: %v", l2, err)
		}
		if want, got := renderable(&m1), renderable(&m2); !got.EqualVT(want) {
			t.Fatalf("round trip of %s\n got %v\nwant %v", l2, got, want)
		}
		l3 := framing.AppendJSON(nil, &m2, opts)
		if err := framing.ParseJSON(l3, &m3, opts); err != nil || !m3.EqualVT(&m2) {
			t.Fatalf("second round trip differs: %v\n%v\n%v", err, &m2, &m3)
		}
		if l4 := framing.AppendJSON(nil, &m3, opts); !bytes.Equal(l3, l4) {
			t.Fatalf("no fixed point:\n%s\n%s", l3, l4)
		}
	})
}

// renderable applies to a message the losses documented on AppendJSON,
// leaving out the unknown fields (custom fields come back in the order of
// the options, a repeated one once).
func renderable(m *flowpb.FlowMessage) *flowpb.FlowMessage {
	m = m.CloneVT()
	m.ProtoReflect().SetUnknown(nil)
	if m.Etype != 0x800 && m.Etype != 0x86dd && m.Etype != 0x806 {
		m.Etype = 0
	}
	switch {
	case m.Proto >= 146 && m.Proto <= 252:
		m.Proto = 146
	case m.Proto >= 253 && m.Proto <= 254:
		m.Proto = 253
	case m.Proto > 255:
		m.Proto = 256
	}
	m.SrcMac &= 1<<48 - 1
	m.DstMac &= 1<<48 - 1
	prefixable := func(addr []byte, bits uint32) uint32 {
		if (len(addr) == 4 && bits <= 32) || (len(addr) == 16 && bits <= 128) {
			return bits
		}
		return 0 // "invalid Prefix"
	}
	m.SrcNet = prefixable(m.SrcAddr, m.SrcNet)
	m.DstNet = prefixable(m.DstAddr, m.DstNet)
	return m
}

// FuzzMessageReader checks, on arbitrary bytes in auto mode and with reads
// of any size: Read never panics; offsets never go back nor past the input;
// each record's Raw bytes are inside the input it consumed, and end there
// for bin; the members of a JSON line passed on (Extra) come from it and
// keep the line written with them valid JSON; errors are io.EOF or a
// *FrameError within the input.
func FuzzMessageReader(f *testing.F) {
	addJSONSeeds(f)
	bin := streamOf(f, framing.FormatBin, goflowSFlowSample(), goflowNetFlowV9Sample(), withUnknown(&flowpb.FlowMessage{}))
	f.Add(bin)
	f.Add(append(bin[:len(bin):len(bin)], 50, 8, 1))
	f.Add(append(bin[:len(bin):len(bin)], bytes.Repeat([]byte{0xff}, 11)...))
	f.Add(streamOf(f, framing.FormatJSON, goflowSFlowSample(), goflowNetFlowV9Sample()))
	f.Add([]byte("\n\r\n {}\r\n{\"bytes\":1}\n\n[1]\n"))
	f.Add([]byte("{ \x20\"\x08"))
	f.Add([]byte{})
	f.Add([]byte(" \t"))
	f.Fuzz(func(t *testing.T, in []byte) {
		maxSize := 1 << 10
		var src io.Reader = bytes.NewReader(in)
		if len(in) > 0 && in[len(in)-1]&1 == 1 {
			src = iotest.OneByteReader(src)
			maxSize = 40
		}
		r := framing.NewMessageReader(src, framing.FormatAuto, maxSize, customOpts())
		var m flowpb.FlowMessage
		var out []byte
		for n := 0; ; n++ {
			start := r.Offset()
			err := r.Read(&m)
			end := r.Offset()
			if end < start || end > int64(len(in)) {
				t.Fatalf("offset went from %d to %d in %d bytes", start, end, len(in))
			}
			if err != nil {
				var fe *framing.FrameError
				switch {
				case err == io.EOF:
				case errors.As(err, &fe):
					if fe.Offset < start || fe.Offset > int64(len(in)) {
						t.Fatalf("error at %d, reader at %d, input %d bytes: %v", fe.Offset, start, len(in), err)
					}
				default:
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			raw := r.Raw()
			if end == start || n > len(in) || len(raw) > maxSize || !bytes.Contains(in[start:end], raw) {
				t.Fatalf("record %d: raw %q not within input[%d:%d]", n, raw, start, end)
			}
			if r.Format() == framing.FormatBin && !bytes.HasSuffix(in[:end], raw) {
				t.Fatalf("record %d: frame %q does not end at %d", n, raw, end)
			}
			out = framing.AppendJSON(out[:0], &m, customOpts())
			_ = m.SizeVT()
			if extra := r.Extra(); len(extra) > 0 {
				// The members passed on keep the line valid JSON.
				var line bytes.Buffer
				w := framing.NewMessageWriter(&line, framing.FormatJSON, customOpts())
				if r.Format() != framing.FormatJSON || len(extra) > len(raw) || w.WriteExtra(&m, extra) != nil || w.Flush() != nil || !json.Valid(line.Bytes()) {
					t.Fatalf("record %d: extra %q of %q gives %q", n, extra, raw, line.Bytes())
				}
			}
		}
	})
}

// FuzzReader checks the bin framing reader: on arbitrary input it never
// panics, consumes at most the input, returns frames that are the input's
// bytes and within maxSize, and stops with io.EOF or a *FrameError at the
// bad frame's offset; and frames cut from the input, written with Writer,
// read back equal, with the prefix of encoding/binary's Uvarint.
func FuzzReader(f *testing.F) {
	f.Add([]byte{}, uint16(100))
	f.Add([]byte{3, 1, 2, 3, 0, 1, 9}, uint16(2))
	f.Add(bytes.Repeat([]byte{0xff}, 11), uint16(100))
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, uint16(100))
	f.Add(append([]byte{0xac, 0x02}, strings.Repeat("x", 300)...), uint16(1000))
	f.Fuzz(func(t *testing.T, data []byte, max uint16) {
		maxSize := int(max) + 1
		r := framing.NewReader(bytes.NewReader(data), maxSize)
		for last := int64(0); ; {
			frame, err := r.Next()
			off := r.Offset()
			if off < last || off > int64(len(data)) {
				t.Fatalf("offset went from %d to %d in %d bytes", last, off, len(data))
			}
			if err != nil {
				var fe *framing.FrameError
				if err != io.EOF && (!errors.As(err, &fe) || fe.Offset != last) {
					t.Fatalf("error %v, last frame ended at %d", err, last)
				}
				break
			}
			if off == last || len(frame) > maxSize || !bytes.HasSuffix(data[:off], frame) {
				t.Fatalf("frame %q is not input[..%d]", frame, off)
			}
			last = off
		}

		var frames [][]byte
		for rest := data; len(rest) > 0; {
			n := min(int(rest[0])*int(rest[0])/8, len(rest)-1) // up to 8 KiB: 1- and 2-byte prefixes
			frames, rest = append(frames, rest[1:1+n]), rest[1+n:]
		}
		var buf bytes.Buffer
		w := framing.NewWriter(&buf)
		var want []byte
		for _, fr := range frames {
			if err := w.WriteFrame(fr); err != nil {
				t.Fatal(err)
			}
			want = append(binary.AppendUvarint(want, uint64(len(fr))), fr...)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("wrote %x, want %x", buf.Bytes(), want)
		}
		r = framing.NewReader(iotest.HalfReader(&buf), 0)
		for i, fr := range frames {
			got, err := r.Next()
			if err != nil || !bytes.Equal(got, fr) {
				t.Fatalf("frame %d: got %q, %v, want %q", i, got, err, fr)
			}
		}
		if _, err := r.Next(); err != io.EOF || r.Offset() != int64(len(want)) {
			t.Fatalf("after the frames: %v at offset %d of %d", err, r.Offset(), len(want))
		}
	})
}
