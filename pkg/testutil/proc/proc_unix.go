//go:build unix

package proc

import (
	"time"

	"golang.org/x/sys/unix"
)

func processCPU() time.Duration { return rusage(unix.RUSAGE_SELF) }

// rusage is the user and system CPU time of who (RUSAGE_SELF, ...).
func rusage(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
