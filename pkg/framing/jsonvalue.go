package framing

import (
	"bytes"
	"math"
	"net/netip"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/wire"
)

// The value readers of jsonParser: each starts at the value's first byte
// and leaves the scanner just past it. JSON null leaves a field at its
// zero value.

func (p *jsonParser) u32(dst *uint32) error {
	v, err := p.s.Uint(math.MaxUint32)
	*dst = uint32(v)
	return err
}

func (p *jsonParser) u64(dst *uint64) error {
	v, err := p.s.Uint(math.MaxUint64)
	*dst = v
	return err
}

func (p *jsonParser) i32(dst *int32) error {
	v, err := p.s.Int(math.MinInt32, math.MaxInt32)
	*dst = int32(v)
	return err
}

func (p *jsonParser) i64(dst *int64) error {
	v, err := p.s.Int(math.MinInt64, math.MaxInt64)
	*dst = v
	return err
}

func (p *jsonParser) bool(dst *bool) error {
	v, err := p.s.Bool()
	*dst = v
	return err
}

// plainStr reads a string that normally has no escapes (a name, a number,
// a MAC), decoding it in the rare case it has.
func (p *jsonParser) plainStr() ([]byte, error) {
	raw, esc, err := p.s.String()
	if esc {
		raw = wire.UnquoteJSON(nil, raw)
	}
	return raw, err
}

// time reads nanoseconds since the epoch, or RFC 3339 text as goflow2's
// datetimenano renderer writes.
func (p *jsonParser) time(dst *uint64) error {
	if p.s.Peek() != '"' {
		return p.u64(dst)
	}
	start := p.s.Pos()
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	if v, ok := wire.ParseDecimal(raw, math.MaxUint64); ok {
		*dst = v
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, unsafeString(raw))
	if err != nil || t.Before(time.Unix(0, 0)) {
		return p.fail(start, "expected nanoseconds or an RFC 3339 time")
	}
	*dst = uint64(t.UnixNano())
	return nil
}

// named reads a name known to lookup, a number, or a decimal string.
func (p *jsonParser) named(dst *uint32, lookup func([]byte) (uint32, bool), max uint64) error {
	if p.s.Peek() != '"' {
		return p.u32(dst)
	}
	start := p.s.Pos()
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	if v, ok := lookup(raw); ok {
		*dst = v
		return nil
	}
	if v, ok := wire.ParseDecimal(raw, max); ok {
		*dst = uint32(v)
		return nil
	}
	return p.fail(start, "unknown name")
}

// enum reads an enum name or number. Enums are open int32s: a value with no
// name is written as its decimal number, which may be negative.
func (p *jsonParser) enum(dst *int32, lookup func([]byte) (uint32, bool)) error {
	if p.s.Peek() != '"' {
		return p.i32(dst)
	}
	start := p.s.Pos()
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	if v, ok := lookup(raw); ok {
		*dst = int32(v)
		return nil
	}
	if v, ok := wire.ParseDecimal(raw, math.MaxInt32); ok {
		*dst = int32(v)
		return nil
	}
	if len(raw) > 1 && raw[0] == '-' {
		if v, ok := wire.ParseDecimal(raw[1:], -math.MinInt32); ok {
			*dst = int32(-int64(v))
			return nil
		}
	}
	return p.fail(start, "unknown name")
}

// string reads a string into dst, pointing into the line if p.alias.
func (p *jsonParser) string(dst *string) error {
	if p.s.Null() {
		return nil
	}
	if p.s.Peek() != '"' {
		return p.fail(p.s.Pos(), "expected a string")
	}
	raw, esc, err := p.s.String()
	if err != nil {
		return err
	}
	*dst = p.text(raw, esc)
	return nil
}

func (p *jsonParser) text(raw []byte, esc bool) string {
	switch {
	case esc:
		return unsafeString(wire.UnquoteJSON(make([]byte, 0, len(raw)), raw))
	case p.alias:
		return unsafeString(raw)
	}
	return string(raw)
}

// addr reads address text into dst's memory: 4 bytes for IPv4, 16 for
// IPv6 (IPv4-mapped included, as goflow2 then writes it), none for "".
func (p *jsonParser) addr(dst *[]byte) error {
	b, err := p.addrValue((*dst)[:0])
	*dst = b
	return err
}

func (p *jsonParser) addrValue(dst []byte) ([]byte, error) {
	if p.s.Null() {
		return dst, nil
	}
	if p.s.Peek() != '"' {
		return dst, p.fail(p.s.Pos(), "expected an address string")
	}
	start := p.s.Pos()
	raw, esc, err := p.s.String()
	if err != nil {
		return dst, err
	}
	if esc {
		var buf [64]byte
		raw = wire.UnquoteJSON(buf[:0], raw)
	}
	b, ok := appendParsedAddr(dst, raw)
	if !ok {
		return dst, p.fail(start, "invalid address")
	}
	return b, nil
}

// appendParsedAddr appends the 4 or 16 bytes of address text; "" is no
// address.
func appendParsedAddr(dst, text []byte) ([]byte, bool) {
	if len(text) == 0 {
		return dst, true
	}
	a, err := netip.ParseAddr(unsafeString(text))
	if err != nil {
		return dst, false
	}
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...), true
	}
	b := a.As16()
	return append(dst, b[:]...), true
}

// bytesText reads one of flowpipe's bytes fields as appendBytesText writes
// it: address text (it has a '.' or a ':') or hex.
func (p *jsonParser) bytesText(dst *[]byte) error {
	b, err := p.bytesTextValue((*dst)[:0])
	*dst = b
	return err
}

func (p *jsonParser) bytesTextValue(dst []byte) ([]byte, error) {
	if p.s.Null() {
		return dst, nil
	}
	if p.s.Peek() != '"' {
		return dst, p.fail(p.s.Pos(), "expected a string")
	}
	start := p.s.Pos()
	raw, err := p.plainStr()
	if err != nil {
		return dst, err
	}
	if bytes.ContainsAny(raw, ".:") {
		b, ok := appendParsedAddr(dst, raw)
		if !ok {
			return dst, p.fail(start, "invalid address")
		}
		return b, nil
	}
	b, ok := appendUnhex(dst, raw)
	if !ok {
		return dst, p.fail(start, "invalid hex")
	}
	return b, nil
}

func appendUnhex(dst, text []byte) ([]byte, bool) {
	if len(text)%2 != 0 {
		return dst, false
	}
	for i := 0; i < len(text); i += 2 {
		hi, ok1 := wire.Unhex(text[i])
		lo, ok2 := wire.Unhex(text[i+1])
		if !ok1 || !ok2 {
			return dst, false
		}
		dst = append(dst, hi<<4|lo)
	}
	return dst, true
}

// mac reads "aa:bb:cc:dd:ee:ff" (or '-' separated) or a number.
func (p *jsonParser) mac(dst *uint64) error {
	if p.s.Peek() != '"' {
		return p.u64(dst)
	}
	start := p.s.Pos()
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	var v uint64
	ok := len(raw) == 17
	for i := 0; ok && i < 17; i += 3 {
		hi, ok1 := wire.Unhex(raw[i])
		lo, ok2 := wire.Unhex(raw[i+1])
		ok = ok1 && ok2 && (i == 15 || raw[i+2] == ':' || raw[i+2] == '-')
		v = v<<8 | uint64(hi<<4|lo)
	}
	if !ok {
		return p.fail(start, "invalid MAC address")
	}
	*dst = v
	return nil
}

// net reads the length of "10.0.0.0/8" (goflow2's rendering), or a
// number; goflow2's "invalid Prefix" and "" read as 0.
func (p *jsonParser) net(dst *uint32) error {
	if p.s.Peek() != '"' {
		return p.u32(dst)
	}
	start := p.s.Pos()
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	*dst = 0
	if len(raw) == 0 || string(raw) == "invalid Prefix" {
		return nil
	}
	slash := bytes.LastIndexByte(raw, '/')
	v, ok := wire.ParseDecimal(raw[slash+1:], 128)
	if slash < 0 || !ok {
		return p.fail(start, "invalid prefix")
	}
	*dst = uint32(v)
	return nil
}

// list calls item for each element of an array; null is an empty array.
func (p *jsonParser) list(item func() error) error {
	if p.s.Null() {
		return nil
	}
	more, err := p.s.Open('[')
	for more && err == nil {
		if err = item(); err == nil {
			more, err = p.s.More(']')
		}
	}
	return err
}

func parseUints[T ~uint32 | ~uint64](p *jsonParser, dst *[]T, max uint64) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		v, err := p.s.Uint(max)
		*dst = append(*dst, T(v))
		return err
	})
}

func parseInts[T ~int32 | ~int64](p *jsonParser, dst *[]T, min, max int64) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		v, err := p.s.Int(min, max)
		*dst = append(*dst, T(v))
		return err
	})
}

func parseEnums[E ~int32](p *jsonParser, dst *[]E, lookup func([]byte) (uint32, bool)) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		var v int32
		err := p.enum(&v, lookup)
		*dst = append(*dst, E(v))
		return err
	})
}

func (p *jsonParser) strings(dst *[]string) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		var v string
		err := p.string(&v)
		*dst = append(*dst, v)
		return err
	})
}

// addrs reuses the memory of the items past len, as ResetVT leaves them.
func (p *jsonParser) addrs(dst *[][]byte) error {
	return p.byteItems(dst, p.addrValue)
}

func (p *jsonParser) bytesTexts(dst *[][]byte) error {
	return p.byteItems(dst, p.bytesTextValue)
}

func (p *jsonParser) byteItems(dst *[][]byte, value func([]byte) ([]byte, error)) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		n := len(*dst)
		var item []byte
		if n < cap(*dst) {
			item = (*dst)[:n+1][n][:0]
		}
		item, err := value(item)
		*dst = append(*dst, item)
		return err
	})
}

// labels reads an object of strings into dst, reusing spare (the map m had
// before its reset) when dst has none.
func (p *jsonParser) labels(dst *map[string]string, spare map[string]string) error {
	if p.s.Null() {
		return nil
	}
	more, err := p.s.Open('{')
	if err != nil {
		return err
	}
	switch {
	case *dst != nil:
		clear(*dst) // a repeated key: the last one wins
	case spare != nil:
		clear(spare)
		*dst = spare
	default:
		*dst = make(map[string]string)
	}
	for more {
		k, kesc, err := p.s.Key()
		if err != nil {
			return err
		}
		if p.s.Peek() != '"' {
			return p.fail(p.s.Pos(), "expected a string")
		}
		v, vesc, err := p.s.String()
		if err != nil {
			return err
		}
		(*dst)[p.text(k, kesc)] = p.text(v, vesc)
		if more, err = p.s.More('}'); err != nil {
			return err
		}
	}
	return nil
}

// custom appends a field of opts.Custom to the unknown fields, encoded as
// AppendJSON's rendering expects to find it.
func (p *jsonParser) custom(f CustomField) error {
	if p.s.Null() {
		return nil
	}
	if f.Render == RenderUint {
		v, err := p.s.Uint(math.MaxUint64)
		if err == nil {
			p.unknown = protowire.AppendTag(p.unknown, f.Number, protowire.VarintType)
			p.unknown = protowire.AppendVarint(p.unknown, v)
		}
		return err
	}
	if p.s.Peek() != '"' {
		return p.fail(p.s.Pos(), "expected a string")
	}
	start := p.s.Pos()
	var buf [64]byte
	var b []byte
	switch f.Render {
	case RenderIP:
		var err error
		if b, err = p.addrValue(buf[:0]); err != nil {
			return err
		}
	case RenderHex:
		raw, err := p.plainStr()
		if err != nil {
			return err
		}
		var ok bool
		if b, ok = appendUnhex(buf[:0], raw); !ok {
			return p.fail(start, "invalid hex")
		}
	default:
		raw, esc, err := p.s.String()
		if err != nil {
			return err
		}
		if b = raw; esc {
			b = wire.UnquoteJSON(buf[:0], raw)
		}
	}
	p.unknown = protowire.AppendTag(p.unknown, f.Number, protowire.BytesType)
	p.unknown = protowire.AppendBytes(p.unknown, b)
	return nil
}
