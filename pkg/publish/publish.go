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
//
// Spool (Config.Spool, see pkg/spool): every record read is written to a
// spool directory first and produced from it in order, so reading never
// waits for Kafka and nothing read is lost to a crash: a Publisher started
// on the same directory delivers what was not acknowledged. The reader
// frames records into slabs and writes them to the spool before each read
// that may wait; a drainer produces the spool's chunks (from memory while
// Kafka keeps up, read back from the files once it fell behind); the
// acknowledgements, in any order, advance the spool's acknowledged position
// chunk by chunk, in order.
//
// The package is split by concern: reader.go (input to records, including
// the zero-copy pass-through of bin frames, checked by wire.ScanFrames),
// producer.go (the franz-go client, promises,
// recovery), spooled.go (the spool's reader and producer sides), slab.go
// (record memory), key.go (partition keys), metrics.go.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/spool"
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

	// Spool, when set, makes every record read go to a spool directory
	// first: reading never waits for Kafka, records are produced from the
	// spool in order, survive a crash, and leave it once acknowledged.
	Spool *spool.Options

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
	// With a spool: records held in it (at the end of Run: left for the
	// next start), produced from its files, and dropped when it was full.
	Spooled, Drained, Dropped uint64
}

// pending is one record in the producer's hands, taken from the slab its
// value lies in (see slab.next). The kgo.Record comes first so that the
// promise, which gets &pending.Record, can convert back without a
// per-record closure.
type pending struct {
	kgo.Record
	slab *slab // nil for a value too large for slabs
	seq  uint64
	ack  *ackEntry // the spool chunk it came from, if spooled
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

	read, produced, failed, reproduced, kept atomic.Uint64

	// retryMu guards the retry queue and recovering; settled is
	// broadcast when they or the records in flight change while someone
	// waits (see waitUntil).
	retryMu    sync.Mutex
	settled    sync.Cond
	waiters    atomic.Int32
	retry      []*pending
	recovering bool

	// With Config.Spool: the spool, its writer (the reader's side) and
	// the acknowledgements in chunk order (the drainer's side).
	sp   *spool.Spool
	sw   *spoolWriter
	acks *acker

	failLog failLogger
	closed  sync.Once
}

// New builds the producer client from the connection options (see
// pkg/kafkaopt) and cfg, and opens (and locks) the spool if cfg has one.
// Metrics are registered on reg.
func New(cfg Config, conn []kgo.Opt, reg prometheus.Registerer, log *slog.Logger) (*Publisher, error) {
	popts, err := cfg.ProducerOpts()
	if err != nil {
		return nil, err
	}
	p := &Publisher{cfg: cfg, log: log, slabs: newSlabs(), produceCtx: context.Background()}
	p.settled.L = &p.retryMu
	p.failLog.log = log
	p.promiseFn = p.promise
	p.m = newMetrics(reg, &p.read, &p.produced, &p.inFlight)
	if cfg.Spool != nil {
		opt := *cfg.Spool
		opt.Log = log
		opt.OnSync = func(d time.Duration) { p.m.spoolSync.Observe(d.Seconds()) }
		if p.sp, err = spool.Open(opt); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		p.sw = &spoolWriter{p: p}
		p.acks = &acker{sp: p.sp}
		registerSpoolMetrics(reg, p.sp, p.m)
	}
	opts := slices.Concat(conn, popts, []kgo.Opt{
		kgo.WithHooks(batchHook{p.m.batch}),
		kgo.ProducerOnDataLossDetected(func(topic string, partition int32) {
			log.Warn("kafka reported possible data loss on a partition (broker lost acknowledged data)",
				"topic", topic, "partition", partition)
		}),
	})
	p.cl, err = kgo.NewClient(opts...)
	if err != nil {
		if p.sp != nil {
			p.sp.Close()
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	return p, nil
}

// Stats returns the counts so far.
func (p *Publisher) Stats() Stats {
	st := Stats{Read: p.read.Load(), Produced: p.produced.Load(), Failed: p.failed.Load(), Reproduced: p.reproduced.Load()}
	if p.sp != nil {
		ss := p.sp.Stats()
		st.Spooled, st.Drained = uint64(ss.Records), uint64(ss.Drained)
		st.Dropped = uint64(ss.DroppedOldest + ss.DroppedNewest)
	}
	return st
}

// Close closes the client (buffered records fail) and the spool (what it
// holds stays for the next start). Run calls it.
func (p *Publisher) Close() {
	p.closed.Do(func() {
		p.cl.Close()
		if p.sp != nil {
			if err := p.sp.Close(); err != nil {
				p.log.Error("spool: closing", "err", err)
			}
		}
	})
}

// Run reads records from r and produces them until EOF, a bad record, or
// ctx's cancellation, then waits for every record to be acknowledged and
// closes the client. When ctx is cancelled while a read blocks, Run
// interrupts it through r's SetReadDeadline (a pollable *os.File) or Close.
//
// With a spool, every record read is written to it first and produced
// from it (see Config.Spool); at the end, what Kafka did not acknowledge
// stays in the spool, and is not an error.
//
// It returns nil when every record read was acknowledged (or is kept in
// the spool); otherwise an error that names the bad input or counts the
// failed records.
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
			if p.sp == nil {
				beginDrain()
			} else {
				// The spool keeps what was not produced yet: stop the
				// drainer, and let a writer blocked on a full spool go on.
				p.sp.Interrupt()
				p.sp.StopReading()
			}
			interrupt(r)
		case <-readDone:
		}
	}()
	var drainerErr chan error
	if p.sp != nil {
		drainerErr = make(chan error, 1)
		go func() { drainerErr <- p.drainSpool() }()
	}
	readErr := p.readLoop(ctx, r)
	close(readDone)
	if p.sp != nil {
		readErr = errors.Join(readErr, p.sw.close())
		p.sp.CloseWrite()
		readErr = errors.Join(readErr, p.awaitDrainer(ctx, drainerErr, cancelDrain))
	}
	beginDrain()
	p.slabs.close()

	if err := p.drain(drainCtx); err != nil {
		if p.sp != nil {
			p.log.Warn("flush timed out; records not acknowledged stay in the spool",
				"timeout", p.cfg.FlushTimeout, "buffered", p.inFlight.Load())
		} else {
			p.log.Error("flush timed out; records still unacknowledged will fail",
				"timeout", p.cfg.FlushTimeout, "buffered", p.inFlight.Load())
		}
	}
	p.Close()
	p.failLeftovers()

	st := p.Stats()
	attrs := []any{"read", st.Read, "produced", st.Produced, "failed", st.Failed, "reproduced", st.Reproduced}
	if p.sp != nil {
		attrs = append(attrs, "spooled", st.Spooled, "drained", st.Drained, "dropped", st.Dropped)
		if st.Spooled > 0 {
			p.log.Warn("records not acknowledged stay in the spool; they are delivered at the next start",
				"count", st.Spooled, "dir", p.sp.Dir())
		}
	}
	p.log.Info("done", attrs...)
	var errs []error
	if readErr != nil {
		errs = append(errs, readErr)
	}
	if st.Failed > 0 {
		errs = append(errs, fmt.Errorf("publish: %d of %d records failed (%s)", st.Failed, st.Read, p.failLog.summary()))
	}
	return errors.Join(errs...)
}
