package wire

import (
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError says where a JSON text stopped making sense.
type SyntaxError struct {
	Offset int // byte offset in the text (0-based)
	Reason string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON: %s at byte offset %d", e.Reason, e.Offset)
}

// MaxDepth bounds the nesting of the values Skip passes over: it recurses.
const MaxDepth = 64

// A JSONScanner reads one JSON text held in memory, value by value, and
// checks it against the grammar of RFC 8259 as it goes. Each reader
// starts at the first byte of a value (Open, Key and More leave the
// scanner there) and leaves the scanner just past it. The zero value
// scans an empty text; Reset gives it one.
type JSONScanner struct {
	buf []byte
	pos int
}

// Reset starts a scan of b, which must stay unchanged while it lasts.
func (s *JSONScanner) Reset(b []byte) { *s = JSONScanner{buf: b} }

// Bytes is the whole text being scanned.
func (s *JSONScanner) Bytes() []byte { return s.buf }

// Pos is the offset of the next byte to read.
func (s *JSONScanner) Pos() int { return s.pos }

// Rest is the text not read yet.
func (s *JSONScanner) Rest() []byte { return s.buf[s.pos:] }

// Peek is the next byte, 0 at the end of the text.
func (s *JSONScanner) Peek() byte {
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

// Eat consumes c if it is the next byte.
func (s *JSONScanner) Eat(c byte) bool {
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// SkipSpace passes over white space.
func (s *JSONScanner) SkipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// AtEnd reports whether only white space is left.
func (s *JSONScanner) AtEnd() bool {
	s.SkipSpace()
	return s.pos == len(s.buf)
}

// Fail returns a *SyntaxError at offset at.
func (s *JSONScanner) Fail(at int, reason string) error {
	return &SyntaxError{Offset: at, Reason: reason}
}

// Open reads the opening '{' or '[' (open) of an object or array, after
// any white space, and reports whether a member or element follows (false
// for {} and []).
func (s *JSONScanner) Open(open byte) (more bool, err error) {
	s.SkipSpace()
	if !s.Eat(open) {
		if open == '[' {
			return false, s.Fail(s.pos, "expected '['")
		}
		return false, s.Fail(s.pos, "expected '{'")
	}
	s.SkipSpace()
	if s.Eat(open + 2) { // '}' and ']' are two after '{' and '['
		return false, nil
	}
	return true, nil
}

// Key reads an object member's key and the ':' after it, and leaves the
// scanner at the member's value. raw is the key between its quotes,
// escaped says it needs UnquoteJSON.
//
// For a loop over members, Comma is the inlined fast path of More.
func (s *JSONScanner) Key() (raw []byte, escaped bool, err error) {
	s.SkipSpace()
	if s.Peek() != '"' {
		return nil, false, s.Fail(s.pos, "expected a key")
	}
	if raw, escaped, err = s.String(); err != nil {
		return nil, false, err
	}
	s.SkipSpace()
	if !s.Eat(':') {
		return nil, false, s.Fail(s.pos, "expected ':' after a key")
	}
	s.SkipSpace()
	return raw, escaped, nil
}

// KeyIs reports whether the next member's key is name, written as it is
// (no escapes, no white space before it), and if so reads it and the ':'
// after it, as Key does. It costs one comparison instead of a scan of the
// string: a reader that expects a key (the next field of a known layout)
// tries KeyIs first and Key when it fails. name must need no escaping.
func (s *JSONScanner) KeyIs(name string) bool {
	r := s.buf[s.pos:]
	n := len(name)
	if len(r) < n+3 || r[0] != '"' || r[n+1] != '"' || r[n+2] != ':' || string(r[1:n+1]) != name {
		return false
	}
	s.pos += n + 3
	s.SkipSpace()
	return true
}

// More reads what follows a member or element: ',' (true: another one
// follows, the scanner is at it) or the closing '}' or ']' (close).
func (s *JSONScanner) More(close byte) (bool, error) {
	s.SkipSpace()
	if s.Eat(',') {
		s.SkipSpace()
		return true, nil
	}
	if s.Eat(close) {
		return false, nil
	}
	if close == ']' {
		return false, s.Fail(s.pos, "expected ',' or ']'")
	}
	return false, s.Fail(s.pos, "expected ',' or '}'")
}

// Comma consumes a ',' that follows right after a value and is followed
// by no white space, the usual case in a loop over members or elements,
// and reports whether it did; More handles every case. Small enough to be
// inlined in the caller's loop:
//
//	more = s.Comma()
//	if !more {
//		more, err = s.More('}')
//	}
func (s *JSONScanner) Comma() bool {
	if i := s.pos; i+1 < len(s.buf) && s.buf[i] == ',' && s.buf[i+1] > ' ' {
		s.pos = i + 1
		return true
	}
	return false
}

// Null consumes a null.
func (s *JSONScanner) Null() bool {
	if len(s.buf)-s.pos >= 4 && string(s.buf[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

// Bool reads true or false; null reads as false.
func (s *JSONScanner) Bool() (bool, error) {
	rest := s.buf[s.pos:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.pos += 4
		return true, nil
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.pos += 5
		return false, nil
	case s.Null():
		return false, nil
	}
	return false, s.Fail(s.pos, "expected true or false")
}

// String reads a string starting at its opening quote, checking its
// escapes, and returns the bytes between the quotes. escaped says they
// need UnquoteJSON: escapes, or invalid UTF-8 to replace.
func (s *JSONScanner) String() (raw []byte, escaped bool, err error) {
	start := s.pos + 1
	b := s.buf
	for i := start; i < len(b); {
		c := b[i]
		if plainStringByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.pos = i + 1
			return b[start:i:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return nil, false, s.Fail(i, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(b[i+2:]); !ok {
					return nil, false, s.Fail(i, "invalid \\u escape")
				}
				i += 6
			default:
				return nil, false, s.Fail(i, "invalid escape")
			}
		case c < 0x20:
			return nil, false, s.Fail(i, "control character in a string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				escaped = true
			}
			i += size
		}
	}
	return nil, false, s.Fail(s.pos, "unterminated string")
}

// plainStringByte marks the bytes a string can hold as they are: printable
// ASCII but '"' and '\\'.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Uint reads a non-negative integer no larger than max: a JSON number, or
// a decimal string (as protojson writes 64-bit integers); null reads as 0.
func (s *JSONScanner) Uint(max uint64) (uint64, error) {
	switch c := s.Peek(); {
	case c >= '0' && c <= '9':
		return s.number(max)
	case c == '"':
		start := s.pos
		raw, esc, err := s.String()
		if err != nil {
			return 0, err
		}
		if esc {
			raw = UnquoteJSON(nil, raw)
		}
		v, ok := ParseDecimal(raw, max)
		if !ok {
			return 0, s.Fail(start, "expected an unsigned integer")
		}
		return v, nil
	case s.Null():
		return 0, nil
	}
	return 0, s.Fail(s.pos, "expected an unsigned integer")
}

// Int reads an integer within [min, max] (min <= 0 <= max), as Uint
// does, with an optional minus sign: a JSON number, or a decimal string;
// null reads as 0.
func (s *JSONScanner) Int(min, max int64) (int64, error) {
	rest := s.Rest()
	quoted := len(rest) > 0 && rest[0] == '"'
	if !(len(rest) > 1 && (rest[0] == '-' || quoted && rest[1] == '-')) {
		v, err := s.Uint(uint64(max))
		return int64(v), err
	}
	start := s.pos
	if min >= 0 {
		return 0, s.Fail(start, "expected an unsigned integer")
	}
	limit := uint64(-min) // two's complement: right for math.MinInt64 too
	var v uint64
	if quoted {
		raw, esc, err := s.String()
		if err != nil {
			return 0, err
		}
		if esc {
			raw = UnquoteJSON(nil, raw)
		}
		n, ok := ParseDecimal(raw[1:], limit)
		if !ok {
			return 0, s.Fail(start, "expected an integer in range")
		}
		v = n
	} else {
		s.pos++ // the minus sign
		if c := s.Peek(); c < '0' || c > '9' {
			return 0, s.Fail(start, "invalid number")
		}
		n, err := s.number(limit)
		if err != nil {
			return 0, err
		}
		v = n
	}
	return -int64(v), nil
}

// number reads a JSON number that must be an integer in [0, max].
func (s *JSONScanner) number(max uint64) (uint64, error) {
	start := s.pos
	end := s.pos
	for end < len(s.buf) && s.buf[end] >= '0' && s.buf[end] <= '9' {
		end++
	}
	s.pos = end
	if end < len(s.buf) && (s.buf[end] == '.' || s.buf[end] == 'e' || s.buf[end] == 'E') {
		return 0, s.Fail(start, "expected an unsigned integer")
	}
	if s.buf[start] == '0' && end-start > 1 {
		return 0, s.Fail(start, "number with a leading zero")
	}
	v, ok := ParseDecimal(s.buf[start:end], max)
	if !ok {
		return 0, s.Fail(start, "number out of range")
	}
	return v, nil
}

// ParseDecimal reads b as an unsigned decimal integer no larger than max.
func ParseDecimal(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for i, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if i >= 19 && v > (math.MaxUint64-d)/10 { // 19 digits cannot overflow
			return 0, false
		}
		v = v*10 + d
	}
	return v, v <= max
}

// Skip passes over any JSON value, checking its syntax.
func (s *JSONScanner) Skip() error { return s.skip(0) }

func (s *JSONScanner) skip(depth int) error {
	if depth > MaxDepth {
		return s.Fail(s.pos, "nested too deep")
	}
	switch c := s.Peek(); {
	case c == '"':
		_, _, err := s.String()
		return err
	case c == '{' || c == '[':
		more, err := s.Open(c)
		for more && err == nil {
			if c == '{' {
				if _, _, err = s.Key(); err != nil {
					return err
				}
			}
			if err = s.skip(depth + 1); err != nil {
				return err
			}
			more, err = s.More(c + 2)
		}
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.skipNumber()
	case c == 't' || c == 'f' || c == 'n':
		_, err := s.Bool()
		return err
	}
	return s.Fail(s.pos, "expected a value")
}

// skipNumber checks the JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func (s *JSONScanner) skipNumber() error {
	start := s.pos
	s.Eat('-')
	digits := func() int {
		n := 0
		for s.pos < len(s.buf) && s.buf[s.pos] >= '0' && s.buf[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	intStart := s.pos
	n := digits()
	if n == 0 || (n > 1 && s.buf[intStart] == '0') {
		return s.Fail(start, "invalid number")
	}
	if s.Eat('.') && digits() == 0 {
		return s.Fail(start, "invalid number")
	}
	if s.Eat('e') || s.Eat('E') {
		if !s.Eat('+') {
			s.Eat('-')
		}
		if digits() == 0 {
			return s.Fail(start, "invalid number")
		}
	}
	return nil
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		d, ok := Unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// Unhex is the value of the hex digit c.
func Unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// UnquoteJSON appends the decoded form of raw, a string's bytes between
// its quotes as JSONScanner.String checked them. Like encoding/json, it
// turns invalid UTF-8 and lone surrogates into U+FFFD.
func UnquoteJSON(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c == '\\' {
			e := raw[i+1]
			i += 2
			switch e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, _ := hex4(raw[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(0), false
					if len(raw)-i >= 6 && raw[i] == '\\' && raw[i+1] == 'u' {
						r2, ok = hex4(raw[i+2:])
					}
					if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, raw[i:i+size]...)
		}
		i += size
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, written as the character itself so that reading the string back
// and writing it again gives the same bytes; control characters are
// escaped, everything else is written as it is.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendHex appends b as lower-case hex digits.
func AppendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}
