//go:build !linux

package command

import "io"

// PipeSize is what GrowPipe asks for on Linux.
const PipeSize = 1 << 20

// GrowPipe does nothing here: only Linux lets a process size a pipe
// (F_SETPIPE_SZ). It returns 0.
func GrowPipe(io.Reader) int { return 0 }
