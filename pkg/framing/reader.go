// Package framing reads and writes flow streams: varint-length-delimited
// protobuf frames (byte-identical to Go's protodelim and goflow2's
// -format=bin) and JSON lines in goflow2's field names.
//
// Readers stop at the first bad frame: a length-prefixed stream that has
// lost sync cannot be trusted again, so the error names the byte offset and
// the caller exits instead of decoding garbage.
package framing

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxSize bounds a frame, as protodelim's default does.
const DefaultMaxSize = 4 << 20

// readBufferSize is large enough that almost every frame is returned
// straight from the bufio buffer without a copy.
const readBufferSize = 256 << 10

var (
	// ErrTruncated is returned when input ends inside a frame.
	ErrTruncated = errors.New("truncated frame")
	// ErrTooLarge is returned for a length prefix over the reader's maximum.
	ErrTooLarge = errors.New("frame too large")
	// ErrBadPrefix is returned for a length prefix that is not a varint.
	ErrBadPrefix = errors.New("bad length prefix")
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

// Reader returns the frames of a length-delimited stream one by one.
type Reader struct {
	br      *bufio.Reader
	maxSize int
	offset  int64
	large   []byte // holds frames that do not fit the bufio buffer
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

// Offset is the byte offset of the next frame.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next frame's message bytes. The slice is valid only
// until the next call. At a clean end of input it returns io.EOF; any other
// error is a *FrameError (or the underlying read error).
func (r *Reader) Next() ([]byte, error) {
	size, n, err := r.readPrefix()
	if err != nil {
		return nil, err
	}
	if size > uint64(r.maxSize) {
		return nil, &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, r.maxSize)}
	}
	r.br.Discard(n)
	msg, err := r.readBody(int(size))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: want %d bytes after the prefix", ErrTruncated, size)}
		}
		return nil, err
	}
	r.offset += int64(n) + int64(size)
	return msg, nil
}

// readPrefix decodes the varint without consuming it, so that an error
// leaves the offset at the frame's start. It peeks one byte more at a time:
// asking for more than the prefix would block a live pipe on its last frame.
func (r *Reader) readPrefix() (size uint64, n int, err error) {
	var shift uint
	for i := 0; i < binaryMaxVarintLen; i++ {
		b, err := r.br.Peek(i + 1)
		if len(b) <= i {
			switch {
			case i == 0 && (err == nil || errors.Is(err, io.EOF)):
				return 0, 0, io.EOF
			case errors.Is(err, io.EOF):
				return 0, 0, &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: input ends inside the length prefix", ErrTruncated)}
			default:
				return 0, 0, err
			}
		}
		c := b[i]
		if i == binaryMaxVarintLen-1 && c > 1 {
			break // would overflow 64 bits
		}
		size |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return size, i + 1, nil
		}
		shift += 7
	}
	return 0, 0, &FrameError{Offset: r.offset, Err: fmt.Errorf("%w: not a varint within %d bytes", ErrBadPrefix, binaryMaxVarintLen)}
}

const binaryMaxVarintLen = 10

func (r *Reader) readBody(size int) ([]byte, error) {
	if size <= r.br.Size() {
		b, err := r.br.Peek(size)
		if err != nil {
			return nil, err
		}
		r.br.Discard(size)
		return b, nil
	}
	if cap(r.large) < size {
		r.large = make([]byte, size)
	}
	r.large = r.large[:size]
	if _, err := io.ReadFull(r.br, r.large); err != nil {
		return nil, err
	}
	return r.large, nil
}
