package flowbin

// WindowLen is the room a Window gives one record.
const WindowLen = 256

// A Window is the room reserved at the end of the output for one record
// of bounded size (OpenWindow), written by index: no capacity check per
// field. Its first two bytes are kept for the frame's length prefix.
type Window [WindowLen]byte

// OpenWindow reserves a Window at the end of b and returns it with the
// offset at which the record's first field goes.
func OpenWindow(b []byte) ([]byte, *Window, int) {
	if cap(b)-len(b) < WindowLen {
		b = append(b[:len(b):len(b)], make([]byte, WindowLen)...)[:len(b)]
	}
	return b, (*Window)(b[len(b) : len(b)+WindowLen]), 2
}

// CloseWindow ends the record written into w up to n (w is the Window
// OpenWindow returned for b): it writes the length prefix and returns b
// with the frame.
func CloseWindow(b []byte, w *Window, n int) []byte {
	body := n - 2
	if body < 1<<7 {
		w[1] = byte(body)
		return append(b, w[1:n]...) // in place: the window is b's tail
	}
	w[0], w[1] = byte(body)|0x80, byte(body>>7)
	return b[:len(b)+n]
}

// Uint1 writes a varint field with a one-byte key at n, unless v is 0,
// and returns the offset after it.
func (w *Window) Uint1(n int, key byte, v uint64) int {
	if v == 0 {
		return n
	}
	w[n] = key
	return w.Varint(n+1, v)
}

// Uint2 writes a varint field with a two-byte key.
func (w *Window) Uint2(n int, key uint16, v uint64) int {
	if v == 0 {
		return n
	}
	w[n], w[n+1] = byte(key), byte(key>>8)
	return w.Varint(n+2, v)
}

// Addr1 writes a bytes field of 4 or 16 bytes with a one-byte key.
func (w *Window) Addr1(n int, key byte, a []byte) int {
	switch len(a) {
	case 4:
		w[n], w[n+1] = key, 4
		*(*[4]byte)(w[n+2 : n+6]) = [4]byte(a)
		return n + 6
	case 16:
		w[n], w[n+1] = key, 16
		*(*[16]byte)(w[n+2 : n+18]) = [16]byte(a)
		return n + 18
	case 0:
		return n
	}
	w[n], w[n+1] = key, byte(len(a))
	return n + 2 + copy(w[n+2:], a)
}

// Const writes c whole (a fixed-size copy) and returns the offset after
// its bytes.
func (w *Window) Const(n int, c *Const) int {
	*(*[ConstLen]byte)(w[n : n+ConstLen]) = c.data
	return n + int(c.n)
}

// Varint writes v at n and returns the offset after it.
func (w *Window) Varint(n int, v uint64) int {
	switch {
	case v < 1<<7:
		w[n] = byte(v)
		return n + 1
	case v < 1<<14:
		w[n], w[n+1] = byte(v)|0x80, byte(v>>7)
		return n + 2
	}
	return n + PutVarint((*[MaxVarintLen]byte)(w[n:n+MaxVarintLen]), v)
}

// ConstLen is the most bytes a Const holds.
const ConstLen = 24

// A Const is a few bytes of output that many records share (a packet's
// type, sequence number and exporter address, a time received), held
// whole for a fixed-size copy.
type Const struct {
	data [ConstLen]byte
	n    uint8
}

// NewConst holds b (at most ConstLen bytes).
func NewConst(b []byte) Const {
	var c Const
	c.n = uint8(copy(c.data[:], b))
	return c
}

// Bytes is what c holds.
func (c *Const) Bytes() []byte { return c.data[:c.n] }

// Put writes c whole at the start of w (at least ConstLen bytes) and
// returns its length.
func (c *Const) Put(w []byte) int {
	*(*[ConstLen]byte)(w[:ConstLen]) = c.data
	return int(c.n)
}
