package shippers

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"unicode"
)

// A reader for the part of Alloy's configuration syntax the shipped file
// uses: blocks (name.name "label" { ... }), attributes (name = value),
// strings, numbers, booleans, lists, objects and references, comments.
// The syntax module is not on the module proxy, so this small one stands
// in; it rejects anything it does not know rather than guess.

type alloyBlock struct {
	name, label string
	attrs       map[string]any
	children    []*alloyBlock
}

// alloyRef is a reference such as local.file_match.flowpipe.targets.
type alloyRef string

func (b *alloyBlock) block(t *testing.T, name, label string) *alloyBlock {
	t.Helper()
	for _, c := range b.children {
		if c.name == name && c.label == label {
			return c
		}
	}
	t.Fatalf("no block %s %q", name, label)
	return nil
}

func (b *alloyBlock) str(t *testing.T, key string) string {
	t.Helper()
	s, ok := b.attrs[key].(string)
	if !ok {
		t.Fatalf("%s: attribute %s is %T, want a string", b.name, key, b.attrs[key])
	}
	return s
}

func (b *alloyBlock) object(t *testing.T, key string) map[string]string {
	t.Helper()
	m, ok := b.attrs[key].(map[string]any)
	if !ok {
		t.Fatalf("%s: attribute %s is %T, want an object", b.name, key, b.attrs[key])
	}
	out := map[string]string{}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s.%s.%s is %T, want a string", b.name, key, k, v)
		}
		out[k] = s
	}
	return out
}

func (b *alloyBlock) listOfObjects(t *testing.T, key string) []map[string]string {
	t.Helper()
	l, ok := b.attrs[key].([]any)
	if !ok || len(l) == 0 {
		t.Fatalf("%s: attribute %s is %T, want a list", b.name, key, b.attrs[key])
	}
	var out []map[string]string
	for _, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s.%s: element %T", b.name, key, e)
		}
		o := map[string]string{}
		for k, v := range m {
			o[k] = fmt.Sprint(v)
		}
		out = append(out, o)
	}
	return out
}

// refs lists every reference in the attributes of b and its children.
func (b *alloyBlock) refs() []alloyRef {
	var out []alloyRef
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case alloyRef:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, v := range b.attrs {
		walk(v)
	}
	for _, c := range b.children {
		out = append(out, c.refs()...)
	}
	return out
}

type alloyParser struct {
	src []rune
	pos int
}

func parseAlloy(t *testing.T, path string) *alloyBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := &alloyParser{src: []rune(string(b))}
	root := &alloyBlock{attrs: map[string]any{}}
	if err := p.body(root, true); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return root
}

func (p *alloyParser) errorf(format string, args ...any) error {
	line := 1
	for _, r := range p.src[:p.pos] {
		if r == '\n' {
			line++
		}
	}
	return fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, args...))
}

// skip passes spaces, newlines and comments.
func (p *alloyParser) skip() {
	for p.pos < len(p.src) {
		switch r := p.src[p.pos]; {
		case unicode.IsSpace(r):
			p.pos++
		case r == '/' && p.peekAt(1) == '/':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case r == '/' && p.peekAt(1) == '*':
			p.pos += 2
			for p.pos < len(p.src) && !(p.src[p.pos] == '*' && p.peekAt(1) == '/') {
				p.pos++
			}
			p.pos += 2
		default:
			return
		}
	}
}

func (p *alloyParser) peekAt(n int) rune {
	if p.pos+n < len(p.src) {
		return p.src[p.pos+n]
	}
	return 0
}

func (p *alloyParser) peek() rune { p.skip(); return p.peekAt(0) }

func (p *alloyParser) expect(r rune) error {
	if p.peek() != r {
		return p.errorf("want %q, got %q", r, p.peekAt(0))
	}
	p.pos++
	return nil
}

func isIdent(r rune, first bool) bool {
	return r == '_' || unicode.IsLetter(r) || (!first && unicode.IsDigit(r))
}

// ident reads name(.name)*.
func (p *alloyParser) ident() (string, error) {
	p.skip()
	start := p.pos
	for {
		if p.pos >= len(p.src) || !isIdent(p.src[p.pos], true) {
			return "", p.errorf("want a name")
		}
		for p.pos < len(p.src) && isIdent(p.src[p.pos], false) {
			p.pos++
		}
		if p.peekAt(0) != '.' {
			return string(p.src[start:p.pos]), nil
		}
		p.pos++
	}
}

func (p *alloyParser) str() (string, error) {
	p.skip()
	if p.peekAt(0) != '"' {
		return "", p.errorf("want a string")
	}
	start := p.pos
	p.pos++
	for p.pos < len(p.src) && p.src[p.pos] != '"' {
		if p.src[p.pos] == '\\' {
			p.pos++
		}
		p.pos++
	}
	p.pos++
	s, err := strconv.Unquote(string(p.src[start:p.pos]))
	if err != nil {
		return "", p.errorf("string %s: %v", string(p.src[start:p.pos]), err)
	}
	return s, nil
}

// body reads attributes and blocks up to '}' (or the end, at top level).
func (p *alloyParser) body(b *alloyBlock, top bool) error {
	for {
		r := p.peek()
		if r == 0 && top {
			return nil
		}
		if r == '}' && !top {
			p.pos++
			return nil
		}
		name, err := p.ident()
		if err != nil {
			return err
		}
		if p.peek() == '=' {
			p.pos++
			v, err := p.value()
			if err != nil {
				return err
			}
			if _, dup := b.attrs[name]; dup {
				return p.errorf("attribute %s set twice", name)
			}
			b.attrs[name] = v
			continue
		}
		c := &alloyBlock{name: name, attrs: map[string]any{}}
		if p.peek() == '"' {
			if c.label, err = p.str(); err != nil {
				return err
			}
		}
		if err := p.expect('{'); err != nil {
			return err
		}
		if err := p.body(c, false); err != nil {
			return err
		}
		b.children = append(b.children, c)
	}
}

func (p *alloyParser) value() (any, error) {
	switch r := p.peek(); {
	case r == '"':
		return p.str()
	case r == '[':
		p.pos++
		var l []any
		for p.peek() != ']' {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != ']' {
				return nil, p.errorf("want , or ]")
			}
		}
		p.pos++
		return l, nil
	case r == '{':
		p.pos++
		m := map[string]any{}
		for p.peek() != '}' {
			var k string
			var err error
			if p.peek() == '"' {
				k, err = p.str()
			} else {
				k, err = p.ident()
			}
			if err != nil {
				return nil, err
			}
			if err := p.expect('='); err != nil {
				return nil, err
			}
			if m[k], err = p.value(); err != nil {
				return nil, err
			}
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != '}' {
				return nil, p.errorf("want , or }")
			}
		}
		p.pos++
		return m, nil
	case unicode.IsDigit(r) || r == '-':
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && (unicode.IsDigit(p.src[p.pos]) || p.src[p.pos] == '.') {
			p.pos++
		}
		return strconv.ParseFloat(string(p.src[start:p.pos]), 64)
	case isIdent(r, true):
		id, err := p.ident()
		if err != nil {
			return nil, err
		}
		switch id {
		case "true":
			return true, nil
		case "false":
			return false, nil
		case "null":
			return nil, nil
		}
		return alloyRef(id), nil
	}
	return nil, p.errorf("unexpected %q", p.peekAt(0))
}
