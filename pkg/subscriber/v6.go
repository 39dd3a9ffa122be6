package subscriber

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sync/atomic"
	"unsafe"
)

// v6Key is an IPv6 prefix as the index keys it: its address's two
// halves, masked to its length, and the length.
type v6Key struct {
	hi, lo uint64
	bits   uint8
}

func keyOf(p netip.Prefix) v6Key {
	a := p.Masked().Addr().As16()
	return v6Key{hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:]), bits: uint8(p.Bits())}
}

func (k v6Key) prefix() netip.Prefix {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], k.hi)
	binary.BigEndian.PutUint64(a[8:], k.lo)
	return netip.PrefixFrom(netip.AddrFrom16(a), int(k.bits))
}

// mask keeps the first n bits of the address hi:lo.
func mask(hi, lo uint64, n uint8) v6Key {
	switch {
	case n == 0:
		return v6Key{}
	case n <= 64:
		return v6Key{hi: hi &^ (1<<(64-n) - 1), bits: n}
	case n < 128:
		return v6Key{hi: hi, lo: lo &^ (1<<(128-n) - 1), bits: n}
	}
	return v6Key{hi: hi, lo: lo, bits: 128}
}

// encodedLen is the size of k in a session's inline buffer: its length,
// the high half, and the low half only for prefixes longer than /64.
func (k v6Key) encodedLen() int {
	if k.bits > 64 {
		return 17
	}
	return 9
}

func (k v6Key) appendTo(b []byte) []byte {
	b = append(b, k.bits)
	b = binary.BigEndian.AppendUint64(b, k.hi)
	if k.bits > 64 {
		b = binary.BigEndian.AppendUint64(b, k.lo)
	}
	return b
}

// decodeKey reads one key of a session's buffer and returns the rest.
func decodeKey(b []byte) (v6Key, []byte) {
	k := v6Key{bits: b[0], hi: binary.BigEndian.Uint64(b[1:9])}
	if k.bits > 64 {
		k.lo = binary.BigEndian.Uint64(b[9:17])
		return k, b[17:]
	}
	return k, b[9:]
}

// v6Older holds, for each prefix of a session (by its position in the
// session's list), the session that held the prefix before, older start.
// Most prefixes never change hands within the history: the struct is
// only allocated for a session that has an older holder.
type v6Older struct {
	s [MaxPrefixes]atomic.Pointer[Session]
}

// v6Index finds the newest session that held an IPv6 prefix, by longest
// prefix match: one hash table per prefix length in use (a BNG hands out
// a /64 and a /56, perhaps a /128 too), tried longest first. Like the
// IPv4 index, readers take no lock and the writer publishes a value
// before its key; its tables hold 16 bytes a prefix (24 beyond /64), the
// sessions hold their prefixes inline and their history in v6Older, so
// that a dual-stack session costs little more than an IPv4 one.
//
// A bitmap of hashed /32s in front answers most misses (the far side of
// a flow, anywhere in the IPv6 space) without touching the tables,
// unless a prefix shorter than /32 is held.
type v6Index struct {
	tabs    [129]atomic.Pointer[v6Table]
	lens    atomic.Pointer[[]uint8] // lengths in use, longest first
	perLen  [129]int                // writer only
	present [1 << 10]atomic.Uint64  // bit n: a prefix covers a /32 hashing to n
	perNet  []uint32                // prefixes by hashed /32; writer only
	short   atomic.Int64            // prefixes shorter than /32
	n       atomic.Int64            // prefixes held: 0 lets lookups skip the rest
}

func net32(hi uint64) uint32 { return uint32((hi>>32)*0x9E3779B1) >> 16 }

func (x *v6Index) mayHold(hi uint64) bool {
	if x.short.Load() > 0 {
		return true
	}
	n := net32(hi)
	return x.present[n>>6].Load()&(1<<(n&63)) != 0
}

// count adds d to the prefixes of k's length and /32, keeping the bitmap
// and the list of lengths in step.
func (x *v6Index) count(k v6Key, d int) {
	if k.bits < 32 {
		x.short.Add(int64(d))
	} else {
		if x.perNet == nil {
			x.perNet = make([]uint32, 1<<16)
		}
		n := net32(k.hi)
		x.perNet[n] = uint32(int(x.perNet[n]) + d)
		w, bit := &x.present[n>>6], uint64(1)<<(n&63)
		switch {
		case d > 0 && x.perNet[n] == 1:
			w.Or(bit)
		case d < 0 && x.perNet[n] == 0:
			w.And(^bit)
		}
	}
	x.perLen[k.bits] += d
	if c := x.perLen[k.bits]; (d > 0 && c == 1) || (d < 0 && c == 0) {
		var lens []uint8
		for l := 128; l >= 0; l-- {
			if x.perLen[l] > 0 {
				lens = append(lens, uint8(l))
			}
		}
		x.lens.Store(&lens)
	}
	x.n.Add(int64(d))
}

// get returns the newest session of prefix k, or nil.
func (x *v6Index) get(k v6Key) *Session {
	if t := x.tabs[k.bits].Load(); t != nil {
		return t.get(k)
	}
	return nil
}

// set makes s the newest session of k (nil: k is held no more). The
// caller is the writer.
func (x *v6Index) set(k v6Key, s *Session) {
	t := x.tabs[k.bits].Load()
	if t == nil {
		if s == nil {
			return
		}
		t = newV6Table(minIndexSlots, k.bits > 64)
		x.tabs[k.bits].Store(t)
	}
	switch old := t.set(k, s, x); {
	case old == nil && s != nil:
		x.count(k, 1)
	case old != nil && s == nil:
		x.count(k, -1) // after the value is gone: a reader never misses a live key
	}
}

// lookup returns the session of the longest prefix of a held at time at:
// a longer prefix free then gives way to a shorter one that was held.
func (x *v6Index) lookup(a netip.Addr, at int64) *Session {
	if x.n.Load() == 0 || !a.Is6() {
		return nil
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	if !x.mayHold(hi) {
		return nil
	}
	lens := x.lens.Load()
	if lens == nil {
		return nil
	}
	for _, l := range *lens {
		k := mask(hi, lo, l)
		s := x.get(k)
		for s != nil {
			if at >= s.start.Load() {
				if at < s.end.Load() {
					return s
				}
				break // free then: a shorter prefix may have been held
			}
			s = s.olderOn(k)
		}
	}
	return nil
}

// reset empties the index; the caller is the writer.
func (x *v6Index) reset() {
	for i := range x.tabs {
		x.tabs[i].Store(nil)
		x.perLen[i] = 0
	}
	x.lens.Store(nil)
	for i := range x.present {
		x.present[i].Store(0)
	}
	clear(x.perNet)
	x.short.Store(0)
	x.n.Store(0)
}

// bytes is the memory of the tables.
func (x *v6Index) bytes() int {
	n := 0
	for i := range x.tabs {
		if t := x.tabs[i].Load(); t != nil {
			n += len(t.slots)*int(unsafe.Sizeof(t.slots[0])) + len(t.lo)*8
		}
	}
	return n
}

// v6Table is an open-addressing table of the prefixes of one length, as
// indexTable is for IPv4: linear probing, tombstones, rebuilt when keys
// and tombstones fill three quarters of it. The high half of a key is
// stored xor v6Occupied, so that 0 marks an empty slot (a key whose high
// half is v6Occupied, in the unassigned 5555::/16, is never found).
// Prefixes longer than /64 keep their low halves beside, in lo.
type v6Table struct {
	slots []v6Slot
	lo    []atomic.Uint64
	n     uint64 // len(slots)
	used  int
	live  int
}

type v6Slot struct {
	hi  atomic.Uint64
	val atomic.Pointer[Session]
}

const v6Occupied = 0x5555_5555_5555_5555

func newV6Table(slots int, long bool) *v6Table {
	n := max(minIndexSlots, slots)
	t := &v6Table{slots: make([]v6Slot, n), n: uint64(n)}
	if long {
		t.lo = make([]atomic.Uint64, n)
	}
	adviseHugePages(unsafe.Pointer(&t.slots[0]), uintptr(n)*unsafe.Sizeof(t.slots[0]))
	return t
}

// home and next are as indexTable's.
func (t *v6Table) home(k v6Key) uint64 {
	hi, _ := bits.Mul64((k.hi^bits.RotateLeft64(k.lo, 29))*0x9E3779B97F4A7C15, t.n)
	return hi
}

func (t *v6Table) next(i uint64) uint64 {
	if i++; i == t.n {
		return 0
	}
	return i
}

func (t *v6Table) get(k v6Key) *Session {
	want := k.hi ^ v6Occupied
	for i := t.home(k); ; i = t.next(i) {
		s := &t.slots[i]
		switch s.hi.Load() {
		case want:
			if t.lo == nil || t.lo[i].Load() == k.lo {
				return s.val.Load()
			}
		case 0:
			return nil
		}
	}
}

// set stores s as k's value and returns the value it replaced. It may
// swap a rebuilt table into x.
func (t *v6Table) set(k v6Key, s *Session, x *v6Index) *Session {
	want := k.hi ^ v6Occupied
	for i := t.home(k); ; i = t.next(i) {
		slot := &t.slots[i]
		switch slot.hi.Load() {
		case want:
			if t.lo != nil && t.lo[i].Load() != k.lo {
				continue
			}
			old := slot.val.Load()
			if old == nil && s != nil {
				t.live++
			} else if old != nil && s == nil {
				t.live--
			}
			slot.val.Store(s)
			return old
		case 0:
			if s == nil {
				return nil
			}
			if (t.used+1)*4 > len(t.slots)*3 {
				n := t.rebuilt()
				x.tabs[k.bits].Store(n)
				return n.set(k, s, x)
			}
			slot.val.Store(s) // the value first: a reader that sees the key sees it
			if t.lo != nil {
				t.lo[i].Store(k.lo)
			}
			slot.hi.Store(want)
			t.used++
			t.live++
			return nil
		}
	}
}

// rebuilt is a table holding t's live entries, half full.
func (t *v6Table) rebuilt() *v6Table {
	n := newV6Table(2*(t.live+1), t.lo != nil)
	for i := range t.slots {
		s := &t.slots[i]
		v := s.val.Load()
		if v == nil {
			continue
		}
		k := v6Key{hi: s.hi.Load() ^ v6Occupied}
		if t.lo != nil {
			k.lo = t.lo[i].Load()
		}
		for j := n.home(k); ; j = n.next(j) {
			if d := &n.slots[j]; d.hi.Load() == 0 {
				d.val.Store(v)
				if n.lo != nil {
					n.lo[j].Store(k.lo)
				}
				d.hi.Store(k.hi ^ v6Occupied)
				break
			}
		}
		n.used++
		n.live++
	}
	return n
}

// v6Keys are the session's prefixes, decoded from its buffer into buf.
func (s *Session) v6Keys(buf *[MaxPrefixes]v6Key) []v6Key {
	b := s.v6Bytes()
	n := 0
	for len(b) > 0 && n < MaxPrefixes {
		buf[n], b = decodeKey(b)
		n++
	}
	return buf[:n]
}

// v6Pos is the position of k in the session's prefixes, -1 if it holds
// no such prefix.
func (s *Session) v6Pos(k v6Key) int {
	b := s.v6Bytes()
	for i := 0; len(b) > 0; i++ {
		var c v6Key
		c, b = decodeKey(b)
		if c == k {
			return i
		}
	}
	return -1
}

// olderOn is the session that held prefix k before s.
func (s *Session) olderOn(k v6Key) *Session {
	o := s.older6.Load()
	if o == nil {
		return nil
	}
	if i := s.v6Pos(k); i >= 0 {
		return o.s[i].Load()
	}
	return nil
}

// setOlderOn makes o the session that held prefix k before s; the caller
// is the writer.
func (s *Session) setOlderOn(k v6Key, o *Session) {
	i := s.v6Pos(k)
	if i < 0 {
		return
	}
	old := s.older6.Load()
	if old == nil {
		if o == nil {
			return
		}
		old = new(v6Older)
		s.older6.Store(old)
	}
	old.s[i].Store(o)
}
