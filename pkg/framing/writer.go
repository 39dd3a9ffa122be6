package framing

import (
	"bufio"
	"encoding/binary"
	"io"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

const writeBufferSize = 256 << 10

// Writer writes length-delimited frames through a buffer. Call Flush to
// push buffered frames out; nothing is written through on its own.
type Writer struct {
	bw *bufio.Writer
}

// NewWriter writes frames to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, writeBufferSize)}
}

// WriteFrame writes msg, already marshalled, with its length prefix.
func (w *Writer) WriteFrame(msg []byte) error {
	var p [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(p[:], uint64(len(msg)))
	if _, err := w.bw.Write(p[:n]); err != nil {
		return err
	}
	_, err := w.bw.Write(msg)
	return err
}

// WriteMessage marshals m straight into the output buffer: no allocation
// unless the message is larger than the buffer.
func (w *Writer) WriteMessage(m *flowpb.FlowMessage) error {
	size := m.SizeVT()
	need := uvarintLen(uint64(size)) + size
	if need > w.bw.Size() {
		b, err := m.MarshalVT()
		if err != nil {
			return err
		}
		return w.WriteFrame(b)
	}
	if w.bw.Available() < need {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	buf := w.bw.AvailableBuffer()[:need]
	n := binary.PutUvarint(buf, uint64(size))
	if _, err := m.MarshalToSizedBufferVT(buf[n:]); err != nil {
		return err
	}
	_, err := w.bw.Write(buf)
	return err
}

// Buffered is the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Flush writes buffered frames to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
