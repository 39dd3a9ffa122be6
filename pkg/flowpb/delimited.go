//go:build !fieldgen

package flowpb

import "github.com/flowpipe/flowpipe/pkg/wire"

// AppendDelimited appends m with its varint length prefix, as protodelim
// and goflow2's binary format write it.
func (m *FlowMessage) AppendDelimited(b []byte) []byte {
	// Reserve two prefix bytes (bodies of 128 B to 16 KiB, the usual case),
	// write the body after them, then close the gap or widen it.
	start := len(b)
	b = append(b, 0, 0)
	b = m.AppendMarshal(b)
	n := len(b) - start - 2
	switch {
	case n < 1<<7:
		b[start] = byte(n)
		copy(b[start+1:], b[start+2:])
		return b[:len(b)-1]
	case n < 1<<14:
		b[start] = byte(n) | 0x80
		b[start+1] = byte(n >> 7)
		return b
	default:
		extra := wire.SizeVarint(uint64(n)) - 2
		b = append(b, make([]byte, extra)...)
		copy(b[start+2+extra:], b[start+2:len(b)-extra])
		wire.AppendVarint(b[start:start], uint64(n))
		return b
	}
}
