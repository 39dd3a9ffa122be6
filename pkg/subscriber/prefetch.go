package subscriber

import "unsafe"

// At a million sessions, a lookup that hits misses the CPU caches twice,
// one miss depending on the other (the index slot, then the session): on
// its own that costs more than all the other work on a flow. A caller
// that knows a flow's addresses early can hide that latency behind its
// other work: PrefetchSlot as soon as it reads an address, PrefetchSession
// after some work, Attribute at the end. Both are hints: they change
// nothing, cost a few nanoseconds, and are safe at any time.

// key is the index key of a 4-byte address, 0 when no session can hold it
// (its /16 holds none).
func (t *Table) key(a []byte) uint32 {
	if len(a) != 4 {
		return 0
	}
	k := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	if !t.v4.mayHold(k) {
		return 0
	}
	return k
}

// PrefetchSlot starts fetching the index slot of address a (4 or 16
// bytes; only IPv4 addresses in a /16 that holds sessions are fetched).
func (t *Table) PrefetchSlot(a []byte) {
	k := t.key(a)
	if k == 0 {
		return
	}
	if tb := t.v4.cur.Load(); tb != nil {
		prefetch(uintptr(unsafe.Pointer(&tb.slots[tb.home(k)])))
	}
}

// PrefetchSession starts fetching the newest session of address a: its
// fields and strings, two cache lines. It reads the index slot, which
// PrefetchSlot should have brought in.
func (t *Table) PrefetchSession(a []byte) {
	k := t.key(a)
	if k == 0 {
		return
	}
	tb := t.v4.cur.Load()
	if tb == nil {
		return
	}
	// The home slot only: a probe past it is rare at this load factor.
	slot := &tb.slots[tb.home(k)]
	if slot.key.Load() != k {
		return
	}
	if s := slot.val.Load(); s != nil {
		p := uintptr(unsafe.Pointer(s))
		prefetch(p)
		prefetch(p + 64)
	}
}
