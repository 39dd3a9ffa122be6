//go:build unix

package flowgen

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) of the process so far:
// benchmarks report it per record because wall time on a shared machine
// counts other processes' work too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
