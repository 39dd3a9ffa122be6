// Package publish produces a flow stream (bin or JSON, as read by
// pkg/framing) into a Kafka topic with franz-go, one record per flow, and
// accounts for every record: each one read is either acknowledged by Kafka
// or counted as failed with a reason.
//
// Backpressure: at most Config.MaxBufferedRecords records are in the
// producer at once; when the buffer is full, Produce blocks, the reader
// stops reading and the upstream pipe fills. Nothing is dropped.
//
// Durability: Run stops reading at EOF or when its context is cancelled,
// then waits (up to Config.FlushTimeout, or forever) until every record read
// has been acknowledged. A broker outage is ridden out with franz-go's
// unlimited retries. If the topic is re-created under a new id (a broker
// restarted without its data), franz-go fails the buffered records with
// UNKNOWN_TOPIC_ID; Run then purges the topic from the client and produces
// those records again in their original order, so it recovers without a
// restart and without losing them (a few may be duplicated: a request in
// flight at the purge may have succeeded).
package publish

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// Config says what to produce and how.
type Config struct {
	Topic       string
	Key         *Keyer         // nil: no key (sticky batches)
	InputFormat framing.Format // FormatAuto detects bin or JSON
	// ValueFormat is FormatBin (one varint-framed message, as goflow2
	// writes to Kafka) or FormatJSON (one object, no newline).
	ValueFormat   framing.Format
	JSON          *framing.JSONOptions
	MaxRecordSize int // bound on an input frame or line; <= 0: framing's default

	Acks        string // all, leader or none
	Idempotent  bool   // needs Acks "all"
	Compression string // none, gzip, snappy, lz4 or zstd
	Linger      time.Duration
	// BatchMaxBytes bounds a record batch; <= 0 keeps franz-go's default.
	BatchMaxBytes      int32
	MaxBufferedRecords int
	MaxBufferedBytes   int
	// DeliveryTimeout fails a record not acknowledged in this long;
	// 0 retries forever (rides out any outage).
	DeliveryTimeout time.Duration
	// FlushTimeout bounds the wait for acknowledgements once reading has
	// stopped; 0 waits forever. Records still unacknowledged then fail.
	FlushTimeout time.Duration

	CreateTopic       bool
	Partitions        int32
	ReplicationFactor int16
}

// DefaultConfig is flowpublish's defaults. Linger is 50 ms: flows are
// minutes old when exported, and batches that fill towards BatchMaxBytes
// at a few 100k records/s cost a broker less per record (the dev broker
// needs a quarter less CPU than with 5 ms, flowpublish no more).
func DefaultConfig() Config {
	return Config{
		Topic:              "flows",
		InputFormat:        framing.FormatAuto,
		ValueFormat:        framing.FormatBin,
		Acks:               "all",
		Idempotent:         true,
		Compression:        "none",
		Linger:             50 * time.Millisecond,
		BatchMaxBytes:      1 << 20,
		MaxBufferedRecords: 100_000,
		MaxBufferedBytes:   256 << 20,
		FlushTimeout:       30 * time.Second,
		Partitions:         4,
		ReplicationFactor:  1,
	}
}

// ProducerOpts turns c into franz-go producer options.
func (c Config) ProducerOpts() ([]kgo.Opt, error) {
	if c.Topic == "" {
		return nil, errors.New("publish: no topic")
	}
	if c.ValueFormat != framing.FormatBin && c.ValueFormat != framing.FormatJSON {
		return nil, fmt.Errorf("publish: value format must be bin or json, not %s", c.ValueFormat)
	}
	if c.MaxBufferedRecords <= 0 {
		return nil, errors.New("publish: max buffered records must be positive")
	}
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(c.Topic),
		kgo.ProducerLinger(c.Linger),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(c.DeliveryTimeout),
	}
	if c.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(c.MaxBufferedBytes))
	}
	if c.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(c.BatchMaxBytes))
	}
	switch c.Acks {
	case "all":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, fmt.Errorf("publish: acks must be all, leader or none, not %q", c.Acks)
	}
	if c.Idempotent && c.Acks != "all" {
		return nil, fmt.Errorf("publish: idempotent writes need acks all (acks is %s; disable idempotence)", c.Acks)
	}
	if !c.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	codec, err := compression(c.Compression)
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	if c.CreateTopic && (c.Partitions <= 0 || c.ReplicationFactor <= 0) {
		return nil, errors.New("publish: partitions and replication factor must be positive")
	}
	return opts, nil
}

// Compressions are the codec names Config.Compression accepts.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

func compression(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("publish: unknown compression %q (want %s)", name, strings.Join(Compressions, ", "))
}

// Stats count what one Run did.
type Stats struct {
	Read       uint64 // records read from the input
	Produced   uint64 // acknowledged by Kafka
	Failed     uint64 // finally failed
	Reproduced uint64 // produced again after a topic re-creation
}

// pending is one record in the producer's hands, taken from the slab its
// value lies in (see slab.next). The kgo.Record comes first so that the
// promise, which gets &pending.Record, can convert back without a
// per-record closure.
type pending struct {
	kgo.Record
	slab *slab // nil for a value too large for slabs
	seq  uint64
}

// Publisher is one producer client and its accounting; Run it once.
type Publisher struct {
	cfg   Config
	cl    *kgo.Client
	log   *slog.Logger
	m     *metrics
	slabs *slabs
	seq   uint64 // read order, for re-producing in order

	produceCtx context.Context
	promiseFn  func(*kgo.Record, error) // p.promise, bound once: a method value allocates
	gate       sync.Mutex               // held around Produce; recovery holds it to pause reading
	inFlight   atomic.Int64

	read, produced, failed, reproduced atomic.Uint64

	retryMu    sync.Mutex
	retry      []*pending
	recovering bool

	failLog failLogger
	closed  sync.Once
}

// New builds the producer client from the connection options (see
// pkg/kafkaopt) and cfg. Metrics are registered on reg.
func New(cfg Config, conn []kgo.Opt, reg prometheus.Registerer, log *slog.Logger) (*Publisher, error) {
	popts, err := cfg.ProducerOpts()
	if err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, log: log, slabs: newSlabs(), produceCtx: context.Background()}
	p.failLog.log = log
	p.promiseFn = p.promise
	p.m = newMetrics(reg, &p.read, &p.produced, &p.inFlight)
	opts := slices.Concat(conn, popts, []kgo.Opt{
		kgo.WithHooks(batchHook{p.m.batch}),
		kgo.ProducerOnDataLossDetected(func(topic string, partition int32) {
			log.Warn("kafka reported possible data loss on a partition (broker lost acknowledged data)",
				"topic", topic, "partition", partition)
		}),
	})
	p.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	return p, nil
}

// Client is the underlying franz-go client.
func (p *Publisher) Client() *kgo.Client { return p.cl }

// Stats returns the counts so far.
func (p *Publisher) Stats() Stats {
	return Stats{Read: p.read.Load(), Produced: p.produced.Load(), Failed: p.failed.Load(), Reproduced: p.reproduced.Load()}
}

// Close closes the client; buffered records fail. Run calls it.
func (p *Publisher) Close() { p.closed.Do(p.cl.Close) }

// Run reads records from r and produces them until EOF, a bad record, or
// ctx's cancellation, then waits for every record to be acknowledged and
// closes the client. When ctx is cancelled while a read blocks, Run
// interrupts it through r's SetReadDeadline (a pollable *os.File) or Close.
//
// It returns nil when every record read was acknowledged; otherwise an
// error that names the bad input or counts the failed records.
func (p *Publisher) Run(ctx context.Context, r io.Reader) error {
	defer p.Close()
	drainCtx, cancelDrain := context.WithCancel(context.Background())
	defer cancelDrain()
	var (
		drainOnce  sync.Once
		drainTimer atomic.Pointer[time.Timer]
	)
	beginDrain := func() {
		drainOnce.Do(func() {
			if p.cfg.FlushTimeout > 0 {
				drainTimer.Store(time.AfterFunc(p.cfg.FlushTimeout, cancelDrain))
			}
		})
	}
	defer func() {
		if t := drainTimer.Load(); t != nil {
			t.Stop()
		}
	}()
	// Produce never sees ctx: a record read is produced even after a
	// signal. Only the flush timeout stops it.
	p.produceCtx = drainCtx

	if p.cfg.CreateTopic {
		if err := p.createTopic(ctx); err != nil {
			return err
		}
	}

	readDone := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			beginDrain()
			interrupt(r)
		case <-readDone:
		}
	}()
	readErr := p.readLoop(ctx, r)
	close(readDone)
	beginDrain()
	p.slabs.close()

	if err := p.drain(drainCtx); err != nil {
		p.log.Error("flush timed out; records still unacknowledged will fail",
			"timeout", p.cfg.FlushTimeout, "buffered", p.inFlight.Load())
	}
	p.Close()
	p.failLeftovers()

	st := p.Stats()
	p.log.Info("done", "read", st.Read, "produced", st.Produced, "failed", st.Failed, "reproduced", st.Reproduced)
	var errs []error
	if readErr != nil {
		errs = append(errs, readErr)
	}
	if st.Failed > 0 {
		errs = append(errs, fmt.Errorf("publish: %d of %d records failed (%s)", st.Failed, st.Read, p.failLog.summary()))
	}
	return errors.Join(errs...)
}

func interrupt(r io.Reader) {
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		return
	}
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
	}
}

func (p *Publisher) createTopic(ctx context.Context) error {
	resp, err := kadm.NewClient(p.cl).CreateTopic(ctx, p.cfg.Partitions, p.cfg.ReplicationFactor, nil, p.cfg.Topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		p.log.Info("created topic", "topic", p.cfg.Topic, "partitions", p.cfg.Partitions, "replication_factor", p.cfg.ReplicationFactor)
	case errors.Is(err, kerr.TopicAlreadyExists):
		p.log.Debug("topic exists", "topic", p.cfg.Topic)
	default:
		return fmt.Errorf("publish: create topic %s: %w", p.cfg.Topic, err)
	}
	return nil
}

// readLoop is the hot path: read, copy into a slab, produce.
func (p *Publisher) readLoop(ctx context.Context, r io.Reader) error {
	// One buffer shared by the message reader and, for the fast path, the
	// frame reader that takes over from it after the first record.
	br := bufio.NewReaderSize(r, readBufferSize)
	mr := framing.NewMessageReader(br, p.cfg.InputFormat, p.cfg.MaxRecordSize, p.cfg.JSON)
	var (
		m       flowpb.FlowMessage
		scratch []byte
		inBytes int // batched: a float counter's Add is a CAS loop
	)
	defer func() { p.m.bytesIn.Add(float64(inBytes)) }()
	bin := p.cfg.ValueFormat == framing.FormatBin
	for ctx.Err() == nil {
		if err := mr.Read(&m); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			p.m.inputErrors.Inc()
			return fmt.Errorf("publish: input: %w", err)
		}
		raw := mr.Raw()
		// Flush the byte count every 256 records and whenever the input
		// read so far is drained (the next read may wait), so the metric
		// is exact whenever the stream pauses.
		if inBytes += len(raw); br.Buffered() == 0 || p.seq%256 == 255 {
			p.m.bytesIn.Add(float64(inBytes))
			inBytes = 0
		}

		// Bin in, bin out, no key: the frames need no decoding at all.
		if mr.Format() == framing.FormatBin && bin && p.cfg.Key == nil {
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
	}
	return nil
}

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
		n, records, bodies, need, err := scanFrames(sl.buf[pos:], maxSize)
		if records > 0 {
			p.produceFrames(sl, sl.buf[pos:pos+n], records, bodies)
			pos += n
			off += int64(n)
		}
		if err != nil {
			return p.inputError(&framing.FrameError{Offset: off, Err: err})
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

// scanFrames walks the whole frames at the start of data: n bytes holding
// records frames whose bodies (checked well-formed) total bodies bytes.
// need is the size of the next, incomplete frame (a bound while its
// prefix is cut); err is set when that next frame is bad.
func scanFrames(data []byte, maxSize int) (n, records, bodies, need int, err error) {
	for {
		body, end, need, err := nextFrame(data, n, maxSize)
		if end == 0 {
			return n, records, bodies, need, err
		}
		// Bodies are checked two at a time (see wellFormed2), alone when
		// the next frame is not whole or one of the two is bad.
		if body2, end2, _, _ := nextFrame(data, end, maxSize); end2 > 0 && wellFormed2(body, body2) {
			n, records, bodies = end2, records+2, bodies+len(body)+len(body2)
			continue
		}
		if !wellFormed(body) {
			return n, records, bodies, 0, framing.ErrBadMessage
		}
		n, records, bodies = end, records+1, bodies+len(body)
	}
}

// nextFrame returns the body of the whole frame at data[n:] and the offset
// after it; or end 0 and either how many bytes the frame needs from n or,
// for a bad prefix, an error.
func nextFrame(data []byte, n, maxSize int) (body []byte, end, need int, err error) {
	size, plen := binary.Uvarint(data[n:])
	switch {
	case plen < 0 || plen == 0 && len(data)-n >= binary.MaxVarintLen64:
		return nil, 0, 0, framing.ErrBadPrefix
	case plen > 0 && size > uint64(maxSize):
		return nil, 0, 0, fmt.Errorf("%w: %d bytes, limit %d", framing.ErrTooLarge, size, maxSize)
	case plen == 0:
		return nil, 0, binary.MaxVarintLen64, nil
	case uint64(len(data)-n-plen) < size:
		return nil, 0, plen + int(size), nil
	}
	end = n + plen + int(size)
	return data[n+plen : end : end], end, 0, nil
}

func (p *Publisher) inputError(err error) error {
	p.m.inputErrors.Inc()
	return fmt.Errorf("publish: input: %w", err)
}

// produceFrames produces the records frames that fill frames (checked by
// scanFrames) in sl. Per-record costs are kept out of the loop: one clock
// read (franz-go truncates timestamps to milliseconds anyway), one lock
// and one update of each counter for all of them.
func (p *Publisher) produceFrames(sl *slab, frames []byte, records, bodies int) {
	ts := time.Now()
	sl.refs.Add(int32(records))
	p.m.bytesIn.Add(float64(bodies))
	p.gate.Lock()
	// Counted under the gate, so that recover never waits for records
	// that are counted but not yet produced.
	p.read.Add(uint64(records))
	p.inFlight.Add(int64(records))
	for len(frames) > 0 {
		size, plen := binary.Uvarint(frames)
		end := plen + int(size)
		pr := sl.next()
		pr.Record = kgo.Record{Value: frames[:end:end], Timestamp: ts}
		pr.slab, pr.seq = sl, p.seq
		p.seq++
		p.cl.Produce(p.produceCtx, &pr.Record, p.promiseFn)
		frames = frames[end:]
	}
	p.gate.Unlock()
}

// produce copies key and body (behind a varint length when bin) into a
// slab and hands the record to the producer.
func (p *Publisher) produce(key, body []byte, bin bool) {
	n := len(key) + len(body)
	if bin {
		n += uvarintLen(uint64(len(body)))
	}
	buf, sl := p.slabs.alloc(n)
	buf = append(buf, key...)
	if bin {
		buf = binary.AppendUvarint(buf, uint64(len(body)))
	}
	buf = append(buf, body...)

	var pr *pending
	if sl != nil {
		pr = sl.next()
	} else {
		pr = new(pending)
	}
	pr.Record = kgo.Record{Value: buf[len(key):]}
	if len(key) > 0 {
		pr.Key = buf[:len(key):len(key)]
	}
	pr.slab, pr.seq = sl, p.seq
	p.seq++
	p.gate.Lock()
	p.read.Add(1)
	p.inFlight.Add(1)
	p.cl.Produce(p.produceCtx, &pr.Record, p.promiseFn)
	p.gate.Unlock()
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// latencySample: one record in this many has its produce latency observed;
// thousands a second at full rate, and the clock read no longer shows in
// profiles (at 1 in 8 it cost 3% of the CPU).
const latencySample = 32

// promise runs on franz-go's goroutine once per record.
func (p *Publisher) promise(r *kgo.Record, err error) {
	pr := (*pending)(unsafe.Pointer(r))
	switch {
	case err == nil:
		p.produced.Add(1)
		if pr.seq%latencySample == 0 {
			p.m.latency.Observe(time.Since(r.Timestamp).Seconds())
		}
		p.finish(pr)
	case topicRecreated(err):
		p.queueRetry(pr)
	default:
		p.fail(pr, err)
	}
}

func (p *Publisher) fail(pr *pending, err error) {
	reason := Reason(err)
	p.failed.Add(1)
	p.m.failed.WithLabelValues(reason).Inc()
	p.failLog.note(reason, &pr.Record, err)
	p.finish(pr)
}

// finish is the last use of pr: releasing its slab may hand pr to the
// reader again.
func (p *Publisher) finish(pr *pending) {
	p.inFlight.Add(-1)
	p.slabs.release(pr.slab)
}

// errPurged is franz-go's unexported error for records purged while
// buffered; purging is how we recover, so those records are produced again.
const errPurgedText = "topic purged while buffered"

func topicRecreated(err error) bool {
	return errors.Is(err, kerr.UnknownTopicID) || err.Error() == errPurgedText
}

func (p *Publisher) queueRetry(pr *pending) {
	p.retryMu.Lock()
	p.retry = append(p.retry, pr)
	start := !p.recovering
	p.recovering = true
	p.retryMu.Unlock()
	if start {
		go p.recover()
	}
}

// recover pauses reading, purges the topic so that franz-go forgets its
// old id, waits until every record in flight has come back, then produces
// the failed ones again in the order they were read.
func (p *Publisher) recover() {
	p.gate.Lock()
	defer p.gate.Unlock()
	for {
		p.log.Warn("topic was re-created under a new id (UNKNOWN_TOPIC_ID); purging it from the producer and producing its records again",
			"topic", p.cfg.Topic)
		p.cl.PurgeTopicsFromProducing(p.cfg.Topic)
		for {
			p.retryMu.Lock()
			settled := int64(len(p.retry)) == p.inFlight.Load()
			p.retryMu.Unlock()
			if settled {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.retryMu.Lock()
		batch := p.retry
		p.retry = nil
		p.retryMu.Unlock()
		sort.Slice(batch, func(i, j int) bool { return batch[i].seq < batch[j].seq })
		for _, pr := range batch {
			pr.Record = kgo.Record{Key: pr.Key, Value: pr.Value, Timestamp: pr.Timestamp}
			p.reproduced.Add(1)
			p.m.retried.Inc()
			p.cl.Produce(p.produceCtx, &pr.Record, p.promiseFn)
		}
		p.retryMu.Lock()
		if len(p.retry) == 0 {
			p.recovering = false
			p.retryMu.Unlock()
			return
		}
		p.retryMu.Unlock()
	}
}

// drain waits until no record is in flight or ctx ends.
func (p *Publisher) drain(ctx context.Context) error {
	for {
		if err := p.cl.Flush(ctx); err != nil {
			return err
		}
		p.retryMu.Lock()
		busy := p.recovering
		p.retryMu.Unlock()
		if !busy && p.inFlight.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// failLeftovers runs after Close: it waits for the promises Close set off
// and fails records that were waiting to be produced again.
func (p *Publisher) failLeftovers() {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.retryMu.Lock()
		settled := !p.recovering && int64(len(p.retry)) == p.inFlight.Load()
		p.retryMu.Unlock()
		if settled {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.retryMu.Lock()
	left := p.retry
	p.retry = nil
	p.retryMu.Unlock()
	for _, pr := range left {
		p.fail(pr, kgo.ErrClientClosed)
	}
}

// Reason maps a produce error to a bounded metric label: the Kafka error
// code in lower case (e.g. "message_too_large"), or a client condition.
func Reason(err error) string {
	var ke *kerr.Error
	switch {
	case errors.As(err, &ke):
		return strings.ToLower(ke.Message)
	case errors.Is(err, kgo.ErrRecordTimeout):
		return "delivery_timeout"
	case errors.Is(err, kgo.ErrRecordRetries):
		return "retries_exhausted"
	case errors.Is(err, kgo.ErrMaxBuffered):
		return "buffer_full"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrClientClosed), errors.Is(err, kgo.ErrAborting):
		return "flush_timeout"
	}
	return "other"
}

type batchHook struct{ h prometheus.Histogram }

func (b batchHook) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	b.h.Observe(float64(m.NumRecords))
}

// failLogger logs failures sampled: the first of each reason, then at most
// one line per reason every 10 s with the count since.
type failLogger struct {
	log    *slog.Logger
	mu     sync.Mutex
	counts map[string]uint64
	last   map[string]time.Time
	since  map[string]uint64
}

func (f *failLogger) note(reason string, r *kgo.Record, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts, f.last, f.since = map[string]uint64{}, map[string]time.Time{}, map[string]uint64{}
	}
	f.counts[reason]++
	f.since[reason]++
	if now := time.Now(); now.Sub(f.last[reason]) >= 10*time.Second {
		f.log.Error("records failed", "reason", reason, "err", err, "count", f.since[reason],
			"topic", r.Topic, "partition", r.Partition)
		f.last[reason] = now
		f.since[reason] = 0
	}
}

func (f *failLogger) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := make([]string, 0, len(f.counts))
	for reason, n := range f.counts {
		parts = append(parts, fmt.Sprintf("%s: %d", reason, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
