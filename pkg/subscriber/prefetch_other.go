//go:build !amd64

package subscriber

// prefetch is a hint only, done where it is implemented (amd64).
func prefetch(uintptr) {}
