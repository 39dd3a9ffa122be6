package command

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInterrupted is what Input.Read returns once Interrupt was called.
var ErrInterrupted = errors.New("command: input interrupted")

// Input is a tool's standard input made interruptible: Interrupt makes a
// Read that waits for the upstream return ErrInterrupted at once, and every
// later Read too, so that SIGTERM can stop a stage whose upstream is still
// open. A Read that returned data before Interrupt keeps it: nothing read
// is lost.
//
// How a blocked read is interrupted depends on what stdin is:
//   - a pipe, a socket or a terminal that Go's poller can serve (Linux and
//     the BSDs, macOS): it is read in non-blocking mode through the poller
//     and interrupted with a read deadline. On Linux a pipe or a terminal is
//     reopened through /proc/self/fd, a new open file that leaves the mode
//     of the one shared with the shell alone; otherwise the shared one is
//     switched and switched back by Close;
//   - anything else that can block (a pipe on Windows, a terminal where it
//     cannot be reopened): a goroutine reads ahead and Interrupt abandons
//     it, blocked where it is until the process exits;
//   - a regular file, which never blocks: Interrupt just ends the reading;
//   - an io.Reader that is no file (tests): closed, if it is an io.Closer.
type Input struct {
	r           io.Reader
	interrupted atomic.Bool
	interrupt   func()
	release     func()
	once        sync.Once
}

// OpenInput makes r interruptible. Close it when done: it gives back what
// was changed (the blocking mode of a shared stdin).
func OpenInput(r io.Reader) *Input {
	in := &Input{r: r, interrupt: func() {}, release: func() {}}
	f, ok := r.(*os.File)
	if !ok {
		if c, ok := r.(io.Closer); ok {
			in.interrupt = func() { _ = c.Close() }
		}
		return in
	}
	st, err := f.Stat()
	if err != nil || st.Mode().IsRegular() {
		return in
	}
	if pf, release, ok := pollable(f, st.Mode()); ok {
		in.r, in.release = pf, release
		in.interrupt = func() { _ = pf.SetReadDeadline(time.Now()) }
		return in
	}
	a := newAsyncReader(f, asyncBufferSize)
	in.r, in.interrupt = a, a.abandon
	return in
}

// Read reads from the input; after Interrupt it returns ErrInterrupted.
func (in *Input) Read(p []byte) (int, error) {
	if in.interrupted.Load() {
		return 0, ErrInterrupted
	}
	n, err := in.r.Read(p)
	if err != nil && in.interrupted.Load() {
		err = ErrInterrupted
	}
	return n, err
}

// Interrupt ends the reading, including a Read that waits now.
func (in *Input) Interrupt() {
	if in.interrupted.Swap(true) {
		return
	}
	in.interrupt()
}

// InterruptOn interrupts the input when ctx is done, until Close.
func (in *Input) InterruptOn(ctx context.Context) {
	stop := context.AfterFunc(ctx, in.Interrupt)
	prev := in.release
	in.release = func() { stop(); prev() }
}

// Close gives back what OpenInput changed. The input must not be read
// afterwards.
func (in *Input) Close() error {
	in.once.Do(in.release)
	return nil
}

// Input returns standard input, grown if it is a pipe (GrowPipe),
// interrupted when ctx is done and given back when the Action returns.
func (s *Stage) Input(ctx context.Context) *Input {
	GrowPipe(s.In)
	in := OpenInput(s.In)
	in.InterruptOn(ctx)
	s.OnCleanup(func() { _ = in.Close() })
	return in
}

// asyncBufferSize is the read size of the read-ahead goroutine; two such
// buffers alternate.
const asyncBufferSize = 256 << 10

// asyncReader reads r on a goroutine of its own into two buffers that
// alternate, so that a Read can be abandoned (the fallback where the
// poller cannot serve the file) and reading overlaps with processing.
type asyncReader struct {
	free chan []byte // buffers the goroutine may fill
	full chan asyncChunk
	stop chan struct{}
	once sync.Once

	cur asyncChunk // being consumed by Read
	off int
	err error // sticky: the error that ended the input
}

type asyncChunk struct {
	buf []byte
	n   int
	err error
}

func newAsyncReader(r io.Reader, size int) *asyncReader {
	a := &asyncReader{free: make(chan []byte, 2), full: make(chan asyncChunk, 2), stop: make(chan struct{})}
	a.free <- make([]byte, size)
	a.free <- make([]byte, size)
	go a.loop(r)
	return a
}

func (a *asyncReader) loop(r io.Reader) {
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.stop:
			return
		}
		n, err := r.Read(b[:cap(b)])
		select {
		case a.full <- asyncChunk{buf: b, n: n, err: err}:
		case <-a.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read copies from the chunk the goroutine filled last, waiting for one
// when it is used up.
func (a *asyncReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for a.cur.buf == nil || a.off == a.cur.n {
		if a.err != nil {
			return 0, a.err
		}
		if a.cur.buf != nil {
			if a.cur.err != nil {
				a.err = a.cur.err
				return 0, a.err
			}
			a.free <- a.cur.buf // never blocks: there are two buffers and two slots
			a.cur = asyncChunk{}
		}
		select {
		case c := <-a.full:
			a.cur, a.off = c, 0
		case <-a.stop:
			return 0, ErrInterrupted
		}
	}
	n := copy(p, a.cur.buf[a.off:a.cur.n])
	a.off += n
	return n, nil
}

// abandon makes Read return at once; the goroutine stays blocked in its
// read, if it is, until that returns or the process exits.
func (a *asyncReader) abandon() { a.once.Do(func() { close(a.stop) }) }
