package subscriber

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// addrIndex maps IPv4 addresses (as uint32, 0 never stored) to values,
// for one writer at a time (the caller's lock) and any number of readers
// without a lock.
//
// It is an open-addressing table with linear probing: a miss usually costs
// one cache line, a hit one more for the value. Readers load a slot's key
// and value atomically; a writer publishes a new entry's value before its
// key, and deletes by clearing the value only (the key stays as a
// tombstone, reused if the same key comes back), so a reader never sees a
// key with another key's value. When keys and tombstones fill three
// quarters of the slots the writer builds a new table from the live
// entries and swaps it in; readers still on the old one finish there.
//
// A bitmap of the /16 networks that hold any key answers most misses
// without touching the table: subscriber and NAT pools are a few /16s,
// while the other side of a flow is anywhere. It is 8 KiB, so it stays in
// the CPU's cache; the table, at a million sessions, does not.
type addrIndex[V any] struct {
	cur     atomic.Pointer[indexTable[V]]
	present [1 << 10]atomic.Uint64 // bit n: the /16 n holds a live key
	perNet  []uint32               // live keys by /16; writer only
}

func (x *addrIndex[V]) mayHold(k uint32) bool {
	return x.present[k>>22].Load()&(1<<(k>>16&63)) != 0
}

// count adds d to the live keys of k's /16, keeping the bitmap in step.
func (x *addrIndex[V]) count(k uint32, d int) {
	if x.perNet == nil {
		x.perNet = make([]uint32, 1<<16)
	}
	n := k >> 16
	x.perNet[n] = uint32(int(x.perNet[n]) + d)
	w, bit := &x.present[k>>22], uint64(1)<<(k>>16&63)
	switch {
	case d > 0 && x.perNet[n] == 1:
		w.Or(bit)
	case d < 0 && x.perNet[n] == 0:
		w.And(^bit)
	}
}

type indexTable[V any] struct {
	slots []indexSlot[V]
	mask  uint32
	shift uint8
	used  int // slots with a key, tombstones included
	live  int // slots with a value
}

type indexSlot[V any] struct {
	key atomic.Uint32
	val atomic.Pointer[V]
}

const minIndexSlots = 1 << 10

func newIndexTable[V any](slots int) *indexTable[V] {
	n := max(minIndexSlots, 1<<bits.Len(uint(slots-1)))
	t := &indexTable[V]{slots: make([]indexSlot[V], n), mask: uint32(n - 1), shift: uint8(32 - bits.TrailingZeros(uint(n)))}
	adviseHugePages(unsafe.Pointer(&t.slots[0]), uintptr(n)*unsafe.Sizeof(t.slots[0]))
	return t
}

// home is the first slot probed for k: Fibonacci hashing, so that
// consecutive addresses spread over the table.
func (t *indexTable[V]) home(k uint32) uint32 { return (k * 0x9E3779B1) >> t.shift }

// get returns the value of k, or nil.
func (x *addrIndex[V]) get(k uint32) *V {
	if !x.mayHold(k) {
		return nil
	}
	t := x.cur.Load()
	if t == nil {
		return nil
	}
	for i := t.home(k); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		switch s.key.Load() {
		case k:
			return s.val.Load()
		case 0:
			return nil
		}
	}
}

// set stores v as the value of k (nil deletes it). The caller holds the
// writer lock.
func (x *addrIndex[V]) set(k uint32, v *V) {
	t := x.cur.Load()
	if t == nil {
		if v == nil {
			return
		}
		t = newIndexTable[V](minIndexSlots)
		x.cur.Store(t)
	}
	for i := t.home(k); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		switch s.key.Load() {
		case k:
			old := s.val.Load()
			if old == nil && v != nil {
				t.live++
				x.count(k, 1)
			} else if old != nil && v == nil {
				t.live--
			}
			s.val.Store(v)
			if old != nil && v == nil {
				x.count(k, -1) // after the value is gone: a reader never misses a live key
			}
			return
		case 0:
			if v == nil {
				return
			}
			if (t.used+1)*4 > len(t.slots)*3 {
				x.rebuild(t)
				x.set(k, v)
				return
			}
			x.count(k, 1)  // the /16 first: a reader past it finds the key or nothing
			s.val.Store(v) // the value first: a reader that sees the key sees it
			s.key.Store(k)
			t.used++
			t.live++
			return
		}
	}
}

// rebuild swaps in a table holding t's live entries at most half full.
func (x *addrIndex[V]) rebuild(t *indexTable[V]) {
	n := newIndexTable[V](2 * (t.live + 1))
	for i := range t.slots {
		s := &t.slots[i]
		if v := s.val.Load(); v != nil {
			k := s.key.Load()
			for j := n.home(k); ; j = (j + 1) & n.mask {
				if d := &n.slots[j]; d.key.Load() == 0 {
					d.val.Store(v)
					d.key.Store(k)
					break
				}
			}
			n.used++
			n.live++
		}
	}
	x.cur.Store(n)
}

// reset empties the index; the caller is the writer.
func (x *addrIndex[V]) reset() {
	x.cur.Store(nil)
	for i := range x.present {
		x.present[i].Store(0)
	}
	clear(x.perNet)
}

// len is the number of live entries.
func (x *addrIndex[V]) len() int {
	if t := x.cur.Load(); t != nil {
		return t.live
	}
	return 0
}

// all calls fn for every live entry; the caller holds the writer lock.
func (x *addrIndex[V]) all(fn func(k uint32, v *V)) {
	t := x.cur.Load()
	if t == nil {
		return
	}
	for i := range t.slots {
		s := &t.slots[i]
		if v := s.val.Load(); v != nil {
			fn(s.key.Load(), v)
		}
	}
}

// bytes is the memory of the slots.
func (x *addrIndex[V]) bytes() int {
	if t := x.cur.Load(); t != nil {
		return len(t.slots) * 16
	}
	return 0
}
