package enrich

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/framing"
)

// batchEnricher attributes from 2 000 sessions; batchStream is n records
// whose inside side is one of them.
func batchEnricher(t *testing.T) *Enricher {
	e, _ := standard(t, ModeTable, benchNets)
	e.cfg.Sessions = benchSessions(t, 2000)
	return e
}

func batchStream(t *testing.T, n int) []byte {
	rng := rand.New(rand.NewPCG(11, 12))
	return benchStreamInside(t, n, benchAddrs(100), func() netip.Addr { return benchSubscriberAddr(rng.IntN(2000)) })
}

// TestBatchMatchesOneByOne: the batched bin stage writes, record for
// record, what enriching each record alone writes, whatever the batch
// boundaries (1 000 records: not a multiple of the batch size).
func TestBatchMatchesOneByOne(t *testing.T) {
	e := batchEnricher(t)
	in := batchStream(t, 1000)
	var out bytes.Buffer
	var st Stats
	s := NewStream(e, StreamConfig{In: bytes.NewReader(in), Out: &out, OutputFormat: framing.FormatBin,
		Report: func(s *Stats) { st.Written += s.Written; st.Subscribers[SideSrc][1] += s.Subscribers[SideSrc][1] }})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.Written != 1000 || st.Subscribers[SideSrc][1] == 0 {
		t.Fatalf("%d written, %d src attributed", st.Written, st.Subscribers[SideSrc][1])
	}
	want := framing.NewReader(bytes.NewReader(in), 0)
	got := framing.NewReader(&out, 0)
	var sp splicer
	for i := 0; ; i++ {
		frame, err := want.Next()
		if errors.Is(err, io.EOF) {
			if _, err := got.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("more output than input: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		alone, err := sp.enrich(e, frame, &Stats{})
		if err != nil {
			t.Fatal(err)
		}
		batched, err := got.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Equal(alone, batched) {
			t.Fatalf("record %d differs:\nalone   %x\nbatched %x", i, alone, batched)
		}
	}
}

// TestBatchNotHeldBack: records that arrived are written (and flushed)
// before the stage waits for more input: a batch is never held back by a
// quiet input.
func TestBatchNotHeldBack(t *testing.T) {
	e := batchEnricher(t)
	in := batchStream(t, 3)
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	s := NewStream(e, StreamConfig{In: pr, Out: outW, OutputFormat: framing.FormatBin})
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()); outW.Close() }()
	go func() { _, _ = pw.Write(in) }() // and nothing more for now
	got := make(chan int, 1)
	go func() {
		r := framing.NewReader(outR, 0)
		n := 0
		for n < 3 {
			if _, err := r.Next(); err != nil {
				break
			}
			n++
		}
		got <- n
		_, _ = io.Copy(io.Discard, outR)
	}()
	select {
	case n := <-got:
		if n != 3 {
			t.Fatalf("%d records out, want 3", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("records held back while the input is quiet")
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBatchBadFrame: the records before a bad frame are written, in
// order, and the error names the bad frame's offset.
func TestBatchBadFrame(t *testing.T) {
	e := batchEnricher(t)
	good := batchStream(t, 20)
	in := append(append([]byte{}, good...), 3, 0xff, 0xff, 0xff) // a frame whose body is no protobuf
	var out bytes.Buffer
	s := NewStream(e, StreamConfig{In: bytes.NewReader(in), Out: &out, OutputFormat: framing.FormatBin})
	err := s.Run(context.Background())
	var fe *framing.FrameError
	if !errors.As(err, &fe) || fe.Offset != int64(len(good)) {
		t.Fatalf("error %v, want a frame error at offset %d", err, len(good))
	}
	r := framing.NewReader(&out, 0)
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		n++
	}
	if n != 20 {
		t.Fatalf("%d records written before the bad frame, want 20", n)
	}
}

// TestBatchNoAllocs: once a stream's batch exists, records allocate
// nothing: a stream of 4 096 records allocates no more than one of 64.
func TestBatchNoAllocs(t *testing.T) {
	e := batchEnricher(t)
	allocs := func(n int) float64 {
		in := batchStream(t, n)
		run := func() {
			s := NewStream(e, StreamConfig{In: bytes.NewReader(in), Out: io.Discard, OutputFormat: framing.FormatBin})
			if err := s.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		run()
		return testing.AllocsPerRun(20, run)
	}
	if small, large := allocs(64), allocs(4096); large > small {
		t.Fatalf("%.0f allocations for 4 096 records, %.0f for 64", large, small)
	}
}

// BenchmarkSpliceRecord enriches the same 64 records over and over, all
// in cache: without sessions, and with 2 000 sessions that hold their
// inside addresses. The difference is the CPU work of attribution alone
// (reading the flow's time, two lookups, six more fields out), without
// any wait for memory.
func BenchmarkSpliceRecord(b *testing.B) {
	for _, subs := range []bool{false, true} {
		name := "off"
		if subs {
			name = "sessions"
		}
		b.Run(name, func(b *testing.B) {
			e, _ := standard(b, ModeTable, benchNets)
			if subs {
				e.cfg.Sessions = benchSessions(b, 2000)
			}
			rng := rand.New(rand.NewPCG(11, 12))
			in := benchStreamInside(b, 64, benchAddrs(100), func() netip.Addr { return benchSubscriberAddr(rng.IntN(2000)) })
			var frames [][]byte
			r := framing.NewReader(bytes.NewReader(in), 0)
			for {
				f, err := r.Next()
				if err != nil {
					break
				}
				frames = append(frames, bytes.Clone(f))
			}
			var sp splicer
			var st Stats
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := sp.enrich(e, frames[i%len(frames)], &st); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
