package framing

import (
	"math"
	"net/netip"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// The value readers of jsonParser: each starts at the value's first byte
// and leaves p.i just past it. JSON null leaves a field at its zero value.

func (p *jsonParser) null() bool {
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

func (p *jsonParser) u32(dst *uint32) error {
	v, err := p.uint(math.MaxUint32)
	*dst = uint32(v)
	return err
}

func (p *jsonParser) u64(dst *uint64) error {
	v, err := p.uint(math.MaxUint64)
	*dst = v
	return err
}

// uint reads a non-negative integer, also as a decimal string (protojson
// writes uint64 that way).
func (p *jsonParser) uint(max uint64) (uint64, error) {
	switch c := p.peek(); {
	case c >= '0' && c <= '9':
		return p.number(max)
	case c == '"':
		start := p.i
		raw, err := p.plainStr()
		if err != nil {
			return 0, err
		}
		v, ok := parseDecimal(raw, max)
		if !ok {
			return 0, p.fail(start, "expected an unsigned integer")
		}
		return v, nil
	case p.null():
		return 0, nil
	}
	return 0, p.fail(p.i, "expected an unsigned integer")
}

// number reads a JSON number that must be an integer in [0, max].
func (p *jsonParser) number(max uint64) (uint64, error) {
	start := p.i
	end := p.i
	for end < len(p.b) && p.b[end] >= '0' && p.b[end] <= '9' {
		end++
	}
	p.i = end
	if end < len(p.b) && (p.b[end] == '.' || p.b[end] == 'e' || p.b[end] == 'E') {
		return 0, p.fail(start, "expected an unsigned integer")
	}
	if p.b[start] == '0' && end-start > 1 {
		return 0, p.fail(start, "number with a leading zero")
	}
	v, ok := parseDecimal(p.b[start:end], max)
	if !ok {
		return 0, p.fail(start, "number out of range")
	}
	return v, nil
}

func parseDecimal(b []byte, max uint64) (uint64, bool) {
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

// time reads nanoseconds since the epoch, or RFC 3339 text as goflow2's
// datetimenano renderer writes.
func (p *jsonParser) time(dst *uint64) error {
	if p.peek() != '"' {
		return p.u64(dst)
	}
	start := p.i
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	if v, ok := parseDecimal(raw, math.MaxUint64); ok {
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
	v, err := p.namedValue(lookup, max)
	*dst = uint32(v)
	return err
}

// enum reads an enum name or number. Enums are open int32s: a value with no
// name is written as its decimal number, which may be negative.
func (p *jsonParser) enum(dst *int32, lookup func([]byte) (uint32, bool)) error {
	quoted := p.peek() == '"'
	if !(p.i+1 < len(p.b) && (p.b[p.i] == '-' || quoted && p.b[p.i+1] == '-')) {
		v, err := p.namedValue(lookup, math.MaxInt32)
		*dst = int32(v)
		return err
	}
	start := p.i
	var v uint64
	if quoted {
		raw, err := p.plainStr()
		if err != nil {
			return err
		}
		n, ok := parseDecimal(raw[1:], -math.MinInt32)
		if !ok {
			return p.fail(start, "unknown name")
		}
		v = n
	} else {
		p.i++ // the minus sign
		n, err := p.uint(-math.MinInt32)
		if err != nil {
			return err
		}
		v = n
	}
	*dst = int32(-int64(v))
	return nil
}

func (p *jsonParser) namedValue(lookup func([]byte) (uint32, bool), max uint64) (uint64, error) {
	if p.peek() != '"' {
		return p.uint(max)
	}
	start := p.i
	raw, err := p.plainStr()
	if err != nil {
		return 0, err
	}
	if v, ok := lookup(raw); ok {
		return uint64(v), nil
	}
	if v, ok := parseDecimal(raw, max); ok {
		return v, nil
	}
	return 0, p.fail(start, "unknown name")
}

func (p *jsonParser) bool(dst *bool) error {
	rest := p.b[p.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst = true
		p.i += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst = false
		p.i += 5
	case p.null():
	default:
		return p.fail(p.i, "expected true or false")
	}
	return nil
}

// string reads a string into dst, pointing into the line if p.alias.
func (p *jsonParser) string(dst *string) error {
	if p.null() {
		return nil
	}
	if p.peek() != '"' {
		return p.fail(p.i, "expected a string")
	}
	raw, esc, err := p.str()
	if err != nil {
		return err
	}
	*dst = p.text(raw, esc)
	return nil
}

func (p *jsonParser) text(raw []byte, esc bool) string {
	switch {
	case esc:
		return unsafeString(decodeString(make([]byte, 0, len(raw)), raw))
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
	if p.null() {
		return dst, nil
	}
	if p.peek() != '"' {
		return dst, p.fail(p.i, "expected an address string")
	}
	start := p.i
	raw, esc, err := p.str()
	if err != nil {
		return dst, err
	}
	if esc {
		var buf [64]byte
		raw = decodeString(buf[:0], raw)
	}
	if len(raw) == 0 {
		return dst, nil
	}
	a, err := netip.ParseAddr(unsafeString(raw))
	if err != nil {
		return dst, p.fail(start, "invalid address")
	}
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...), nil
	}
	b := a.As16()
	return append(dst, b[:]...), nil
}

// mac reads "aa:bb:cc:dd:ee:ff" (or '-' separated) or a number.
func (p *jsonParser) mac(dst *uint64) error {
	if p.peek() != '"' {
		return p.u64(dst)
	}
	start := p.i
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	var v uint64
	ok := len(raw) == 17
	for i := 0; ok && i < 17; i += 3 {
		hi, ok1 := unhex(raw[i])
		lo, ok2 := unhex(raw[i+1])
		ok = ok1 && ok2 && (i == 15 || raw[i+2] == ':' || raw[i+2] == '-')
		v = v<<8 | uint64(hi<<4|lo)
	}
	if !ok {
		return p.fail(start, "invalid MAC address")
	}
	*dst = v
	return nil
}

func unhex(c byte) (byte, bool) {
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

// net reads the length of "10.0.0.0/8" (goflow2's rendering), or a
// number; goflow2's "invalid Prefix" and "" read as 0.
func (p *jsonParser) net(dst *uint32) error {
	if p.peek() != '"' {
		return p.u32(dst)
	}
	start := p.i
	raw, err := p.plainStr()
	if err != nil {
		return err
	}
	*dst = 0
	if len(raw) == 0 || string(raw) == "invalid Prefix" {
		return nil
	}
	slash := len(raw) - 1
	for slash >= 0 && raw[slash] != '/' {
		slash--
	}
	v, ok := parseDecimal(raw[slash+1:], 128)
	if slash < 0 || !ok {
		return p.fail(start, "invalid prefix")
	}
	*dst = uint32(v)
	return nil
}

// list calls item for each element of an array; null is an empty array.
func (p *jsonParser) list(item func() error) error {
	if p.null() {
		return nil
	}
	if !p.eat('[') {
		return p.fail(p.i, "expected '['")
	}
	p.ws()
	if p.eat(']') {
		return nil
	}
	for {
		p.ws()
		if err := item(); err != nil {
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
}

func (p *jsonParser) uints(dst *[]uint32) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		v, err := p.uint(math.MaxUint32)
		*dst = append(*dst, uint32(v))
		return err
	})
}

func (p *jsonParser) layers(dst *[]flowpb.FlowMessage_LayerStack) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		var v int32
		err := p.enum(&v, layerNumber)
		*dst = append(*dst, flowpb.FlowMessage_LayerStack(v))
		return err
	})
}

// addrs reuses the memory of the items past len, as ResetVT leaves them.
func (p *jsonParser) addrs(dst *[][]byte) error {
	*dst = (*dst)[:0]
	return p.list(func() error {
		n := len(*dst)
		var item []byte
		if n < cap(*dst) {
			item = (*dst)[:n+1][n][:0]
		}
		item, err := p.addrValue(item)
		*dst = append(*dst, item)
		return err
	})
}

// labels reads an object of strings into dst, reusing spare (the map m had
// before its reset) when dst has none.
func (p *jsonParser) labels(dst *map[string]string, spare map[string]string) error {
	if p.null() {
		return nil
	}
	if !p.eat('{') {
		return p.fail(p.i, "expected '{'")
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
	p.ws()
	if p.eat('}') {
		return nil
	}
	for {
		p.ws()
		if p.peek() != '"' {
			return p.fail(p.i, "expected a key")
		}
		k, kesc, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if !p.eat(':') {
			return p.fail(p.i, "expected ':' after a key")
		}
		p.ws()
		if p.peek() != '"' {
			return p.fail(p.i, "expected a string")
		}
		v, vesc, err := p.str()
		if err != nil {
			return err
		}
		(*dst)[p.text(k, kesc)] = p.text(v, vesc)
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return nil
		}
		return p.fail(p.i, "expected ',' or '}'")
	}
}

// custom appends a field of opts.Custom to the unknown fields, encoded as
// AppendJSON's rendering expects to find it.
func (p *jsonParser) custom(f CustomField) error {
	if p.null() {
		return nil
	}
	if f.Render == RenderUint {
		v, err := p.uint(math.MaxUint64)
		if err == nil {
			p.unknown = protowire.AppendTag(p.unknown, f.Number, protowire.VarintType)
			p.unknown = protowire.AppendVarint(p.unknown, v)
		}
		return err
	}
	if p.peek() != '"' {
		return p.fail(p.i, "expected a string")
	}
	start := p.i
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
		if len(raw)%2 != 0 {
			return p.fail(start, "invalid hex")
		}
		b = buf[:0]
		for i := 0; i < len(raw); i += 2 {
			hi, ok1 := unhex(raw[i])
			lo, ok2 := unhex(raw[i+1])
			if !ok1 || !ok2 {
				return p.fail(start, "invalid hex")
			}
			b = append(b, hi<<4|lo)
		}
	default:
		raw, esc, err := p.str()
		if err != nil {
			return err
		}
		if b = raw; esc {
			b = decodeString(buf[:0], raw)
		}
	}
	p.unknown = protowire.AppendTag(p.unknown, f.Number, protowire.BytesType)
	p.unknown = protowire.AppendBytes(p.unknown, b)
	return nil
}
