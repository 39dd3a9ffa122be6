//go:build !linux

package subscriber

import "unsafe"

func adviseHugePages(unsafe.Pointer, uintptr) {}
