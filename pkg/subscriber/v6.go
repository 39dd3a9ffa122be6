package subscriber

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gaissmai/bart"
)

// v6Index finds the chain of sessions of the longest IPv6 prefix held.
// The prefixes are in a bart table changed in place under mu; lookups
// hold the read lock only for the trie walk (tens of nanoseconds) and
// writers the write lock only to add or remove a prefix (a microsecond or
// so), never while a session's times or chains change: those are atomic,
// as for IPv4. (A persistent trie, copied on every change, would take no
// lock but costs hundreds of microseconds per change at a million
// prefixes.)
type v6Index struct {
	mu  sync.RWMutex
	tbl bart.Table[*v6Head]
	n   atomic.Int64 // prefixes held: 0 lets IPv6 lookups skip the lock
}

// v6Head is the chain of sessions that held one IPv6 prefix, newest first.
type v6Head struct{ head atomic.Pointer[v6Link] }

// head returns the chain of p, creating it; the caller is the writer.
func (x *v6Index) head(p netip.Prefix) *v6Head {
	x.mu.RLock()
	h, ok := x.tbl.Get(p)
	x.mu.RUnlock()
	if ok {
		return h
	}
	h = &v6Head{}
	x.mu.Lock()
	x.tbl.Insert(p, h)
	x.mu.Unlock()
	x.n.Add(1)
	return h
}

// get returns the chain of p, if any.
func (x *v6Index) get(p netip.Prefix) (*v6Head, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.tbl.Get(p)
}

// remove drops p; the caller is the writer.
func (x *v6Index) remove(p netip.Prefix) {
	x.mu.Lock()
	_, ok := x.tbl.Get(p)
	x.tbl.Delete(p)
	x.mu.Unlock()
	if ok {
		x.n.Add(-1)
	}
}

// lookup returns the session of the longest prefix of a held at time at:
// a longer prefix free then gives way to a shorter one that was held.
func (x *v6Index) lookup(a netip.Addr, at int64) *Session {
	if x.n.Load() == 0 || !a.IsValid() {
		return nil
	}
	q := netip.PrefixFrom(a, 128)
	for {
		x.mu.RLock()
		p, h, ok := x.tbl.LookupPrefixLPM(q)
		x.mu.RUnlock()
		if !ok {
			return nil
		}
		if s := h.at(at); s != nil {
			return s
		}
		if p.Bits() == 0 {
			return nil
		}
		q = netip.PrefixFrom(a, p.Bits()-1)
	}
}

func (h *v6Head) at(at int64) *Session {
	for l := h.head.Load(); l != nil; l = l.older.Load() {
		s := l.s.Load()
		if at >= s.start.Load() {
			if at < s.end.Load() {
				return s
			}
			return nil
		}
	}
	return nil
}

// reset empties the index; the caller is the writer.
func (x *v6Index) reset() {
	x.mu.Lock()
	x.tbl = bart.Table[*v6Head]{}
	x.mu.Unlock()
	x.n.Store(0)
}
