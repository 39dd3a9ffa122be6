package proc

import (
	"time"

	"golang.org/x/sys/unix"
)

func threadCPU() time.Duration { return rusage(unix.RUSAGE_THREAD) }
