package framing

import (
	"fmt"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// JSONError says where a JSON line stopped making sense.
type JSONError struct {
	Line   int // 1-based line of a stream; 0 from ParseJSON
	Column int // 1-based byte column
	Reason string
}

func (e *JSONError) Error() string {
	if e.Line > 0 { // inside a FrameError, which already says "framing:"
		return fmt.Sprintf("line %d: invalid JSON: %s at column %d", e.Line, e.Reason, e.Column)
	}
	return fmt.Sprintf("framing: invalid JSON: %s at column %d", e.Reason, e.Column)
}

func (e *JSONError) Unwrap() error { return ErrBadJSON }

// ParseJSON resets m and fills it from one JSON object: a line written by
// AppendJSON or by goflow2 v2 (names or numbers for type, etype, proto,
// layer_stack and the other enums; address text; MAC text; src_net/dst_net
// as "addr/len" or a number; uint64 fields also as decimal strings and
// time_*_ns also as RFC 3339 text). Keys it does not know are skipped;
// those named in opts.Custom are appended to m's unknown fields.
//
// Errors are *JSONError (errors.Is ErrBadJSON); m then holds what was read
// before the error. Like vtprotobuf's UnmarshalVT, ParseJSON reuses the
// capacity of m's byte slices, lists and label maps, so it does not
// allocate once m has grown; do not pass a message whose slices or maps
// share memory with data you still need.
func ParseJSON(line []byte, m *flowpb.FlowMessage, opts *JSONOptions) error {
	return parseJSON(line, m, opts, false, nil)
}

// parseJSON with alias set makes m's strings point into line, as
// UnmarshalVTUnsafe does for frames. With extra set, the members that are
// no field (unknown keys, custom fields opts does not map) are appended to
// *extra as they are, separated by commas.
func parseJSON(line []byte, m *flowpb.FlowMessage, opts *JSONOptions, alias bool, extra *[]byte) error {
	p := jsonParser{m: m, opts: opts, alias: alias, spare: takeMaps(m), extra: extra}
	p.s.Reset(line)
	custom := opts != nil && len(opts.Custom) > 0
	if custom {
		p.unknown = m.ProtoReflect().GetUnknown()[:0]
	}
	m.ResetVT()
	err := p.object()
	if custom && len(p.unknown) > 0 {
		m.ProtoReflect().SetUnknown(p.unknown)
	}
	return err
}

// jsonParser reads a flow record from JSON: the wire.JSONScanner reads the
// tokens, the generated parseFieldAt (fields.pb.go) picks each field's
// reader, and the readers (jsonvalue.go) turn renderings back into values.
type jsonParser struct {
	s     wire.JSONScanner
	m     *flowpb.FlowMessage
	opts  *JSONOptions
	alias bool
	spare spareMaps // m's maps from before its reset, for reuse
	extra *[]byte

	unknown []byte // m's unknown fields, custom fields appended
}

// fail is an error at byte offset at of the line.
func (p *jsonParser) fail(at int, reason string) error { return p.s.Fail(at, reason) }

func (p *jsonParser) object() error {
	s := &p.s
	more, err := s.Open('{')
	var buf [64]byte // for keys with escapes
	next := 0        // the field the next key most likely names
	for more && err == nil {
		start := s.Pos()
		var key []byte
		// Lines in the layout's order (AppendJSON's, goflow2's) name the
		// field after the last one: one comparison instead of a scan of
		// the key and a search for it.
		i := next
		if i < len(jsonKeys) && s.KeyIs(jsonKeys[i]) {
			key = s.Bytes()[start+1 : start+1+len(jsonKeys[i])]
		} else {
			var esc bool
			var kerr error
			if key, esc, kerr = s.Key(); kerr != nil {
				err = kerr
				break
			}
			if esc {
				key = wire.UnquoteJSON(buf[:0], key)
			}
			i = jsonKeyIndex(key)
		}
		if i >= 0 {
			err = p.parseFieldAt(i)
			next = i + 1
		} else {
			err = p.other(key, start)
		}
		if err != nil {
			if se, ok := err.(*wire.SyntaxError); ok {
				se.Reason += fmt.Sprintf(" in %q", string(key))
			}
			break
		}
		if more = s.Comma(); !more {
			more, err = s.More('}')
		}
	}
	if err == nil && !s.AtEnd() {
		err = s.Fail(s.Pos(), "unexpected data after the object")
	}
	if se, ok := err.(*wire.SyntaxError); ok {
		return &JSONError{Column: se.Offset + 1, Reason: se.Reason}
	}
	return err
}

// other reads a member whose key, starting at byte start, names no field:
// a custom field of the options, or a member to skip (and pass on).
func (p *jsonParser) other(key []byte, start int) error {
	if p.opts != nil {
		for _, f := range p.opts.Custom {
			if f.Name == string(key) {
				return p.custom(f)
			}
		}
	}
	if err := p.s.Skip(); err != nil {
		return err
	}
	if p.extra != nil {
		if len(*p.extra) > 0 {
			*p.extra = append(*p.extra, ',')
		}
		*p.extra = append(*p.extra, p.s.Bytes()[start:p.s.Pos()]...)
	}
	return nil
}
