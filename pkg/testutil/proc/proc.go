// Package proc measures what a test or benchmark costs this process: CPU
// time, which unlike wall time does not count the work of other processes
// on a shared machine. Where a measure is not available it returns 0, and
// callers report no CPU figure.
package proc

import "time"

// CPU is the CPU time (user and system) the process has used so far.
func CPU() time.Duration { return processCPU() }

// ThreadCPU is the CPU time of the calling OS thread (Linux); lock the
// goroutine to its thread (runtime.LockOSThread) around what is measured.
// Elsewhere it is 0.
func ThreadCPU() time.Duration { return threadCPU() }
