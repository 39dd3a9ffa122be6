//go:build unix && !linux

package command

import "os"

// reopenNonblocking: /dev/fd/N on the BSDs and macOS duplicates the
// descriptor instead of opening the file anew, so the mode could not be
// changed without touching the shared one.
func reopenNonblocking(*os.File) (*os.File, bool) { return nil, false }
