package subscriber

// prefetch asks the CPU to bring the cache line at addr into its caches,
// without waiting for it (PREFETCHT0). Any address is allowed: a prefetch
// never faults.
//
//go:noescape
func prefetch(addr uintptr)
