package subscriber

import (
	"hash/maphash"
	"math/bits"
)

// idIndex finds a session by NAS and Acct-Session-Id. Only the writer uses
// it. It stores bare pointers (8 bytes a slot, against 32 for a Go map
// keyed by a struct holding the id) and compares keys in the sessions.
type idIndex struct {
	seed  maphash.Seed
	slots []*Session
	n     int
}

func newIDIndex() idIndex { return idIndex{seed: maphash.MakeSeed(), slots: make([]*Session, 1024)} }

func (x *idIndex) home(nas uint32, id string) int {
	h := maphash.String(x.seed, id) ^ (uint64(nas) * 0x9E3779B97F4A7C15)
	return int(h & uint64(len(x.slots)-1))
}

func (x *idIndex) get(nas uint32, id string) *Session {
	mask := len(x.slots) - 1
	for i := x.home(nas, id); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == nil {
			return nil
		}
		if s.nas == nas && s.SessionID() == id {
			return s
		}
	}
}

// put stores s, replacing the session with the same NAS and id, if any.
func (x *idIndex) put(s *Session) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.resize(2 * len(x.slots))
	}
	mask := len(x.slots) - 1
	id := s.SessionID()
	for i := x.home(s.nas, id); ; i = (i + 1) & mask {
		c := x.slots[i]
		if c == nil {
			x.slots[i] = s
			x.n++
			return
		}
		if c.nas == s.nas && c.SessionID() == id {
			x.slots[i] = s
			return
		}
	}
}

// remove deletes s (only s itself, not another session with its key),
// shifting later entries of the probe sequence back so that no tombstone
// is needed.
func (x *idIndex) remove(s *Session) {
	mask := len(x.slots) - 1
	i := x.home(s.nas, s.SessionID())
	for ; x.slots[i] != s; i = (i + 1) & mask {
		if x.slots[i] == nil {
			return
		}
	}
	x.slots[i] = nil
	x.n--
	for j := (i + 1) & mask; x.slots[j] != nil; j = (j + 1) & mask {
		c := x.slots[j]
		h := x.home(c.nas, c.SessionID())
		// c may move to the hole at i if its home is not in (i, j].
		if (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			x.slots[i], x.slots[j] = c, nil
			i = j
		}
	}
	if len(x.slots) > 1024 && x.n*8 < len(x.slots) {
		x.resize(len(x.slots) / 2)
	}
}

func (x *idIndex) resize(n int) {
	old := x.slots
	x.slots = make([]*Session, max(1024, 1<<bits.Len(uint(n-1))))
	x.n = 0
	for _, s := range old {
		if s != nil {
			x.put(s)
		}
	}
}

func (x *idIndex) all(fn func(*Session)) {
	for _, s := range x.slots {
		if s != nil {
			fn(s)
		}
	}
}

func (x *idIndex) bytes() int { return len(x.slots) * 8 }
