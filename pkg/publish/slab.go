package publish

import (
	"sync"
	"sync/atomic"
)

// Record values are copied out of the reader's buffer (valid only until
// the next Read) into slabs: large byte blocks carved front to back, each
// holding many records. A slab counts the records still in Kafka's hands
// and returns to the pool when the last one is acknowledged, so a
// steady stream copies without allocating.

const (
	slabSize = 256 << 10
	// Values above this get their own allocation rather than wasting a
	// slab's tail.
	maxSlabValue = slabSize / 8
)

type slab struct {
	buf  []byte
	refs atomic.Int32 // records in flight, plus one while it is the current slab
}

// slabs hands out space for record values. alloc is called from the one
// reading goroutine; release from promises on any goroutine.
type slabs struct {
	mu   sync.Mutex
	free []*slab // not a sync.Pool: a GC would empty it and we would re-zero 256 KiB blocks
	cur  *slab
}

func newSlabs() *slabs { return &slabs{} }

// alloc returns an empty slice with capacity n and the slab it lives in
// (nil for a value too large for slabs), holding a reference for the caller.
func (s *slabs) alloc(n int) ([]byte, *slab) {
	if n > maxSlabValue {
		return make([]byte, 0, n), nil
	}
	if s.cur == nil || cap(s.cur.buf)-len(s.cur.buf) < n {
		if s.cur != nil {
			s.release(s.cur)
		}
		s.cur = s.get()
		s.cur.buf = s.cur.buf[:0]
		s.cur.refs.Store(1)
	}
	off := len(s.cur.buf)
	s.cur.buf = s.cur.buf[:off+n]
	s.cur.refs.Add(1)
	return s.cur.buf[off : off : off+n], s.cur
}

// take returns an empty slab of at least n bytes holding one reference
// for the caller; the zero-copy reader reads into it.
func (s *slabs) take(n int) *slab {
	if n > slabSize {
		sl := &slab{buf: make([]byte, 0, n)} // one huge frame; not recycled
		sl.refs.Store(1)
		return sl
	}
	sl := s.get()
	sl.buf = sl.buf[:0]
	sl.refs.Store(1)
	return sl
}

// release drops one reference; the last one recycles the slab.
func (s *slabs) release(sl *slab) {
	if sl != nil && sl.refs.Add(-1) == 0 && cap(sl.buf) == slabSize {
		s.mu.Lock()
		s.free = append(s.free, sl)
		s.mu.Unlock()
	}
}

func (s *slabs) get() *slab {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		sl := s.free[n-1]
		s.free = s.free[:n-1]
		return sl
	}
	return &slab{buf: make([]byte, 0, slabSize)}
}

// freeList recycles pending records first in, first out: promises return
// them roughly in production order, so the reader walks them in order, as
// an array, instead of touching a random one of up to the buffer's worth
// (tens of MB) for each record.
type freeList struct {
	mu         sync.Mutex
	ring       []*pending // len is a power of two
	head, tail uint64     // tail-head items, at ring[i&(len-1)]
}

func (f *freeList) get() *pending {
	f.mu.Lock()
	if f.head != f.tail {
		pr := f.ring[f.head&uint64(len(f.ring)-1)]
		f.head++
		f.mu.Unlock()
		return pr
	}
	f.mu.Unlock()
	return new(pending)
}

func (f *freeList) put(pr *pending) {
	f.mu.Lock()
	if f.tail-f.head == uint64(len(f.ring)) {
		f.grow()
	}
	f.ring[f.tail&uint64(len(f.ring)-1)] = pr
	f.tail++
	f.mu.Unlock()
}

func (f *freeList) grow() {
	ring := make([]*pending, max(1024, 2*len(f.ring)))
	n := f.tail - f.head
	for i := uint64(0); i < n; i++ {
		ring[i] = f.ring[(f.head+i)&uint64(len(f.ring)-1)]
	}
	f.ring, f.head, f.tail = ring, 0, n
}

// close drops the current slab's own reference.
func (s *slabs) close() {
	if s.cur != nil {
		s.release(s.cur)
		s.cur = nil
	}
}
