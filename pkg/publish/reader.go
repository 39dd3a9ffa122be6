package publish

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

func interrupt(r io.Reader) {
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		return
	}
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
	}
}

// readLoop is the hot path: read, copy into a slab, produce (or, with a
// spool, frame into a slab and write to the spool).
func (p *Publisher) readLoop(ctx context.Context, r io.Reader) error {
	// One buffer shared by the message reader and, for the fast path, the
	// frame reader that takes over from it after the first record.
	br := bufio.NewReaderSize(r, readBufferSize)
	mr := framing.NewMessageReader(br, p.cfg.InputFormat, p.cfg.MaxRecordSize, p.cfg.JSON)
	var (
		m       flowpb.FlowMessage
		scratch []byte
		inBytes int // batched: a float counter's Add is a CAS loop
		records uint
	)
	defer func() { p.m.bytesIn.Add(float64(inBytes)) }()
	bin := p.cfg.ValueFormat == framing.FormatBin
	for ctx.Err() == nil && !p.spoolFailed() {
		if err := mr.Read(&m); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			p.m.inputErrors.Inc()
			return fmt.Errorf("publish: input: %w", err)
		}
		raw := mr.Raw()
		records++
		// Flush the byte count every 256 records and whenever the input
		// read so far is drained (the next read may wait), so the metric
		// is exact whenever the stream pauses.
		if inBytes += len(raw); br.Buffered() == 0 || records%256 == 255 {
			p.m.bytesIn.Add(float64(inBytes))
			inBytes = 0
		}

		// Bin in, bin out, no key: the frames need no decoding at all
		// (once the second frame said that no separator follows each: a
		// stream of goflow2's with its newline separator takes the path
		// below, which drops the separators).
		if mr.Format() == framing.FormatBin && bin && p.cfg.Key == nil && mr.Separator() == framing.SepNone {
			p.produce(nil, raw, true)
			return p.passThrough(ctx, br, r, mr.Offset())
		}

		// body is what the value carries; bin values get a length prefix.
		body := raw
		switch {
		case bin && mr.Format() != framing.FormatBin:
			n := m.SizeVT()
			scratch = slices.Grow(scratch[:0], n)[:n]
			if _, err := m.MarshalToSizedBufferVT(scratch); err != nil {
				return fmt.Errorf("publish: re-encoding record %d: %w", p.read.Load()+1, err)
			}
			body = scratch
		case !bin && mr.Format() != framing.FormatJSON:
			scratch = framing.AppendJSON(scratch[:0], &m, p.cfg.JSON)
			body = scratch
		}
		var key []byte
		if p.cfg.Key != nil {
			var kb [KeySize]byte
			key = p.cfg.Key.Append(kb[:0], &m)
		}
		p.produce(key, body, bin)
		if p.sw != nil && br.Buffered() == 0 {
			p.sw.flush() // the next read may wait: spool what was read
		}
	}
	return nil
}

// spoolFailed says a spool write failed: reading stops.
func (p *Publisher) spoolFailed() bool { return p.sw != nil && p.sw.err != nil }

// readBufferSize matches pkg/framing's, so its readers adopt our buffer.
const readBufferSize = 256 << 10

// passThrough produces bin frames as they are, without copying them: it
// reads the input straight into slabs and each record's value is its frame
// (prefix and body) where it lies; a frame cut by a slab's end is moved to
// the next slab. It checks that each body is well-formed protobuf (tags and
// lengths) rather than decoding it, which would cost twice the rest.
//
// After each read it produces every whole frame read so far, together (see
// produceFrames), including after ctx's cancellation: they have left the
// pipe, so they would be lost otherwise.
//
// It takes over from br (whose buffered bytes come first) and then reads r.
func (p *Publisher) passThrough(ctx context.Context, br *bufio.Reader, r io.Reader, off int64) error {
	maxSize := p.cfg.MaxRecordSize
	if maxSize <= 0 {
		maxSize = framing.DefaultMaxSize
	}
	sl := p.slabs.take(slabSize)
	defer func() { p.slabs.release(sl) }()
	buffered, _ := br.Peek(br.Buffered())
	sl.buf = append(sl.buf[:0], buffered...)
	pos := 0 // sl.buf[pos:] is not yet produced; off is its stream offset
	var readErr error
	for {
		n, records, bodies, need, err := wire.ScanFrames(sl.buf[pos:], maxSize)
		if records > 0 {
			p.produceFrames(sl, sl.buf[pos:pos+n], records, bodies)
			pos += n
			off += int64(n)
		}
		if err != nil {
			return p.inputError(&framing.FrameError{Offset: off, Err: err})
		}
		if p.spoolFailed() {
			return nil
		}
		// Need more input.
		data := sl.buf[pos:]
		if readErr != nil {
			if readErr == io.EOF && len(data) == 0 || ctx.Err() != nil {
				return nil
			}
			if readErr == io.EOF || readErr == io.ErrUnexpectedEOF {
				return p.inputError(&framing.FrameError{Offset: off,
					Err: fmt.Errorf("%w: input ends inside a frame", framing.ErrTruncated)})
			}
			return fmt.Errorf("publish: input: %w", readErr)
		}
		if ctx.Err() != nil {
			return nil
		}
		if cap(sl.buf)-pos < need { // move the partial frame to a fresh slab
			next := p.slabs.take(max(need, slabSize))
			next.buf = append(next.buf[:0], data...)
			p.slabs.release(sl)
			sl, pos = next, 0
		}
		n, err = r.Read(sl.buf[len(sl.buf):cap(sl.buf)])
		sl.buf = sl.buf[:len(sl.buf)+n]
		if err != nil {
			readErr = err
		}
	}
}

func (p *Publisher) inputError(err error) error {
	p.m.inputErrors.Inc()
	return fmt.Errorf("publish: input: %w", err)
}
