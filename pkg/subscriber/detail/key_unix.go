//go:build unix

package detail

import (
	"os"
	"syscall"
)

// keyOf identifies a file by device and inode, which a rename keeps.
func keyOf(st os.FileInfo) fileKey {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return fileKey{dev: uint64(s.Dev), ino: uint64(s.Ino)} //nolint:unconvert // types differ by platform
	}
	return fileKey{}
}
