package subscriber

import (
	"syscall"
	"unsafe"
)

const hugePage = 2 << 20

// adviseHugePages asks the kernel to back the whole 2 MiB pages inside
// [p, p+n) with transparent huge pages (where THP is in "madvise" mode, as
// on Debian). A lookup in a table of millions of sessions misses the cache
// anyway; with 4 KiB pages it misses the TLB too, and a page walk (two
// dimensional under a hypervisor) costs as much again. Call it before the
// memory is first touched. Failure only costs speed.
func adviseHugePages(p unsafe.Pointer, n uintptr) {
	start := (uintptr(p) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(p) + n) &^ (hugePage - 1)
	if end <= start {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, start, end-start, 14) // MADV_HUGEPAGE
}
