package publish

import "testing"

func TestFreeListFIFO(t *testing.T) {
	var f freeList
	var prs []*pending
	for i := 0; i < 3000; i++ {
		prs = append(prs, f.get())
	}
	for i, pr := range prs {
		pr.seq = uint64(i)
		f.put(pr)
	}
	for i := 0; i < 3000; i++ {
		if pr := f.get(); pr.seq != uint64(i) {
			t.Fatalf("got %d, want %d", pr.seq, i)
		}
	}
	if pr := f.get(); pr.seq != 0 || pr == prs[0] {
		t.Fatal("empty list must allocate")
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
