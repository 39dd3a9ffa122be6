package enrich

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// reportEvery is how many records a Stream enriches between two calls of
// its Report function: counters move without a per-record atomic.
const reportEvery = 4096

// StreamConfig describes the two ends of a Stream.
type StreamConfig struct {
	In           io.Reader
	Out          io.Writer
	InputFormat  framing.Format // FormatAuto detects bin or JSON
	OutputFormat framing.Format // FormatBin or FormatJSON
	MaxSize      int            // largest frame or line; <= 0: framing's default
	JSON         *framing.JSONOptions
	// Report, if set, receives the counts of the records enriched since its
	// last call, every few thousand records and at the end. The Stats is
	// reset after each call.
	Report func(*Stats)
}

// Stream is the enrichment stage: records in, enriched records out, in the
// same order. Every field Enrich does not set is written back as it was
// read: unknown protobuf fields byte for byte, and from JSON to JSON the
// members that are no flow field, byte for byte too.
type Stream struct {
	e      *Enricher
	r      *framing.MessageReader
	w      framing.MessageWriter
	frames *framing.Writer // the bin output, for the splicing path; nil for JSON
	idle   *flushWhenIdle
	report func(*Stats)
}

// NewStream builds the stage. Output is flushed whenever the input has
// nothing more buffered, before the read that may block, so a slow or
// idle input never holds records back, and at the end.
func NewStream(e *Enricher, cfg StreamConfig) *Stream {
	s := &Stream{e: e, report: cfg.Report}
	if cfg.OutputFormat == framing.FormatJSON {
		s.w = framing.NewMessageWriter(cfg.Out, cfg.OutputFormat, cfg.JSON)
	} else {
		s.frames = framing.NewWriter(cfg.Out)
		s.w = binWriter{s.frames}
	}
	s.idle = &flushWhenIdle{r: cfg.In, w: s.w}
	s.r = framing.NewMessageReader(s.idle, cfg.InputFormat, cfg.MaxSize, cfg.JSON)
	return s
}

// binWriter writes whole messages to the same bin output the splicing
// path writes frames to.
type binWriter struct{ *framing.Writer }

func (w binWriter) Write(m *flowpb.FlowMessage) error { return w.WriteMessage(m) }

func (w binWriter) WriteExtra(m *flowpb.FlowMessage, _ []byte) error { return w.WriteMessage(m) }

// Run copies records until the input ends, then flushes. When ctx is done
// the caller closes the input to unblock the read; the read error that
// follows ends Run cleanly (nil) after the flush. A write error, such as
// EPIPE from a closed downstream pipe, is returned as it is.
//
// Bin in and bin out take the splicing path (see splicer); everything
// else decodes and re-encodes each record.
func (s *Stream) Run(ctx context.Context) error {
	var st Stats
	defer s.flushStats(&st)
	if s.frames != nil {
		if f, err := s.r.Detect(); err == nil && f == framing.FormatBin {
			return s.runFrames(ctx, &st)
		}
		// A detection error comes back from the first Read below.
	}
	return s.runMessages(ctx, &st)
}

func (s *Stream) runMessages(ctx context.Context, st *Stats) error {
	var m flowpb.FlowMessage
	for {
		if err := s.r.Read(&m); err != nil {
			return s.end(ctx, err)
		}
		s.e.Enrich(&m, st)
		// A JSON line's members that are no field (keys of other
		// producers, custom fields) go out as they came in.
		if err := s.w.WriteExtra(&m, s.r.Extra()); err != nil {
			return err
		}
		// The label maps Enrich set are shared, read-only: the next Read
		// must not reuse them for its own labels.
		m.SrcNetLabels, m.DstNetLabels = nil, nil
		s.count(st)
	}
}

func (s *Stream) runFrames(ctx context.Context, st *Stats) error {
	var sp splicer
	for {
		frame, offset, err := s.r.ReadFrame()
		if err != nil {
			return s.end(ctx, err)
		}
		out, err := sp.enrich(s.e, frame, st)
		if err != nil {
			err = &framing.FrameError{Offset: offset, Err: fmt.Errorf("%w: %v", framing.ErrBadMessage, err)}
			return s.end(ctx, err)
		}
		if err := s.frames.WriteFrame(out); err != nil {
			return err
		}
		s.count(st)
	}
}

func (s *Stream) count(st *Stats) {
	st.Written++
	if st.Records >= reportEvery {
		s.flushStats(st)
	}
}

// end turns the error that stopped reading into Run's result, flushing
// what was written before it.
func (s *Stream) end(ctx context.Context, err error) error {
	if s.idle.err != nil {
		return s.idle.err
	}
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return s.w.Flush()
	}
	if ferr := s.w.Flush(); ferr != nil {
		return ferr
	}
	return err
}

// Offset is the input byte offset of the next record.
func (s *Stream) Offset() int64 { return s.r.Offset() }

// InputFormat is the input's format, known after the first record.
func (s *Stream) InputFormat() framing.Format { return s.r.Format() }

func (s *Stream) flushStats(st *Stats) {
	if s.report != nil && st.Records+st.Written > 0 {
		s.report(st)
	}
	st.Reset()
}

// flushWhenIdle flushes the output before each read of the input: the
// framing reader only reads when its buffer is drained, which is exactly
// when it may block waiting for more input.
type flushWhenIdle struct {
	r   io.Reader
	w   framing.MessageWriter
	err error // the flush error, which the reader sees as a read error
}

func (f *flushWhenIdle) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			f.err = err
			return 0, err
		}
	}
	return f.r.Read(p)
}
