//go:build !unix

package flowgen

import "time"

// cpuTime is not available here: benchmarks report no CPU time.
func cpuTime() time.Duration { return 0 }
