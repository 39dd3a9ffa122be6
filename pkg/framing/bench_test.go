package framing_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// typicalFlow is a collector's record: 30 fields set, as a NetFlow v9 or
// IPFIX exporter fills them.
func typicalFlow() *flowpb.FlowMessage {
	m := goflowNetFlowV9Sample() // 29 fields
	m.TcpFlags = 0x1b
	return m
}

func reportRecords(b *testing.B, records int) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkAppendJSON(b *testing.B) {
	m := typicalFlow()
	buf := framing.AppendJSON(nil, m, nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		buf = framing.AppendJSON(buf[:0], m, nil)
		n++
	}
	reportRecords(b, n)
}

func BenchmarkParseJSON(b *testing.B) {
	line := framing.AppendJSON(nil, typicalFlow(), nil)
	var m flowpb.FlowMessage
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := framing.ParseJSON(line, &m, nil); err != nil {
			b.Fatal(err)
		}
		n++
	}
	reportRecords(b, n)
}

// cyclicReader serves data again and again, so that a reader can be
// benchmarked on its own.
type cyclicReader struct {
	data []byte
	pos  int
}

func (c *cyclicReader) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.pos:])
	c.pos = (c.pos + n) % len(c.data)
	return n, nil
}

// BenchmarkFrameReadWrite writes the typical record with
// Writer.WriteMessage into a buffer and reads it back, in batches that fit
// the buffers (one op is one record written and read); the Write and Read
// cases time each half alone.
func BenchmarkFrameReadWrite(b *testing.B) {
	const batch = 1024
	m := typicalFlow()
	frames := bytes.Repeat(streamOf(b, framing.FormatBin, m), batch)
	frameSize := int64(len(frames) / batch)

	b.Run("Write", func(b *testing.B) {
		w := framing.NewWriter(io.Discard)
		b.SetBytes(frameSize)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := w.WriteMessage(m); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRecords(b, n)
	})
	b.Run("Read", func(b *testing.B) {
		r := framing.NewReader(&cyclicReader{data: frames}, 0)
		b.SetBytes(frameSize)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if _, err := r.Next(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRecords(b, n)
	})
	b.Run("Write+Read", func(b *testing.B) {
		var buf bytes.Buffer
		w, r := framing.NewWriter(&buf), framing.NewReader(&buf, 0)
		b.SetBytes(frameSize)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := w.WriteMessage(m); err != nil {
				b.Fatal(err)
			}
			if n++; n%batch == 0 {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				for range batch {
					if _, err := r.Next(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		reportRecords(b, n)
	})
	// The framing layer alone: an already-marshalled record framed and read
	// back, as a relay stage (flowpublish, tee) handles it.
	b.Run("WriteFrame+Next", func(b *testing.B) {
		body, err := m.MarshalVT()
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		w, r := framing.NewWriter(&buf), framing.NewReader(&buf, 0)
		b.SetBytes(frameSize)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := w.WriteFrame(body); err != nil {
				b.Fatal(err)
			}
			if n++; n%batch == 0 {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				for range batch {
					if _, err := r.Next(); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		reportRecords(b, n)
	})
	b.Run("MessageReader.Read", func(b *testing.B) {
		r := framing.NewMessageReader(&cyclicReader{data: frames}, framing.FormatBin, 0, nil)
		var got flowpb.FlowMessage
		b.SetBytes(frameSize)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := r.Read(&got); err != nil {
				b.Fatal(err)
			}
			n++
		}
		reportRecords(b, n)
	})
	b.Run("Write+MessageReader.Read", func(b *testing.B) {
		var buf bytes.Buffer
		w := framing.NewMessageWriter(&buf, framing.FormatBin, nil)
		r := framing.NewMessageReader(&buf, framing.FormatBin, 0, nil)
		var got flowpb.FlowMessage
		b.SetBytes(frameSize)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := w.Write(m); err != nil {
				b.Fatal(err)
			}
			if n++; n%batch == 0 {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				for range batch {
					if err := r.Read(&got); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		reportRecords(b, n)
	})
	b.Run("JSON/Write+Read", func(b *testing.B) {
		const batch = 128 // lines of about 1 KiB
		var buf bytes.Buffer
		w := framing.NewMessageWriter(&buf, framing.FormatJSON, nil)
		r := framing.NewMessageReader(&buf, framing.FormatJSON, 0, nil)
		var got flowpb.FlowMessage
		b.SetBytes(int64(len(framing.AppendJSONLine(nil, m, nil))))
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			if err := w.Write(m); err != nil {
				b.Fatal(err)
			}
			if n++; n%batch == 0 {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				for range batch {
					if err := r.Read(&got); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		reportRecords(b, n)
	})
}
