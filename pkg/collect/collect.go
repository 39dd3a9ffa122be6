// Package collect receives flow export datagrams (from UDP sockets or pcap
// files), decodes them on worker goroutines and writes the records as one
// stream. It is the engine of flowcollect.
//
// Data path: a reader per socket (recvmmsg on Linux, 64 datagrams a call;
// one datagram a read elsewhere) copies each datagram into a chunk for the
// worker its exporter hashes to; chunks come from a fixed per-worker free
// list, so the queue is bounded and a full queue drops (counted) instead of
// blocking the socket. A decoder (one set of Decoders, the exporters'
// metric handles, an output batch) turns datagrams into encoded records;
// each worker goroutine owns one. Whole batches go through one channel to
// the single writer goroutine. Nothing is locked or allocated per record.
//
// With Workers 0, the default, each socket's reader decodes what it reads
// itself with a decoder of its own: no copy and no goroutine hand-off per packet, which saves 20-35%
// of the CPU per record (scripts/bench/results.md); parallelism then comes
// from ?count=N sockets, and an exporter stays in order as long as its
// source port (on which SO_REUSEPORT hashes) does not change. Workers N
// spread even one busy exporter over N cores, at that extra cost.
package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/telemetry"
)

// Decoders are the decoders of one goroutine that decodes (a worker, or a
// socket reader with Workers 0). A nil decoder makes its family's packets
// decode errors (reason "version").
type Decoders struct {
	NetFlow decode.Decoder // NetFlow v5, v9 and IPFIX
	SFlow   decode.Decoder
}

// Encoder appends one record to dst in the output format.
type Encoder func(dst []byte, m *flowpb.FlowMessage) []byte

// Config configures a Collector.
type Config struct {
	Listens []Listen
	// Workers decode in parallel; one exporter always goes to the same one.
	// 0 decodes on each socket's reader goroutine instead: no hand-off,
	// the least CPU per packet at low and medium rates, in order per
	// exporter as long as its source port (which SO_REUSEPORT hashes on)
	// does not change.
	Workers int
	// QueueChunks is each worker's queue length, in chunks of up to 64 KiB
	// of datagrams.
	QueueChunks int
	// QueueWait is how long a socket reader waits for room in a full
	// worker queue before it drops (counted, reason "queue_full"); the
	// socket's receive buffer fills meanwhile. 0 drops at once.
	QueueWait time.Duration
	// Allow lists the exporter networks accepted; empty accepts all.
	Allow []netip.Prefix
	// FlushInterval bounds how long a record waits before it is written.
	FlushInterval time.Duration
	// NewDecoders builds the decoders of one goroutine that decodes; obs
	// receives their sequence events.
	NewDecoders func(worker int, obs decode.Observer) (Decoders, error)
	// Encode is the output format; nil means AppendFrame (bin).
	Encode Encoder
	// MaxExporterLabels caps the exporter label values of the metrics.
	MaxExporterLabels int
	// Log receives drop and error explanations (rate-limited) and socket
	// details; nil discards.
	Log *slog.Logger
}

// DefaultConfig returns a Config with the defaults of flowcollect.
func DefaultConfig() Config {
	return Config{
		Workers:           0,
		QueueChunks:       256,
		QueueWait:         100 * time.Millisecond,
		FlushInterval:     100 * time.Millisecond,
		MaxExporterLabels: DefaultMaxExporterLabels,
	}
}

// Parallelism is how many goroutines decode at once: the workers, or
// with Workers 0 one per socket (at least one: pcap input decodes on the
// caller's). The writer and the socket readers in front of workers add
// little CPU of their own, so a process needs no more CPUs than this.
func (c Config) Parallelism() int {
	if c.Workers > 0 {
		return c.Workers
	}
	n := 0
	for _, l := range c.Listens {
		n += max(l.Count, 1)
	}
	return max(n, 1)
}

// Validate reports every problem of c.
func (c Config) Validate() error {
	var errs []error
	if c.Workers < 0 || c.Workers > 1024 {
		errs = append(errs, fmt.Errorf("collect: workers must be 0-1024, got %d", c.Workers))
	}
	if c.QueueChunks < 1 {
		errs = append(errs, fmt.Errorf("collect: queue must be >= 1, got %d", c.QueueChunks))
	}
	if c.FlushInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("collect: flush interval must be >= 1ms, got %s", c.FlushInterval))
	}
	if c.NewDecoders == nil {
		errs = append(errs, errors.New("collect: no decoders"))
	}
	return errors.Join(errs...)
}

// Collector runs the workers and the writer; sources feed it.
type Collector struct {
	cfg     Config
	metrics *metrics
	socks   *socketCollector
	encode  Encoder
	direct  bool // bin output: decoders that can append records do (decode.Appender)
	log     *slog.Logger

	workers   []*worker
	workersWG sync.WaitGroup
	out       chan *outBatch
	batches   chan *outBatch // free list: a sync.Pool would be emptied by every GC
	writer    io.Writer
	writeErr  error // set by the writer before it closes failed
	writerWG  sync.WaitGroup
	failed    chan struct{} // closed when the writer fails
	stats     stats
	inline    []*decoder // Workers == 0: one per socket (and one for pcap input)
	gapCount  int64
	gapMu     sync.Mutex

	sockets []*socket
	logs    *telemetry.Throttle
	closed  bool
}

// New builds a collector writing to out and registers its metrics on reg.
// Call Start, feed it (Serve, ReadPcap), then Close.
func New(cfg Config, out io.Writer, reg prometheus.Registerer) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Collector{
		cfg:     cfg,
		metrics: newMetrics(reg, cfg.MaxExporterLabels),
		socks:   newSocketCollector(),
		encode:  cfg.Encode,
		log:     cfg.Log,
		out:     make(chan *outBatch, 4*max(cfg.Workers, 1)),
		writer:  out,
		failed:  make(chan struct{}),
		logs:    telemetry.NewThrottle(10*time.Second, 1),
	}
	if c.encode == nil {
		c.encode, c.direct = AppendFrame, true
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.batches = make(chan *outBatch, 6*max(cfg.Workers, 1)+2)
	reg.MustRegister(c.socks)
	for i := 0; i < cfg.Workers; i++ {
		d, err := c.newDecoder(i)
		if err != nil {
			return nil, err
		}
		c.workers = append(c.workers, newWorker(d, cfg.QueueChunks))
	}
	return c, nil
}

// Start starts the workers and the writer.
func (c *Collector) Start() {
	c.writerWG.Add(1)
	go c.writeLoop()
	for _, w := range c.workers {
		c.workersWG.Add(1)
		go func() {
			defer c.workersWG.Done()
			w.run(c.cfg.FlushInterval, &c.stats)
		}()
	}
}

// outputFailed says whether writing the output failed; Close then returns
// the error.
func (c *Collector) outputFailed() bool {
	select {
	case <-c.failed:
		return true
	default:
		return false
	}
}

func (c *Collector) getBatch() *outBatch {
	select {
	case b := <-c.batches:
		b.data = b.data[:0]
		return b
	default:
		return &outBatch{data: make([]byte, 0, batchBytes+batchSlack)}
	}
}

// writeLoop is the only goroutine writing to the output. After a write
// error it keeps draining so that workers never block on it.
func (c *Collector) writeLoop() {
	defer c.writerWG.Done()
	for b := range c.out {
		if c.writeErr == nil {
			if _, err := c.writer.Write(b.data); err != nil {
				c.writeErr = fmt.Errorf("collect: write output: %w", err)
				close(c.failed)
			}
		}
		if cap(b.data) <= 4*batchBytes { // a huge record grew it: let it go
			select {
			case c.batches <- b:
			default:
			}
		}
	}
}

// Open binds every listener's sockets, so that a busy port is a startup
// error, and logs the receive buffer each got.
func (c *Collector) Open(ctx context.Context) error {
	for _, l := range c.cfg.Listens {
		socks, err := openSockets(ctx, l)
		if err != nil {
			for _, s := range c.sockets {
				s.conn.Close()
			}
			c.sockets = nil
			return err
		}
		for _, s := range socks {
			if s.inode != 0 { // Linux: its kernel drops are in /proc/net/udp
				c.socks.add(s.inode, l.URI, s.local.Port())
			}
			if c.cfg.Workers == 0 {
				if s.inline, err = c.newDecoder(len(c.inline)); err != nil {
					return err
				}
				c.inline = append(c.inline, s.inline)
			}
		}
		c.log.Info("listening", "uri", l.URI, "addr", socks[0].local.String(), "sockets", len(socks),
			"rcvbuf_requested", l.RcvBuf, "rcvbuf_effective", socks[0].rcvBuf)
		if l.RcvBuf > 0 && socks[0].rcvBuf < l.RcvBuf {
			c.log.Warn("receive buffer smaller than requested; raise net.core.rmem_max or run as root",
				"uri", l.URI, "requested", l.RcvBuf, "effective", socks[0].rcvBuf)
		}
		c.sockets = append(c.sockets, socks...)
	}
	return nil
}

// LocalAddrs are the bound addresses of the sockets, in listener order.
func (c *Collector) LocalAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range c.sockets {
		out = append(out, s.local)
	}
	return out
}

// Serve reads the opened sockets until ctx is done (or the output fails),
// then drains what the kernel queued, and closes them. Records already
// read are decoded and written by Close.
func (c *Collector) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(c.sockets))
	for _, s := range c.sockets {
		wg.Add(1)
		go func(s *socket) {
			defer wg.Done()
			var r *router
			if s.inline == nil {
				r = c.newRouter(false)
			}
			if err := s.readLoop(ctx, r, s.inline); err != nil {
				errs <- err
				cancel()
			}
		}(s)
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-c.failed:
			cancel()
		}
		// An expired deadline unblocks recvmmsg; readers then drain.
		for _, s := range c.sockets {
			_ = s.conn.SetReadDeadline(time.Now())
		}
	}()
	wg.Wait()
	for _, s := range c.sockets {
		s.conn.Close()
	}
	close(errs)
	return errors.Join(collectErrs(errs)...)
}

func collectErrs(ch chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

// Close waits for the workers to decode everything queued, flushes their
// batches, stops the writer and returns the first write error. No source
// may feed the collector after Close starts.
func (c *Collector) Close() error {
	if c.closed {
		return c.writeErr
	}
	c.closed = true
	for _, w := range c.workers {
		close(w.in)
	}
	c.workersWG.Wait()
	for _, d := range c.inline { // their readers have returned
		d.send()
	}
	close(c.out)
	c.writerWG.Wait()
	return c.writeErr
}

// Totals are the counts since the collector started.
type Totals struct {
	Packets, Records, DecodeErrors uint64
}

// Totals returns the packets decoded, records written and decode errors.
func (c *Collector) Totals() Totals {
	return Totals{Packets: c.stats.packets.Load(), Records: c.stats.records.Load(), DecodeErrors: c.stats.errors.Load()}
}

func (c *Collector) allowed(a netip.Addr) bool {
	for _, p := range c.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// logDrop explains a drop, at most once per 10 s for each reason; the
// metric counts them all.
func (c *Collector) logDrop(reason string, from netip.AddrPort) {
	if held, ok := c.logs.Allow(reason); ok {
		c.log.Warn("dropped datagram (further drops within 10s are only counted)", "reason", reason,
			"exporter", from.String(), "suppressed", held)
	}
}

func (c *Collector) logDecodeError(err error) {
	if held, ok := c.logs.Allow("decode"); ok {
		c.log.Warn("decode error (further errors within 10s are only counted)", "err", err, "suppressed", held)
	} else if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("decode error", "err", err)
	}
}
