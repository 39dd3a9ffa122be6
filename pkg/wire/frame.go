package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Errors of the frame layer. Callers wrap them with the stream offset of
// the frame (framing.FrameError); errors.Is finds them through the wrap.
var (
	// ErrTruncated is an input that ends inside a frame.
	ErrTruncated = errors.New("truncated frame")
	// ErrTooLarge is a length prefix over the reader's maximum.
	ErrTooLarge = errors.New("frame too large")
	// ErrBadPrefix is a length prefix that is not a varint.
	ErrBadPrefix = errors.New("bad length prefix")
	// ErrBadMessage is a frame whose bytes are not a protobuf message.
	ErrBadMessage = errors.New("invalid protobuf message")
)

// MaxPrefixLen is the longest length prefix: a 64-bit varint.
const MaxPrefixLen = binary.MaxVarintLen64

// NextFrame finds the frame that starts at data[n:]. For a whole frame it
// returns its body (capacity capped at its end) and the offset just past
// it. Otherwise end is 0 and either err says why the frame is bad (a
// prefix that is not a varint, ErrBadPrefix; a length over maxSize,
// ErrTooLarge) or need says how many bytes from n the frame needs: its
// exact size once the prefix is whole, MaxPrefixLen while the prefix is
// cut.
func NextFrame(data []byte, n, maxSize int) (body []byte, end, need int, err error) {
	size, plen := binary.Uvarint(data[n:])
	switch {
	case plen < 0 || plen == 0 && len(data)-n >= MaxPrefixLen:
		return nil, 0, 0, ErrBadPrefix
	case plen > 0 && size > uint64(maxSize):
		return nil, 0, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, maxSize)
	case plen == 0:
		return nil, 0, MaxPrefixLen, nil
	case uint64(len(data)-n-plen) < size:
		return nil, 0, plen + int(size), nil
	}
	end = n + plen + int(size)
	return data[n+plen : end : end], end, 0, nil
}

// ScanFrames walks the whole frames at the start of data: n bytes holding
// records frames whose bodies (checked by WellFormed) total bodies bytes.
// need is the size of the next, incomplete frame (a bound while its
// prefix is cut, as NextFrame says); err is set when that next frame is
// bad: a NextFrame error, or ErrBadMessage for a body that is not well
// formed. The frames before it are good.
func ScanFrames(data []byte, maxSize int) (n, records, bodies, need int, err error) {
	for {
		body, end, need, err := NextFrame(data, n, maxSize)
		if end == 0 {
			return n, records, bodies, need, err
		}
		// Bodies are checked two at a time (see WellFormed2), alone when
		// the next frame is not whole or one of the two is bad.
		if body2, end2, _, _ := NextFrame(data, end, maxSize); end2 > 0 && WellFormed2(body, body2) {
			n, records, bodies = end2, records+2, bodies+len(body)+len(body2)
			continue
		}
		if !WellFormed(body) {
			return n, records, bodies, 0, ErrBadMessage
		}
		n, records, bodies = end, records+1, bodies+len(body)
	}
}

// WellFormed walks the protobuf fields of b without storing them: each
// tag, varint, fixed-size value and length must fit. Groups (which
// FlowMessage has none of) and field number 0 are rejected. It accepts
// what protowire.ConsumeField does (FuzzWellFormed checks), several times
// faster than decoding: values are skipped, not decoded. Unlike
// AppendFields it rejects groups: a stage that passes flow records through
// unread need not accept what no flow record holds.
func WellFormed(b []byte) bool { return WellFormed2(b, nil) }

// WellFormed2 reports whether a and b are both well formed. Each field's
// offset depends on the one before, so a single walk waits on its own
// loads; two walks interleaved let the CPU overlap them, which checks two
// records in two thirds of the time. The field step is therefore written
// out three times (a and b together, then the rest of one alone): keep
// the copies identical.
func WellFormed2(a, b []byte) bool {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		// a's next field: its tag, then its value.
		{
			var tag uint64
			if t := a[i]; t < 0x80 { // fields 1-15
				tag, i = uint64(t), i+1
			} else if i+1 < len(a) && a[i+1] < 0x80 { // fields 16-2047
				tag, i = uint64(t&0x7f)|uint64(a[i+1])<<7, i+2
			} else {
				v, n := binary.Uvarint(a[i:])
				if n <= 0 {
					return false
				}
				tag, i = v, i+n
			}
			if tag>>3 == 0 || tag>>3 > maxFieldNumber {
				return false
			}
			switch tag & 7 {
			case 0: // varint
				n := varintLen(a[i:])
				if n == 0 {
					return false
				}
				i += n
			case 1: // fixed64
				i += 8
			case 5: // fixed32
				i += 4
			case 2: // length-delimited
				var size uint64
				if i < len(a) && a[i] < 0x80 {
					size, i = uint64(a[i]), i+1
				} else {
					v, n := binary.Uvarint(a[i:])
					if n <= 0 {
						return false
					}
					size, i = v, i+n
				}
				if size > uint64(len(a)-i) {
					return false
				}
				i += int(size)
			default: // groups (FlowMessage has none) and invalid types
				return false
			}
		}
		// b's next field: its tag, then its value.
		{
			var tag uint64
			if t := b[j]; t < 0x80 { // fields 1-15
				tag, j = uint64(t), j+1
			} else if j+1 < len(b) && b[j+1] < 0x80 { // fields 16-2047
				tag, j = uint64(t&0x7f)|uint64(b[j+1])<<7, j+2
			} else {
				v, n := binary.Uvarint(b[j:])
				if n <= 0 {
					return false
				}
				tag, j = v, j+n
			}
			if tag>>3 == 0 || tag>>3 > maxFieldNumber {
				return false
			}
			switch tag & 7 {
			case 0: // varint
				n := varintLen(b[j:])
				if n == 0 {
					return false
				}
				j += n
			case 1: // fixed64
				j += 8
			case 5: // fixed32
				j += 4
			case 2: // length-delimited
				var size uint64
				if j < len(b) && b[j] < 0x80 {
					size, j = uint64(b[j]), j+1
				} else {
					v, n := binary.Uvarint(b[j:])
					if n <= 0 {
						return false
					}
					size, j = v, j+n
				}
				if size > uint64(len(b)-j) {
					return false
				}
				j += int(size)
			default: // groups (FlowMessage has none) and invalid types
				return false
			}
		}
	}
	if i > len(a) || j > len(b) {
		return false
	}
	c, k := a, i // the one not finished yet, if any
	if i == len(a) {
		c, k = b, j
	}
	for k < len(c) {
		// c's next field: its tag, then its value.
		{
			var tag uint64
			if t := c[k]; t < 0x80 { // fields 1-15
				tag, k = uint64(t), k+1
			} else if k+1 < len(c) && c[k+1] < 0x80 { // fields 16-2047
				tag, k = uint64(t&0x7f)|uint64(c[k+1])<<7, k+2
			} else {
				v, n := binary.Uvarint(c[k:])
				if n <= 0 {
					return false
				}
				tag, k = v, k+n
			}
			if tag>>3 == 0 || tag>>3 > maxFieldNumber {
				return false
			}
			switch tag & 7 {
			case 0: // varint
				n := varintLen(c[k:])
				if n == 0 {
					return false
				}
				k += n
			case 1: // fixed64
				k += 8
			case 5: // fixed32
				k += 4
			case 2: // length-delimited
				var size uint64
				if k < len(c) && c[k] < 0x80 {
					size, k = uint64(c[k]), k+1
				} else {
					v, n := binary.Uvarint(c[k:])
					if n <= 0 {
						return false
					}
					size, k = v, k+n
				}
				if size > uint64(len(c)-k) {
					return false
				}
				k += int(size)
			default: // groups (FlowMessage has none) and invalid types
				return false
			}
		}
	}
	return k == len(c)
}

// varintLen is the length of the varint at b's start, or 0 if it is cut
// or overflows 64 bits. Its end is found in one 8-byte word rather than
// byte by byte: fewer branches, whose outcome varies from field to field.
func varintLen(b []byte) int {
	if len(b) >= 8 {
		if m := ^binary.LittleEndian.Uint64(b) & 0x8080808080808080; m != 0 {
			return bits.TrailingZeros64(m)>>3 + 1
		}
		switch {
		case len(b) > 8 && b[8] < 0x80:
			return 9
		case len(b) > 9 && b[9] <= 1: // the 64th bit at most
			return 10
		}
		return 0
	}
	for n, c := range b {
		if c < 0x80 {
			return n + 1
		}
	}
	return 0
}

// maxFieldNumber is the largest field number decoders (protowire,
// vtprotobuf) accept from the wire.
const maxFieldNumber = 1<<31 - 1
