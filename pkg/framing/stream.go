package framing

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// ErrBadMessage is returned for a frame whose bytes are not a FlowMessage.
var ErrBadMessage = wire.ErrBadMessage

// Format is the encoding of a flow stream.
type Format int

const (
	// FormatAuto detects bin or JSON from the first bytes of a stream.
	FormatAuto Format = iota
	// FormatBin is varint-length-delimited protobuf frames.
	FormatBin
	// FormatJSON is one JSON object per line, in goflow2's layout.
	FormatJSON
)

// ParseFormat reads "auto", "bin" or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "auto":
		return FormatAuto, nil
	case "bin":
		return FormatBin, nil
	case "json":
		return FormatJSON, nil
	}
	return 0, fmt.Errorf("framing: unknown format %q (want auto, bin or json)", s)
}

func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatBin:
		return "bin"
	case FormatJSON:
		return "json"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// MessageReader reads the records of a bin or JSON stream. It stops at the
// first bad record: every later call returns the same error.
type MessageReader struct {
	br      *bufio.Reader
	format  Format
	maxSize int
	opts    *JSONOptions

	frames *Reader // bin
	offset int64   // JSON: offset of the next line
	line   int     // JSON: number of the last line read
	long   []byte  // JSON: lines longer than the bufio buffer
	eof    bool    // JSON: the input has ended

	raw   []byte
	extra []byte // JSON: the members of the last line that are no field
	err   error
}

// NewMessageReader reads records in format f from r (FormatAuto: detected
// at the first Read). maxSize bounds a frame or a JSON line (<= 0 means
// DefaultMaxSize); opts says how JSON custom fields are read.
//
// Detection skips ASCII whitespace; if the first other byte is '{' and the
// next non-space one is '"' or '}', the stream is JSON, else bin. Input of
// whitespace only is JSON (blank lines), so it ends cleanly. A bin stream
// is mistaken for JSON only if its first bytes are whitespace, '{', then
// '"' or '}', as in a 123-byte frame (prefix 0x7b) opening with
// sequence_num 34 (20 22): the first record must then have neither type
// nor sampling_rate, which encoders write first and collectors always set.
func NewMessageReader(r io.Reader, f Format, maxSize int, opts *JSONOptions) *MessageReader {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < readBufferSize {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	return &MessageReader{br: br, format: f, maxSize: maxSize, opts: opts}
}

// Format is the stream's format: FormatAuto until detection at the first
// Read.
func (r *MessageReader) Format() Format { return r.format }

// Offset is the byte offset of the next record.
func (r *MessageReader) Offset() int64 {
	if r.frames != nil {
		return r.frames.Offset()
	}
	return r.offset
}

// Separator is what the bin stream puts after each frame (Reader.Separator):
// SepUnknown for JSON and until the second frame.
func (r *MessageReader) Separator() Separator {
	if r.frames == nil {
		return SepUnknown
	}
	return r.frames.Separator()
}

// Raw is the record last read: a frame's body without its prefix, or a
// JSON line without its line ending. It is valid until the next Read.
func (r *MessageReader) Raw() []byte { return r.raw }

// Extra is what the JSON line last read holds besides the flow fields (and
// the custom fields of the reader's options): its other members, each byte
// for byte as in the line, separated by commas. A JSON writer's WriteExtra
// puts them back, so that keys no stage knows (another producer's, a
// custom field of a mapping the stage was not given) pass through. Empty
// for bin; valid until the next Read.
func (r *MessageReader) Extra() []byte { return r.extra }

// Read resets m and fills it with the next record. It returns io.EOF at a
// clean end of input, a *FrameError for a bad frame or line (for JSON,
// Offset is the line's start and the error names the line number), or the
// reader's error.
//
// No copy is made: a bin record's byte fields and strings, and a JSON
// record's strings, point into the reader's buffer until the next Read.
// Keep it longer with Clone (not CloneVT, which shares strings).
func (r *MessageReader) Read(m *flowpb.FlowMessage) error {
	if r.err != nil {
		return r.err
	}
	r.raw, r.extra = nil, r.extra[:0]
	if _, err := r.Detect(); err != nil {
		return err
	}
	var err error
	if r.format == FormatJSON {
		err = r.readJSON(m)
	} else {
		err = r.readBin(m)
	}
	if err != nil {
		r.err = err
	}
	return err
}

// Detect finds the stream's format without consuming a record (a no-op
// once known). It blocks until the first bytes arrive.
func (r *MessageReader) Detect() (Format, error) {
	if r.err != nil {
		return r.format, r.err
	}
	if r.format == FormatAuto {
		f, err := detect(r.br)
		if err != nil {
			r.err = err
			return FormatAuto, err
		}
		r.format = f
	}
	return r.format, nil
}

// ErrNotBin is returned by ReadFrame on a JSON stream.
var ErrNotBin = errors.New("framing: stream is not bin")

// ReadFrame returns the next bin frame's body undecoded, and the byte offset
// where the frame starts, for stages that work on the encoded record. The
// body is valid until the next call. On a JSON stream it returns ErrNotBin.
func (r *MessageReader) ReadFrame() (frame []byte, offset int64, err error) {
	f, err := r.Detect()
	if err != nil {
		return nil, 0, err
	}
	if f != FormatBin {
		return nil, 0, ErrNotBin
	}
	if r.frames == nil {
		r.frames = NewReader(r.br, r.maxSize)
	}
	offset = r.frames.Offset()
	frame, err = r.frames.Next()
	if err != nil {
		r.err = err
		return nil, offset, err
	}
	r.raw = frame
	return frame, offset, nil
}

func (r *MessageReader) readBin(m *flowpb.FlowMessage) error {
	if r.frames == nil {
		r.frames = NewReader(r.br, r.maxSize)
	}
	start := r.frames.Offset()
	frame, err := r.frames.Next()
	if err != nil {
		return err
	}
	m.ResetVT()
	if err := m.UnmarshalVTUnsafe(frame); err != nil {
		return &FrameError{Offset: start, Err: fmt.Errorf("%w: %v", ErrBadMessage, err)}
	}
	capAliases(m)
	r.raw = frame
	return nil
}

func (r *MessageReader) readJSON(m *flowpb.FlowMessage) error {
	line, start, err := r.nextLine()
	if err != nil {
		return err
	}
	r.extra = r.extra[:0]
	if err := parseJSON(line, m, r.opts, true, &r.extra); err != nil {
		if e, ok := err.(*JSONError); ok {
			e.Line = r.line
		}
		return &FrameError{Offset: start, Err: err}
	}
	r.raw = line
	return nil
}

// nextLine returns the next non-blank line without its line ending, and
// the offset of its start.
func (r *MessageReader) nextLine() ([]byte, int64, error) {
	for {
		if r.eof {
			return nil, 0, io.EOF
		}
		start := r.offset
		b, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			b, err = r.readLong(b, start)
		}
		switch {
		case err == io.EOF:
			r.eof = true
		case err != nil:
			return nil, 0, err
		}
		r.offset += int64(len(b))
		if len(b) == 0 {
			continue
		}
		r.line++
		line := trimEOL(b)
		if len(line) > r.maxSize {
			return nil, 0, &FrameError{Offset: start, Err: fmt.Errorf("%w: line %d is longer than %d bytes", ErrTooLarge, r.line, r.maxSize)}
		}
		if !blank(line) {
			return line, start, nil
		}
	}
}

// readLong gathers a line longer than the bufio buffer, giving up as soon
// as it exceeds maxSize so that a stream with no newline cannot exhaust
// memory.
func (r *MessageReader) readLong(first []byte, start int64) ([]byte, error) {
	r.long = append(r.long[:0], first...)
	for {
		if len(r.long) > r.maxSize+2 { // room for "\r\n"
			return nil, &FrameError{Offset: start, Err: fmt.Errorf("%w: line %d is longer than %d bytes", ErrTooLarge, r.line+1, r.maxSize)}
		}
		b, err := r.br.ReadSlice('\n')
		r.long = append(r.long, b...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return r.long, err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func blank(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// detect peeks at the start of the stream without consuming it. It peeks
// one byte more at a time: asking for more could block a live pipe.
func detect(br *bufio.Reader) (Format, error) {
	i := 0
	next := func() (byte, error) { // the next non-space byte
		for ; i < br.Size(); i++ {
			b, err := br.Peek(i + 1)
			if len(b) <= i {
				return 0, err
			}
			if !isSpace(b[i]) {
				i++
				return b[i-1], nil
			}
		}
		return ' ', nil // a buffer full of whitespace: call it blank lines
	}
	c, err := next()
	switch {
	case err == io.EOF && i == 0:
		return FormatAuto, io.EOF
	case err == io.EOF || c == ' ':
		return FormatJSON, nil
	case err != nil:
		return FormatAuto, err
	case c != '{':
		return FormatBin, nil
	}
	c, err = next()
	switch {
	case err == io.EOF || c == '"' || c == '}' || c == ' ':
		return FormatJSON, nil
	case err != nil:
		return FormatAuto, err
	}
	return FormatBin, nil
}

// MessageWriter writes records in one format. Write buffers; Flush pushes
// the buffered records to the underlying writer.
type MessageWriter interface {
	Write(m *flowpb.FlowMessage) error
	// WriteExtra writes m followed, in JSON, by extra: the members of the
	// JSON line m was read from that are no field (MessageReader.Extra),
	// as they were. A bin record has no place for them: they are dropped
	// (a custom field survives as a protobuf field when the reader's
	// options map it).
	WriteExtra(m *flowpb.FlowMessage, extra []byte) error
	Flush() error
	Buffered() int
}

// NewMessageWriter writes records to w as JSON lines for FormatJSON, as
// bin frames otherwise (FormatAuto included, the tools' default).
func NewMessageWriter(w io.Writer, f Format, opts *JSONOptions) MessageWriter {
	if f == FormatJSON {
		return &jsonWriter{bw: bufio.NewWriterSize(w, writeBufferSize), opts: opts}
	}
	return binWriter{NewWriter(w)}
}

type binWriter struct{ *Writer }

func (w binWriter) Write(m *flowpb.FlowMessage) error { return w.WriteMessage(m) }

func (w binWriter) WriteExtra(m *flowpb.FlowMessage, _ []byte) error { return w.WriteMessage(m) }

type jsonWriter struct {
	bw   *bufio.Writer
	opts *JSONOptions
}

// jsonReserve is the room kept free for the next line, so that AppendJSON
// works in the buffer itself and does not allocate.
const jsonReserve = 16 << 10

func (w *jsonWriter) Write(m *flowpb.FlowMessage) error { return w.WriteExtra(m, nil) }

func (w *jsonWriter) WriteExtra(m *flowpb.FlowMessage, extra []byte) error {
	if w.bw.Available() < jsonReserve+len(extra) {
		if err := w.bw.Flush(); err != nil {
			return err
		}
	}
	line := append(appendJSON(w.bw.AvailableBuffer(), m, w.opts, extra), '\n')
	_, err := w.bw.Write(line)
	return err
}

func (w *jsonWriter) Flush() error  { return w.bw.Flush() }
func (w *jsonWriter) Buffered() int { return w.bw.Buffered() }
