package publish

import "testing"

// TestSlabPendingRecords: a slab hands out distinct pending records that
// never move as it grows (franz-go holds pointers to them), and reuses
// them, without allocating, once the slab comes back from the pool.
func TestSlabPendingRecords(t *testing.T) {
	s := newSlabs()
	sl := s.take(slabSize)
	const n = 3*recBlockLen + 1
	prs := make([]*pending, n)
	seen := map[*pending]bool{}
	for i := range prs {
		prs[i] = sl.next()
		if seen[prs[i]] {
			t.Fatalf("record %d handed out twice", i)
		}
		seen[prs[i]] = true
		prs[i].seq = uint64(i)
	}
	for i, pr := range prs {
		if got := &sl.blocks[i/recBlockLen][i%recBlockLen]; got != pr || pr.seq != uint64(i) {
			t.Fatalf("record %d moved or was overwritten", i)
		}
	}
	sl.refs.Add(n) // one per record, as the reader takes them
	for range n {
		s.release(sl)
	}
	if len(s.free) != 0 {
		t.Fatal("recycled while the taker still holds it")
	}
	s.release(sl)
	if len(s.free) != 1 {
		t.Fatal("not recycled after the last release")
	}
	again := s.take(slabSize)
	if again != sl || again.next() != prs[0] || again.refs.Load() != 1 {
		t.Fatal("a recycled slab must start over with its own records")
	}
	if allocs := testing.AllocsPerRun(100, func() { again.nrec = 0; _ = again.next() }); allocs != 0 {
		t.Fatalf("next on a reused slab: %v allocs", allocs)
	}
}

func TestSlabsRecycle(t *testing.T) {
	s := newSlabs()
	var held []*slab
	for i := 0; i < 3000; i++ { // several slabs' worth of 200-byte values
		buf, sl := s.alloc(200)
		if cap(buf) != 200 || len(buf) != 0 {
			t.Fatalf("alloc: len %d cap %d", len(buf), cap(buf))
		}
		held = append(held, sl)
	}
	big, sl := s.alloc(maxSlabValue + 1)
	if sl != nil || cap(big) != maxSlabValue+1 {
		t.Fatal("large values get their own allocation")
	}
	s.close()
	for _, sl := range held {
		s.release(sl)
	}
	if len(s.free) < 2 {
		t.Fatalf("%d slabs recycled", len(s.free))
	}
	for _, sl := range s.free {
		if sl.refs.Load() != 0 {
			t.Fatal("recycled slab still referenced")
		}
	}
}
