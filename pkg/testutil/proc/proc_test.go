package proc

import (
	"runtime"
	"testing"
	"time"
)

// spin burns CPU on this thread for about d of wall time.
func spin(d time.Duration) (x uint64) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 10000 {
			x += uint64(i) * x
		}
	}
	return x
}

// TestCPUGrows: both clocks advance while the thread works, and the
// thread's never by more than the process's.
func TestCPUGrows(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := CPU(), ThreadCPU()
	spin(50 * time.Millisecond)
	p, th := CPU()-p0, ThreadCPU()-t0
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
		if p <= 0 {
			t.Fatalf("process CPU did not grow: %s", p)
		}
	}
	if runtime.GOOS == "linux" && (th <= 0 || th > p+10*time.Millisecond) {
		t.Fatalf("thread CPU %s, process %s", th, p)
	}
}
