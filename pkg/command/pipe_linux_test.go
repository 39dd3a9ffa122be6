package command

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGrowPipe: a pipe is enlarged (unless this user's pipe limits forbid
// it, when it keeps its size); a regular file is left alone.
func TestGrowPipe(t *testing.T) {
	r, _ := pipe(t)
	before, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := GrowPipe(r)
	after, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != after || after < before {
		t.Fatalf("GrowPipe = %d; size %d before, %d after", got, before, after)
	}
	if os.Geteuid() == 0 && after < PipeSize {
		t.Fatalf("as root the pipe should reach %d, got %d", PipeSize, after)
	}
	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := GrowPipe(f); n != 0 {
		t.Fatalf("GrowPipe(file) = %d, want 0", n)
	}
	if n := GrowPipe(strings.NewReader("x")); n != 0 {
		t.Fatalf("GrowPipe(reader) = %d, want 0", n)
	}
}
