package flowgen

import (
	"math/bits"
	"math/rand/v2"
)

// rng draws from a PCG source exactly as rand.Rand does (same calls, same
// numbers, so a seed keeps naming the same packets), without rand.Rand's
// interface call per draw: the PCG step inlines into the callers.
type rng struct{ src rand.PCG }

func newRNG(seed uint64) rng {
	// The second PCG word is fixed so that one Seed names one stream.
	return rng{*rand.NewPCG(seed, 0x666c6f7767656e)}
}

func (r *rng) uint64() uint64 { return r.src.Uint64() }

// uint32 is rand.Rand.Uint32.
func (r *rng) uint32() uint32 { return uint32(r.src.Uint64() >> 32) }

// float64 is rand.Rand.Float64.
func (r *rng) float64() float64 { return float64(r.src.Uint64()<<11>>11) / (1 << 53) }

// intN is rand.Rand.IntN: a number in [0, n), n > 0.
func (r *rng) intN(n int) int { return int(r.uint64n(uint64(n))) }

// uint32N is rand.Rand.Uint32N: a number in [0, n), n > 0.
func (r *rng) uint32N(n uint32) uint32 { return uint32(r.uint64n(uint64(n))) }

// uint64n is rand.Rand's uint64n on 64-bit platforms (its 32-bit variant
// returns the same numbers): a mask for powers of two, else Lemire's
// multiply-shift with rejection.
func (r *rng) uint64n(n uint64) uint64 {
	if n&(n-1) == 0 {
		return r.src.Uint64() & (n - 1)
	}
	hi, lo := bits.Mul64(r.src.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.src.Uint64(), n)
		}
	}
	return hi
}
