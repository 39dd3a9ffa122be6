//go:build !unix

package command

import "os"

// pollable: Go's poller does not serve an inherited stdin here; Input
// falls back to a read-ahead goroutine.
func pollable(*os.File, os.FileMode) (*os.File, func(), bool) { return nil, nil, false }
