package publish

import (
	"sync"
	"sync/atomic"
)

// Record values are copied out of the reader's buffer (valid only until
// the next Read) into slabs, or read straight into them: large byte blocks
// carved front to back, each holding many records. A slab also holds the
// pending records (kgo.Record and our bookkeeping) of its values, taken in
// order, so a record costs neither an allocation nor a free-list lock. A
// slab counts the records still in Kafka's hands and returns to the pool,
// with its pending records, when the last one is acknowledged, so a steady
// stream runs without allocating.

const (
	slabSize = 256 << 10
	// Values above this get their own allocation rather than wasting a
	// slab's tail.
	maxSlabValue = slabSize / 8
)

type slab struct {
	buf  []byte
	refs atomic.Int32 // records in flight, plus one while it is the current slab

	// Pending records of the values in buf, in blocks so that growing
	// never moves one that franz-go holds; kept when the slab is reused.
	blocks []*recBlock
	nrec   int // taken since the slab was (re)started
}

// recBlockLen pending records are allocated at once: about one block per
// 40 KiB of 150-byte values.
const recBlockLen = 256

type recBlock [recBlockLen]pending

// next returns the slab's next unused pending record. Only the reading
// goroutine calls it, on a slab it holds a reference to.
func (sl *slab) next() *pending {
	b, i := sl.nrec/recBlockLen, sl.nrec%recBlockLen
	if b == len(sl.blocks) {
		sl.blocks = append(sl.blocks, new(recBlock))
	}
	sl.nrec++
	return &sl.blocks[b][i]
}

// restart empties a slab taken from the pool, with one reference for the
// taker.
func (sl *slab) restart() {
	sl.buf = sl.buf[:0]
	sl.nrec = 0
	sl.refs.Store(1)
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
		s.cur.restart()
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
	sl.restart()
	return sl
}

// release drops one reference; the last one recycles the slab, and with
// it the pending records taken from it.
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

// close drops the current slab's own reference.
func (s *slabs) close() {
	if s.cur != nil {
		s.release(s.cur)
		s.cur = nil
	}
}
