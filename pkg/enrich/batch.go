package enrich

import "context"

// At a million sessions, attributing a record misses the CPU caches twice
// per subscriber address, one miss depending on the other (the index slot,
// then the session): a few hundred nanoseconds if each record waits for
// its own. The bin stage with sessions therefore works on a batch of
// records: it scans each as it is read (copying its frame, since the
// reader reuses its buffer) and starts fetching its index slots; a few
// records later, the slots having arrived, it starts fetching the
// sessions; at the end of the batch it finishes and writes every record,
// in order, their sessions in cache. The misses of a batch overlap instead
// of adding up.
//
// A batch never holds records back from a quiet input: it is finished and
// written before any read that may block (flushWhenIdle), and at the end
// of the input or at a bad frame, before the error.
const (
	// batchSize is how many records are scanned before they are finished.
	batchSize = 16
	// sessionLead is how many records after its slots a record's
	// sessions are fetched: the time to scan that many records covers a
	// miss to memory.
	sessionLead = 4
)

type batch struct {
	recs [batchSize]batchRecord
	n    int
}

type batchRecord struct {
	sp    splicer
	frame []byte // a copy of the input frame, which the scan's results alias
}

func (s *Stream) runBatches(ctx context.Context, st *Stats) error {
	b, _ := s.e.batches.Get().(*batch)
	if b == nil {
		b = &batch{}
	}
	s.idle.drain = func() error { return s.finishBatch(b, st) }
	defer func() {
		s.idle.drain = nil
		b.n = 0
		s.e.batches.Put(b)
	}()
	for {
		frame, offset, err := s.r.ReadFrame()
		if err != nil {
			if werr := s.finishBatch(b, st); werr != nil {
				return werr
			}
			return s.end(ctx, err)
		}
		r := &b.recs[b.n]
		r.frame = append(r.frame[:0], frame...)
		if err := r.sp.scan(s.e, r.frame); err != nil {
			if werr := s.finishBatch(b, st); werr != nil {
				return werr
			}
			return s.end(ctx, badFrame(offset, err))
		}
		b.n++
		if b.n > sessionLead {
			b.recs[b.n-1-sessionLead].sp.prefetchSessions(s.e)
		}
		if b.n == batchSize {
			if err := s.finishBatch(b, st); err != nil {
				return err
			}
		}
	}
}

// finishBatch enriches and writes the scanned records, in order.
func (s *Stream) finishBatch(b *batch, st *Stats) error {
	n := b.n
	b.n = 0
	for i := max(0, n-sessionLead); i < n; i++ {
		b.recs[i].sp.prefetchSessions(s.e)
	}
	for i := range n {
		if err := s.frames.WriteFrame(b.recs[i].sp.finish(s.e, st)); err != nil {
			return err
		}
		s.count(st)
	}
	return nil
}
