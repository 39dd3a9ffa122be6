package publish

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/spool"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// With a spool the reader and the producer are apart: the reader frames
// every record into a spool record (payload: the key's length as a varint,
// the key, the value) in a slab and writes the slab's new records to the
// spool before each read that may wait; the drainer takes the spool's
// chunks in order (the same slab from memory while it keeps up, read back
// from the files once Kafka fell behind) and produces their records
// without copying them. Acknowledgements come back out of order across
// partitions; the acker turns them into the spool's acknowledged
// position, chunk by chunk, in order.

// spoolWriter is the reader's side. Only the reading goroutine uses it.
type spoolWriter struct {
	p     *Publisher
	sl    *slab // holds one reference for the writer
	start int   // sl.buf[start:] is not written to the spool yet
	n     int   // records in it
	err   error // the first write error: reading stops
}

// add frames one record: key, then body (behind its length when bin).
func (w *spoolWriter) add(key, body []byte, bin bool) {
	size := spool.HeaderSize + wire.SizeVarint(uint64(len(key))) + len(key) + len(body)
	if bin {
		size += wire.SizeVarint(uint64(len(body)))
	}
	if w.sl == nil || cap(w.sl.buf)-len(w.sl.buf) < size {
		w.flush()
		if w.sl != nil {
			w.p.slabs.release(w.sl)
		}
		w.sl = w.p.slabs.take(max(size, slabSize))
		w.start = 0
	}
	buf := w.sl.buf
	start := len(buf)
	buf = spool.BeginRecord(buf)
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	if bin {
		buf = binary.AppendUvarint(buf, uint64(len(body)))
	}
	buf = append(buf, body...)
	w.sl.buf = spool.EndRecord(buf, start)
	w.n++
}

// frames adds records whole bin frames (checked by wire.ScanFrames), unkeyed.
func (w *spoolWriter) frames(frames []byte, records int) {
	for len(frames) > 0 {
		size, plen := binary.Uvarint(frames)
		end := plen + int(size)
		w.add(nil, frames[:end], false)
		frames = frames[end:]
	}
	w.flush()
}

// flush writes the records added since the last flush to the spool (the
// page cache: a killed process loses none of them) and counts them read.
func (w *spoolWriter) flush() {
	if w.n == 0 || w.err != nil {
		return
	}
	p := w.p
	n := w.n
	w.sl.refs.Add(1) // for the drainer, if the chunk goes to it from memory
	handed, err := p.sp.Write(w.sl.buf[w.start:], n, w.sl)
	if !handed {
		p.slabs.release(w.sl)
	}
	w.start, w.n = len(w.sl.buf), 0
	p.read.Add(uint64(n))
	switch {
	case errors.Is(err, spool.ErrFull): // dropped (drop-newest): counted by the spool
	case err != nil:
		w.err = fmt.Errorf("publish: %w", err)
		p.failed.Add(uint64(n))
		p.m.failed.WithLabelValues("spool_write").Add(float64(n))
		p.failLog.note("spool_write", &kgo.Record{}, err)
	}
}

// close writes what is left and drops the writer's slab.
func (w *spoolWriter) close() error {
	w.flush()
	if w.sl != nil {
		w.p.slabs.release(w.sl)
		w.sl = nil
	}
	return w.err
}

// drainSpool produces the spool's chunks in order until the spool is
// closed for writing and empty, reading is stopped, or the flush timeout
// ends producing.
func (p *Publisher) drainSpool() error {
	var disk *slab // a slab for the next chunk read back from the files
	defer func() {
		if disk != nil {
			p.slabs.release(disk)
		}
	}()
	for p.produceCtx.Err() == nil {
		if disk == nil {
			disk = p.slabs.take(slabSize)
		}
		c, err := p.sp.Next(disk.buf[:cap(disk.buf)])
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, spool.ErrClosed):
			return nil
		case err != nil:
			return fmt.Errorf("publish: %w", err)
		case c.Data == nil && c.Need > 0: // one record larger than a slab
			p.slabs.release(disk)
			disk = p.slabs.take(c.Need)
			continue
		}
		sl := disk
		if c.Disk {
			disk = nil // the chunk's records hold it now
		} else {
			sl = c.Ref.(*slab) // the writer's slab, with a reference for us
		}
		p.produceChunk(sl, c)
		p.slabs.release(sl)
	}
	return nil
}

// produceChunk produces the records of c, whose data lies in sl, and
// ties them to one acknowledgement entry.
func (p *Publisher) produceChunk(sl *slab, c spool.Chunk) {
	a := p.acks.add(c.End, c.Records)
	ts := time.Now()
	sl.refs.Add(int32(c.Records))
	p.gate.Lock()
	p.inFlight.Add(int64(c.Records))
	for payload, rest := spool.Next(c.Data); payload != nil; payload, rest = spool.Next(rest) {
		klen, n := binary.Uvarint(payload)
		pr := sl.next()
		pr.Record = kgo.Record{Value: payload[n+int(klen):], Timestamp: ts}
		if klen > 0 {
			pr.Key = payload[n : n+int(klen)]
		}
		pr.slab, pr.seq, pr.ack = sl, p.seq, a
		p.seq++
		p.cl.Produce(p.produceCtx, &pr.Record, p.promiseFn)
	}
	p.gate.Unlock()
	p.acks.finish(a) // the entry's own count: its records may all be done already
}

// awaitDrainer waits for the drainer after the input ended. At EOF it
// lets it produce the whole spool as long as Kafka acknowledges records:
// it is stopped only when none was acknowledged for a flush timeout (what
// it did not produce stays in the spool). A signal, before or now, stops
// it at once.
func (p *Publisher) awaitDrainer(ctx context.Context, done <-chan error, cancelDrain func()) error {
	var stalled <-chan time.Time
	if p.cfg.FlushTimeout > 0 {
		stall := time.NewTicker(p.cfg.FlushTimeout)
		defer stall.Stop()
		stalled = stall.C
	}
	last := p.produced.Load()
	signalled := ctx.Done()
	for {
		select {
		case err := <-done:
			return err
		case <-signalled:
			p.sp.StopReading()
			signalled = nil
		case <-stalled:
			if n := p.produced.Load(); n != last {
				last = n
				continue
			}
			p.log.Error("no record acknowledged for a flush timeout; the rest stays in the spool",
				"timeout", p.cfg.FlushTimeout, "spooled", p.sp.Stats().Records)
			p.sp.StopReading()
			cancelDrain()
		}
	}
}

// ackEntry is one chunk of produced records.
type ackEntry struct {
	end  spool.Pos
	n    int
	left atomic.Int32 // records not finished, plus one until produceChunk is done
	keep atomic.Bool  // a record was not delivered: the spool keeps the chunk
	done bool         // under acker.mu
}

// acker acknowledges chunks to the spool in the order they were produced,
// as their records finish in any order.
type acker struct {
	sp    *spool.Spool
	mu    sync.Mutex
	queue []*ackEntry
	head  int
	free  []*ackEntry
	stuck bool // a chunk is kept: nothing after it is acknowledged
}

func (k *acker) add(end spool.Pos, records int) *ackEntry {
	k.mu.Lock()
	var a *ackEntry
	if n := len(k.free); n > 0 {
		a = k.free[n-1]
		k.free = k.free[:n-1]
	} else {
		a = new(ackEntry)
	}
	a.end, a.n, a.done = end, records, false
	a.keep.Store(false)
	a.left.Store(int32(records) + 1)
	if k.head > 0 && k.head == len(k.queue) {
		k.queue, k.head = k.queue[:0], 0
	}
	k.queue = append(k.queue, a)
	k.mu.Unlock()
	return a
}

// finish counts one record of a done (or produceChunk's own count); the
// last one acknowledges every finished chunk at the head of the queue.
func (k *acker) finish(a *ackEntry) {
	if a.left.Add(-1) != 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	a.done = true
	var last *ackEntry
	records := 0
	for !k.stuck && k.head < len(k.queue) && k.queue[k.head].done {
		e := k.queue[k.head]
		if e.keep.Load() {
			k.stuck = true
			break
		}
		k.queue[k.head] = nil
		k.head++
		last = e
		records += e.n
		k.free = append(k.free, e)
	}
	if last != nil {
		k.sp.Ack(last.end, records)
	}
}
