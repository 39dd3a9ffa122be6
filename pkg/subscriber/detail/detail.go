// Package detail reads FreeRADIUS detail files: the accounting log that
// FreeRADIUS's detail module writes, one block per request.
//
//	Wed Dec  2 12:53:01 2026
//		Acct-Status-Type = Start
//		User-Name = "alice"
//		Framed-IP-Address = 100.64.0.1
//		Event-Timestamp = "Jan  1 2026 08:00:00 UTC"
//		Timestamp = 1767254400
//
// A block is a date line, attribute lines indented by a tab ("Name =
// value", strings in double quotes with FreeRADIUS's escapes) and a blank
// line. Next splits a file's bytes into blocks, Parse turns a block into a
// subscriber.Record, and a Follower follows files as they grow and rotate,
// like tail -F, keeping its position across restarts.
package detail

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// Next returns the first complete block of buf (without its blank line)
// and how many bytes it and the blank lines after it take. A block is
// complete when a blank line follows it, or at EOF (atEOF) when it ends
// with a newline. When buf holds no complete block, advance is 0; blank
// lines alone are skipped (block nil, advance > 0).
func Next(buf []byte, atEOF bool) (block []byte, advance int) {
	i := 0
	// Leading blank lines.
	for i < len(buf) {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 || len(bytes.TrimSpace(buf[i:i+j])) != 0 {
			break
		}
		i += j + 1
	}
	start := i
	for i < len(buf) {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			break
		}
		if len(bytes.TrimSpace(buf[i:i+j])) == 0 {
			return buf[start:i], i + j + 1
		}
		i += j + 1
	}
	if atEOF && i > start && i == len(buf) {
		return buf[start:i], i
	}
	if start > 0 {
		return nil, start
	}
	return nil, 0
}

// ErrNoAttributes is returned by Parse for a block without attribute lines.
var ErrNoAttributes = errors.New("detail: record without attributes")

// Parse reads one block into r (which it resets first), with source
// subscriber.SourceDetail. Strings in r alias block. The date line is
// skipped: the record's time is its Event-Timestamp, else its Timestamp.
// An attribute whose value is malformed is an error naming it; unknown
// attributes are skipped.
func Parse(block []byte, r *subscriber.Record) error {
	r.Reset()
	r.Source = subscriber.SourceDetail
	attrs := 0
	for line := range bytes.Lines(block) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 || (line[0] != '\t' && line[0] != ' ') {
			continue // the date line
		}
		line = bytes.TrimLeft(line, "\t ")
		eq := bytes.Index(line, []byte(" = "))
		if eq <= 0 {
			return fmt.Errorf("detail: line %q: want Name = value", truncate(line))
		}
		name, value := line[:eq], bytes.TrimRight(line[eq+3:], " \t")
		v, err := unquote(value)
		if err != nil {
			return fmt.Errorf("detail: %s: %w", name, err)
		}
		if err := r.SetAttr(alias(name), v); err != nil {
			return fmt.Errorf("detail: %w", err)
		}
		attrs++
	}
	if attrs == 0 {
		return ErrNoAttributes
	}
	return nil
}

// unquote returns a value as FreeRADIUS means it: a quoted string with its
// escapes (\\, \", \n, \r, \t, and \ooo octal for other bytes) resolved;
// anything else as it is. Without escapes the result aliases v.
func unquote(v []byte) (string, error) {
	if len(v) == 0 || v[0] != '"' {
		return alias(v), nil
	}
	if len(v) < 2 || v[len(v)-1] != '"' {
		return "", errors.New("unterminated string")
	}
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') < 0 {
		if bytes.IndexByte(in, '"') >= 0 {
			return "", errors.New("unescaped quote in string")
		}
		return alias(in), nil
	}
	var b strings.Builder
	b.Grow(len(in))
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c == '"' {
			return "", errors.New("unescaped quote in string")
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(in) {
			return "", errors.New("string ends with a backslash")
		}
		i++
		switch e := in[i]; e {
		case '\\', '"', '\'':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			if i+2 >= len(in) || !isOctal(e) || !isOctal(in[i+1]) || !isOctal(in[i+2]) {
				return "", fmt.Errorf("bad escape \\%c", e)
			}
			n := int(e-'0')<<6 | int(in[i+1]-'0')<<3 | int(in[i+2]-'0')
			if n > 255 {
				return "", fmt.Errorf("bad escape \\%s", in[i:i+3])
			}
			b.WriteByte(byte(n))
			i += 2
		}
	}
	return b.String(), nil
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// alias views b as a string without copying: the record's strings live as
// long as the read buffer, and Table.Apply copies what it keeps.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
