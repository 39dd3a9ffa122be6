//go:build !unix

package detail

import (
	"hash/crc64"
	"os"
)

// keyOf identifies a file by its name where there are no inodes: a
// renamed file is then read again from its start.
func keyOf(st os.FileInfo) fileKey {
	return fileKey{ino: crc64.Checksum([]byte(st.Name()), crcTable)}
}
