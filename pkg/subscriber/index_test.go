package subscriber

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestAddrIndexMatchesMap applies random sets and deletes, with keys
// crowded into few /16s and tables that grow and rebuild, and compares
// every key with a map.
func TestAddrIndexMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var x addrIndex[int]
	want := map[uint32]*int{}
	key := func() uint32 { return uint32(1+rng.IntN(4))<<16 | uint32(rng.IntN(3000)) }
	for i := range 200_000 {
		k := key()
		if rng.IntN(3) == 0 {
			x.set(k, nil)
			delete(want, k)
		} else {
			v := i
			x.set(k, &v)
			want[k] = &v
		}
	}
	for k := uint32(1 << 16); k < 6<<16; k++ {
		if got := x.get(k); got != want[k] {
			t.Fatalf("key %#x: got %v, want %v", k, got, want[k])
		}
	}
	if x.len() != len(want) {
		t.Fatalf("len %d, want %d", x.len(), len(want))
	}
	n := 0
	x.all(func(k uint32, v *int) {
		n++
		if want[k] != v {
			t.Fatalf("all: key %#x", k)
		}
	})
	if n != len(want) {
		t.Fatalf("all: %d entries", n)
	}
	// The /16 bitmap follows the live keys.
	for net := uint32(0); net < 8; net++ {
		live := false
		for k := range want {
			live = live || k>>16 == net
		}
		if x.mayHold(net<<16) != live {
			t.Errorf("/16 %d: bitmap %v, live keys %v", net, x.mayHold(net<<16), live)
		}
	}
}

// TestAddrIndexConcurrentReaders reads while a writer churns (run with
// -race): a key that is always present is always found, a key never set
// never is.
func TestAddrIndexConcurrentReaders(t *testing.T) {
	var x addrIndex[int]
	stable := 42
	x.set(0x0a000001, &stable)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if x.get(0x0a000001) != &stable {
					t.Error("stable key lost")
					return
				}
				if x.get(0x0b000001) != nil {
					t.Error("absent key found")
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range 100_000 {
		v := i
		k := 0x0a000002 + uint32(rng.IntN(50_000))
		if i%3 == 0 {
			x.set(k, nil)
		} else {
			x.set(k, &v)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestIDIndex(t *testing.T) {
	x := newIDIndex()
	rng := rand.New(rand.NewPCG(3, 3))
	want := map[[2]string]*Session{}
	names := []string{"a", "b", "c", "0000001", "0000002", "longer-session-id-0001"}
	for i := range 50_000 {
		nas := uint32(rng.IntN(3))
		id := names[rng.IntN(len(names))] + string(rune('a'+rng.IntN(20)))
		k := [2]string{string(rune('0' + nas)), id}
		if old, ok := want[k]; ok && rng.IntN(2) == 0 {
			x.remove(old)
			delete(want, k)
			continue
		}
		s := newSession("u", id, "")
		s.nas = nas
		s.start.Store(int64(i))
		x.put(s)
		want[k] = s
	}
	for k, s := range want {
		if got := x.get(uint32(k[0][0]-'0'), k[1]); got != s {
			t.Fatalf("%v: got %p, want %p", k, got, s)
		}
	}
	if x.n != len(want) {
		t.Fatalf("n %d, want %d", x.n, len(want))
	}
}
