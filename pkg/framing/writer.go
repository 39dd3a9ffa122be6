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
	if w.bw.Available() < binary.MaxVarintLen64 {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	// The prefix goes straight into the buffer: a local array passed to
	// Write would escape and cost an allocation per frame.
	if _, err := w.bw.Write(binary.AppendUvarint(w.bw.AvailableBuffer(), uint64(len(msg)))); err != nil {
		return err
	}
	_, err := w.bw.Write(msg)
	return err
}

// WriteMessage marshals m straight into the output buffer in one forward
// pass: no allocation unless a single message outgrows the buffer's slack.
func (w *Writer) WriteMessage(m *flowpb.FlowMessage) error {
	if w.bw.Available() < messageSlack {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	_, err := w.bw.Write(m.AppendDelimited(w.bw.AvailableBuffer()))
	return err
}

// messageSlack is the room kept free for one message: flow records are a
// few hundred bytes; a larger one still works, through a temporary buffer.
const messageSlack = 8 << 10

// Buffered is the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// Flush writes buffered frames to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }
