// Package framing reads and writes flow streams: varint-length-delimited
// protobuf frames (byte-identical to Go's protodelim and goflow2's
// -format=bin) and JSON lines in goflow2's field names.
//
// Readers stop at the first bad frame: a length-prefixed stream that has
// lost sync cannot be trusted again, so the error names the byte offset and
// the caller exits instead of decoding garbage.
//
// The JSON layout (AppendJSON, ParseJSON) is generated from flow.proto
// (fields.pb.go, by make proto): goflow2's fields with goflow2's
// renderings, every other field by its kind, so a field added to
// flow.proto is written and read with no change here. Keys of a JSON line
// that are no field pass from a MessageReader (Extra) to a JSON
// MessageWriter (WriteExtra) byte for byte. The bytes themselves are read
// and written by pkg/wire.
package framing

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/flowpipe/flowpipe/pkg/wire"
)

// DefaultMaxSize bounds a frame, as protodelim's default does.
const DefaultMaxSize = 4 << 20

// readBufferSize is large enough that almost every frame is returned
// straight from the bufio buffer without a copy.
const readBufferSize = 256 << 10

// The errors a FrameError wraps. The frame errors are the wire package's,
// so errors.Is works with either name.
var (
	// ErrTruncated is returned when input ends inside a frame.
	ErrTruncated = wire.ErrTruncated
	// ErrTooLarge is returned for a length prefix over the reader's maximum.
	ErrTooLarge = wire.ErrTooLarge
	// ErrBadPrefix is returned for a length prefix that is not a varint.
	ErrBadPrefix = wire.ErrBadPrefix
	// ErrBadJSON is returned for a JSON line that is not a flow object.
	ErrBadJSON = errors.New("invalid JSON")
)

// FrameError says where in the stream a frame went wrong.
type FrameError struct {
	Offset int64 // byte offset of the start of the bad frame
	Err    error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("framing: bad frame at byte offset %d: %v", e.Offset, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

// Separator is what a bin stream puts after each frame.
type Separator uint8

const (
	// SepUnknown: not decided yet (before the second frame).
	SepUnknown Separator = iota
	// SepNone: frames follow each other (protodelim, goflow2
	// -transport.file.sep=, flowpipe).
	SepNone
	// SepNewline: each frame is followed by a newline byte, as goflow2
	// writes bin with its default -transport.file.sep="\n".
	SepNewline
)

func (s Separator) String() string {
	switch s {
	case SepNone:
		return "none"
	case SepNewline:
		return "newline"
	}
	return "unknown"
}

// Reader returns the frames of a length-delimited stream one by one.
type Reader struct {
	br      *bufio.Reader
	maxSize int
	offset  int64
	large   []byte // holds frames that do not fit the bufio buffer
	sep     Separator
	frames  int64 // read so far, counted while sep is not SepNone
}

// NewReader reads frames from r. maxSize <= 0 means DefaultMaxSize.
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < readBufferSize {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	return &Reader{br: br, maxSize: maxSize}
}

// Offset is the byte offset of the next frame (of its separator, in a
// newline-separated stream).
func (r *Reader) Offset() int64 { return r.offset }

// Separator is what the stream puts after each frame, decided when the
// second frame is read: a newline after the first frame, which can also
// be the length prefix of a 10-byte frame, means goflow2's separator when
// the frame after it is whole, well-formed protobuf and followed by a
// newline (or the end) too. From then on every frame must be followed by
// one; the last one's may be missing.
func (r *Reader) Separator() Separator { return r.sep }

// ErrNoSeparator is a frame of a newline-separated stream not followed by
// a newline.
var ErrNoSeparator = errors.New("frame not followed by the stream's newline separator")

// separator consumes the separator before the next frame. It returns
// io.EOF at a clean end of input.
func (r *Reader) separator() error {
	if r.frames == 0 || r.sep == SepNone {
		return nil
	}
	b, err := r.br.Peek(1)
	if len(b) == 0 {
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		return err
	}
	if r.sep == SepUnknown {
		r.sep = r.detectSeparator()
		if r.sep == SepNone {
			return nil
		}
		b, _ = r.br.Peek(1) // detection's peeks may have moved the buffer
	}
	if b[0] != '\n' {
		return &FrameError{Offset: r.offset, Err: ErrNoSeparator}
	}
	r.br.Discard(1)
	r.offset++
	if _, err := r.br.Peek(1); errors.Is(err, io.EOF) {
		return io.EOF // the last frame's separator
	}
	return nil
}

// detectSeparator decides the separator when the byte after the first
// frame has arrived (see Separator).
func (r *Reader) detectSeparator() Separator {
	b, _ := r.br.Peek(1)
	if b[0] != '\n' {
		return SepNone
	}
	// The frame the newline would separate from the first one: its prefix,
	// then the whole of it and one byte more.
	buf, _ := r.br.Peek(min(1+wire.MaxPrefixLen, r.br.Size()))
	size, n := binary.Uvarint(buf[1:])
	if n <= 0 || size > uint64(r.maxSize) || 1+n+int(size)+1 > r.br.Size() {
		if len(buf) == 1 { // nothing after the newline: the last frame's separator
			return SepNewline
		}
		return SepNone
	}
	want := 1 + n + int(size)
	buf, err := r.br.Peek(want + 1)
	switch {
	case len(buf) < want:
		return SepNone // cut short: read it as frames, which says why
	case len(buf) == want && !errors.Is(err, io.EOF):
		return SepNone
	case len(buf) > want && buf[want] != '\n':
		return SepNone
	}
	if !wire.WellFormed(buf[1+n : want]) {
		return SepNone
	}
	return SepNewline
}

// Next returns the next frame's message bytes. The slice is valid only
// until the next call. At a clean end of input it returns io.EOF; any other
// error is a *FrameError (or the underlying read error).
//
// It asks the input for no more than the frame needs: a live pipe is never
// waited on past its last whole frame.
func (r *Reader) Next() ([]byte, error) {
	if r.sep != SepNone {
		return r.nextSeparated()
	}
	return r.next()
}

// nextSeparated is Next while the separator is unknown or a newline.
func (r *Reader) nextSeparated() ([]byte, error) {
	start := r.offset
	if err := r.separator(); err != nil {
		return nil, err
	}
	body, err := r.next()
	if err == nil {
		r.frames++
		return body, nil
	}
	if fe, ok := err.(*FrameError); ok {
		fe.Offset = start // a bad frame's offset is its separator's
	}
	return body, err
}

func (r *Reader) next() ([]byte, error) {
	for {
		buf, _ := r.br.Peek(r.br.Buffered())
		body, end, need, err := wire.NextFrame(buf, 0, r.maxSize)
		switch {
		case err != nil:
			return nil, &FrameError{Offset: r.offset, Err: err}
		case end > 0:
			r.br.Discard(end)
			r.offset += int64(end)
			return body, nil
		case need > r.br.Size():
			return r.readLarge()
		}
		// One byte more than buffered: all the frame is sure to need.
		if more, err := r.br.Peek(len(buf) + 1); len(more) <= len(buf) {
			return nil, r.readError(buf, err)
		}
	}
}

// readError turns the error that cut the frame in buf short into Next's.
func (r *Reader) readError(buf []byte, err error) error {
	switch {
	case !errors.Is(err, io.EOF):
		return err
	case len(buf) == 0:
		return io.EOF
	}
	size, n := binary.Uvarint(buf)
	if n <= 0 {
		return &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: input ends inside the length prefix", ErrTruncated)}
	}
	return &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: want %d bytes after the prefix", ErrTruncated, size)}
}

// readLarge reads a frame longer than the bufio buffer (whose prefix is
// whole, and within maxSize) into r.large.
func (r *Reader) readLarge() ([]byte, error) {
	buf, _ := r.br.Peek(r.br.Buffered())
	size, n := binary.Uvarint(buf)
	if cap(r.large) < int(size) {
		r.large = make([]byte, size)
	}
	r.large = r.large[:size]
	r.br.Discard(n)
	if _, err := io.ReadFull(r.br, r.large); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: want %d bytes after the prefix", ErrTruncated, size)}
		}
		return nil, err
	}
	r.offset += int64(n) + int64(size)
	return r.large, nil
}
