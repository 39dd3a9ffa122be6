package framing

import (
	"unicode/utf16"
	"unicode/utf8"
)

// The lexical layer of jsonParser: strings and skipped values, checked
// against the JSON grammar (RFC 8259).

// str reads a string starting at its opening quote, checking its escapes,
// and returns the bytes between the quotes. esc says they need
// decodeString: escapes, or invalid UTF-8 to replace.
func (p *jsonParser) str() (raw []byte, esc bool, err error) {
	start := p.i + 1
	for i := start; i < len(p.b); {
		c := p.b[i]
		if plainStringByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			p.i = i + 1
			return p.b[start:i], esc, nil
		case c == '\\':
			esc = true
			if i+1 >= len(p.b) {
				return nil, false, p.fail(i, "unterminated string")
			}
			switch p.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(p.b[i+2:]); !ok {
					return nil, false, p.fail(i, "invalid \\u escape")
				}
				i += 6
			default:
				return nil, false, p.fail(i, "invalid escape")
			}
		case c < 0x20:
			return nil, false, p.fail(i, "control character in a string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(p.b[i:])
			if r == utf8.RuneError && size == 1 {
				esc = true
			}
			i += size
		}
	}
	return nil, false, p.fail(p.i, "unterminated string")
}

// plainStringByte marks the bytes a string can hold as they are: printable
// ASCII but '"' and '\\'.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		d, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// decodeString appends the decoded form of a string checked by str. Like
// encoding/json, it turns invalid UTF-8 and lone surrogates into U+FFFD.
func decodeString(dst, raw []byte) []byte {
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

// skip passes over any JSON value, checking its syntax.
func (p *jsonParser) skip(depth int) error {
	if depth > maxDepth {
		return p.fail(p.i, "nested too deep")
	}
	switch c := p.peek(); {
	case c == '"':
		_, _, err := p.str()
		return err
	case c == '{':
		p.i++
		p.ws()
		if p.eat('}') {
			return nil
		}
		for {
			p.ws()
			if p.peek() != '"' {
				return p.fail(p.i, "expected a key")
			}
			if _, _, err := p.str(); err != nil {
				return err
			}
			p.ws()
			if !p.eat(':') {
				return p.fail(p.i, "expected ':' after a key")
			}
			p.ws()
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				return nil
			}
			return p.fail(p.i, "expected ',' or '}'")
		}
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return nil
		}
		for {
			p.ws()
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat(']') {
				return nil
			}
			return p.fail(p.i, "expected ',' or ']'")
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.skipNumber()
	case c == 't' || c == 'f' || c == 'n':
		var b bool
		return p.bool(&b)
	}
	return p.fail(p.i, "expected a value")
}

// skipNumber checks the JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func (p *jsonParser) skipNumber() error {
	start := p.i
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	n := digits()
	if n == 0 || (n > 1 && p.b[intStart] == '0') {
		return p.fail(start, "invalid number")
	}
	if p.eat('.') && digits() == 0 {
		return p.fail(start, "invalid number")
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if digits() == 0 {
			return p.fail(start, "invalid number")
		}
	}
	return nil
}

// plainStr reads a string that normally has no escapes (a name, a number,
// a MAC), decoding it in the rare case it has.
func (p *jsonParser) plainStr() ([]byte, error) {
	raw, esc, err := p.str()
	if esc {
		raw = decodeString(nil, raw)
	}
	return raw, err
}
