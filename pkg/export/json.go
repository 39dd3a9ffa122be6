package export

import (
	"fmt"
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of skipped values.
const maxDepth = 64

// scanner walks one flat JSON object without building anything: pmacct's
// records are flat, and nested values are skipped.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(reason string) error {
	return fmt.Errorf("export: %w: %s at column %d", ErrBadJSON, reason, s.i+1)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func (s *scanner) ws() { s.i = skipSpace(s.b, s.i) }

func (s *scanner) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// eachField calls fn with every top-level key of the object in b, the
// scanner s placed on the key's value, which fn must consume. fn returning
// stop ends the walk early, without checking the rest of the object. s is
// the caller's so that it does not escape to the heap on every call.
func eachField(s *scanner, b []byte, fn func(key []byte, s *scanner) (stop bool, err error)) error {
	*s = scanner{b: b}
	if !s.eat('{') {
		return s.fail("want '{'")
	}
	if !s.eat('}') {
		for {
			s.ws()
			key, _, err := s.str(nil)
			if err != nil {
				return err
			}
			if key == nil {
				return s.fail("want a key")
			}
			if !s.eat(':') {
				return s.fail("want ':'")
			}
			s.ws()
			stop, err := fn(key, s)
			if err != nil || stop {
				return err
			}
			if s.eat(',') {
				continue
			}
			if s.eat('}') {
				break
			}
			return s.fail("want ',' or '}'")
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return s.fail("data after the object")
	}
	return nil
}

// null consumes a JSON null.
func (s *scanner) null() bool {
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// uint64 reads a non-negative integer, bare or quoted; null reads as 0.
func (s *scanner) uint64() (uint64, error) {
	if s.null() {
		return 0, nil
	}
	quoted := s.i < len(s.b) && s.b[s.i] == '"'
	if quoted {
		s.i++
	}
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, s.fail("number out of range")
		}
		v = v*10 + d
		s.i++
	}
	if s.i == start {
		return 0, s.fail("want a non-negative integer")
	}
	if quoted {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return 0, s.fail("want a non-negative integer")
		}
		s.i++
	} else if s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		return 0, s.fail("want an integer")
	}
	return v, nil
}

func (s *scanner) uint32() (uint32, error) {
	v, err := s.uint64()
	if err == nil && v > math.MaxUint32 {
		return 0, s.fail("number out of range")
	}
	return uint32(v), err
}

// str reads a string (or null, returned as nil). Without escapes the
// result points into the input; otherwise it is unescaped onto scratch,
// which is returned grown.
func (s *scanner) str(scratch []byte) ([]byte, []byte, error) {
	if s.null() {
		return nil, scratch, nil
	}
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, scratch, s.fail("want a string")
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i:s.i]
			s.i++
			return v, scratch, nil
		case c == '\\':
			return s.unescape(start, scratch)
		case c < 0x20:
			return nil, scratch, s.fail("control character in string")
		}
		s.i++
	}
	return nil, scratch, s.fail("unterminated string")
}

func (s *scanner) unescape(start int, scratch []byte) ([]byte, []byte, error) {
	from := len(scratch)
	scratch = append(scratch, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return scratch[from:len(scratch):len(scratch)], scratch, nil
		case c < 0x20:
			return nil, scratch, s.fail("control character in string")
		case c != '\\':
			scratch = append(scratch, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			scratch = append(scratch, e)
		case 'b':
			scratch = append(scratch, '\b')
		case 'f':
			scratch = append(scratch, '\f')
		case 'n':
			scratch = append(scratch, '\n')
		case 'r':
			scratch = append(scratch, '\r')
		case 't':
			scratch = append(scratch, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, scratch, s.fail("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if len(s.b)-s.i >= 6 && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					if lo, ok := s.hex4(); ok {
						r2 = utf16.DecodeRune(r, lo)
					}
				}
				r = r2
			}
			scratch = utf8.AppendRune(scratch, r)
		default:
			return nil, scratch, s.fail("bad escape")
		}
	}
	return nil, scratch, s.fail("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// skipValue consumes any JSON value.
func (s *scanner) skipValue(depth int) error {
	if depth > maxDepth {
		return s.fail("nested too deeply")
	}
	s.ws()
	if s.i >= len(s.b) {
		return s.fail("want a value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, err := s.str(nil)
		return err
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		if s.eat(end) {
			return nil
		}
		for {
			if c == '{' {
				s.ws()
				if _, _, err := s.str(nil); err != nil {
					return err
				}
				if !s.eat(':') {
					return s.fail("want ':'")
				}
			}
			if err := s.skipValue(depth + 1); err != nil {
				return err
			}
			if s.eat(',') {
				continue
			}
			if s.eat(end) {
				return nil
			}
			return s.fail("want ',' or a closing bracket")
		}
	case c == 't' && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		s.i += 4
	case c == 'f' && len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		s.i += 5
	case s.null():
	case c == '-' || (c >= '0' && c <= '9'):
		s.i++
		for s.i < len(s.b) {
			c := s.b[s.i]
			if (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
				s.i++
				continue
			}
			break
		}
	default:
		return s.fail("want a value")
	}
	return nil
}
