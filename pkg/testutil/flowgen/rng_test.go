package flowgen

import (
	"math/rand/v2"
	"testing"
)

// TestRNGMatchesRand checks that rng draws what rand.Rand draws from the
// same PCG seed, call for call, so that seeds keep naming the same packets.
// The bounds include powers of two (masked) and ones near 2^63, which
// reject half of the draws.
func TestRNGMatchesRand(t *testing.T) {
	bounds := []uint64{1, 2, 3, 16, 20, 254, 1000, 28232, 64495, 1 << 20, 4199999999 - 131072,
		1<<63 - 1, 1<<63 + 1, 1<<64 - 1}
	for seed := range uint64(4) {
		r := newRNG(seed)
		want := rand.New(rand.NewPCG(seed, 0x666c6f7767656e))
		for i := range 20000 {
			n := bounds[i%len(bounds)]
			var got, exp uint64
			switch i % 5 {
			case 0:
				got, exp = r.uint64n(n), want.Uint64N(n)
			case 1:
				got, exp = uint64(r.intN(int(n&(1<<62-1)|1))), uint64(want.IntN(int(n&(1<<62-1)|1)))
			case 2:
				got, exp = uint64(r.uint32N(uint32(n)|1)), uint64(want.Uint32N(uint32(n)|1))
			case 3:
				got, exp = uint64(r.uint32()), uint64(want.Uint32())
			default:
				got, exp = uint64(r.float64()*(1<<53)), uint64(want.Float64()*(1<<53))
			}
			if got != exp {
				t.Fatalf("seed %d, draw %d (kind %d, bound %d): got %d, rand.Rand %d", seed, i, i%5, n, got, exp)
			}
		}
		if r.uint64() != want.Uint64() {
			t.Fatalf("seed %d: streams diverged", seed)
		}
	}
}
