package command

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// pipe returns both ends of a pipe, closed when the test ends.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// readBlocked starts a Read on in and returns its result once it returns.
func readBlocked(in io.Reader) <-chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		_, err := in.Read(buf)
		done <- err
	}()
	return done
}

// checkInterrupt: data written before the interrupt is read whole, then a
// Read that waits for more returns ErrInterrupted on Interrupt, and so does
// every later one.
func checkInterrupt(t *testing.T, in *Input, w io.Writer) {
	t.Helper()
	want := bytes.Repeat([]byte("0123456789"), 1000)
	if _, err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(in, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read before the interrupt: %v", err)
	}
	done := readBlocked(in)
	select {
	case err := <-done:
		t.Fatalf("Read returned %v with nothing to read", err)
	case <-time.After(50 * time.Millisecond):
	}
	in.Interrupt()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("interrupted Read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Interrupt did not end a blocked Read")
	}
	if _, err := in.Read(make([]byte, 1)); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Read after Interrupt: %v", err)
	}
}

// TestInputPipe: stdin a pipe in blocking mode, as a shell hands it over
// (the platform's path: reopened or switched on Unix, read ahead elsewhere).
func TestInputPipe(t *testing.T) {
	r, w := pipe(t)
	in := OpenInput(r)
	defer in.Close()
	checkInterrupt(t, in, w)
}

// TestInputReadAhead tests the fallback of systems whose poller cannot
// serve stdin (Windows pipes), on this system's pipe.
func TestInputReadAhead(t *testing.T) {
	r, w := pipe(t)
	a := newAsyncReader(r, 4096)
	in := &Input{r: a, interrupt: a.abandon, release: func() {}}
	checkInterrupt(t, in, w)
}

// TestAsyncReaderData: the read-ahead goroutine hands over every byte in
// order, whatever the read sizes on either side, then the reader's error.
func TestAsyncReaderData(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, size := range []int{1, 7, 4096, 1 << 16} {
		a := newAsyncReader(iotest.HalfReader(bytes.NewReader(data)), size)
		var got bytes.Buffer
		buf := make([]byte, 0, 9999)
		for {
			n, err := a.Read(buf[:1+rng.IntN(cap(buf)-1)])
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("buffer %d: %d bytes, want %d, or different", size, got.Len(), len(data))
		}
		if _, err := a.Read(buf[:1]); err != io.EOF {
			t.Fatalf("after EOF: %v", err)
		}
	}
	boom := errors.New("boom")
	a := newAsyncReader(iotest.DataErrReader(iotest.ErrReader(boom)), 16)
	if _, err := io.ReadAll(a); !errors.Is(err, boom) {
		t.Fatalf("error not passed on: %v", err)
	}
	if err := iotest.TestReader(newAsyncReader(bytes.NewReader(data[:5000]), 512), data[:5000]); err != nil {
		t.Fatal(err)
	}
}

// TestInputRegularFile: a file never blocks; Interrupt ends the reading.
func TestInputRegularFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("hello")
	f.Seek(0, 0)
	in := OpenInput(f)
	defer in.Close()
	if in.r != f {
		t.Fatal("a regular file must be read as it is")
	}
	b := make([]byte, 2)
	if n, err := in.Read(b); n != 2 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	in.Interrupt()
	if _, err := in.Read(b); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("after Interrupt: %v", err)
	}
}

// TestInputNotAFile: an io.Pipe (what in-process tests hand a tool) is
// closed by Interrupt; a reader that cannot block is read as it is.
func TestInputNotAFile(t *testing.T) {
	pr, pw := io.Pipe()
	in := OpenInput(pr)
	go pw.Write([]byte("abc"))
	b := make([]byte, 3)
	if _, err := io.ReadFull(in, b); err != nil || string(b) != "abc" {
		t.Fatalf("%q %v", b, err)
	}
	done := readBlocked(in)
	in.Interrupt()
	if err := <-done; !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted Read: %v", err)
	}
	in = OpenInput(strings.NewReader("xyz"))
	if b, err := io.ReadAll(in); err != nil || string(b) != "xyz" {
		t.Fatalf("%q %v", b, err)
	}
}
