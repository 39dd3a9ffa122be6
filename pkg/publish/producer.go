package publish

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/flowpipe/flowpipe/pkg/wire"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

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

// produceFrames produces the records frames that fill frames (checked by
// wire.ScanFrames) in sl. Per-record costs are kept out of the loop: one clock
// read (franz-go truncates timestamps to milliseconds anyway), one lock
// and one update of each counter for all of them.
func (p *Publisher) produceFrames(sl *slab, frames []byte, records, bodies int) {
	if p.sw != nil {
		p.m.bytesIn.Add(float64(bodies))
		p.sw.frames(frames, records)
		return
	}
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
	if p.sw != nil {
		p.sw.add(key, body, bin)
		return
	}
	n := len(key) + len(body)
	if bin {
		n += wire.SizeVarint(uint64(len(body)))
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
	if pr.ack != nil && reason == "flush_timeout" {
		// Spooled: it stays in the spool for the next start.
		pr.ack.keep.Store(true)
		p.kept.Add(1)
		p.finish(pr)
		return
	}
	p.failed.Add(1)
	p.m.failed.WithLabelValues(reason).Inc()
	p.failLog.note(reason, &pr.Record, err)
	p.finish(pr)
}

// finish is the last use of pr: releasing its slab may hand pr to the
// reader again.
func (p *Publisher) finish(pr *pending) {
	if a := pr.ack; a != nil {
		p.acks.finish(a)
	}
	p.inFlight.Add(-1)
	p.slabs.release(pr.slab)
	p.wake()
}

// wake tells waitUntil's callers that the records in flight changed. It
// costs one atomic load unless someone waits.
func (p *Publisher) wake() {
	if p.waiters.Load() > 0 {
		p.retryMu.Lock()
		p.settled.Broadcast()
		p.retryMu.Unlock()
	}
}

// waitUntil waits until cond (called with retryMu held) holds or ctx
// ends. Every change it depends on (records in flight, the retry queue,
// recovering) is followed by a wake or a broadcast under retryMu.
func (p *Publisher) waitUntil(ctx context.Context, cond func() bool) error {
	p.waiters.Add(1)
	defer p.waiters.Add(-1)
	stop := context.AfterFunc(ctx, func() {
		p.retryMu.Lock()
		p.settled.Broadcast()
		p.retryMu.Unlock()
	})
	defer stop()
	p.retryMu.Lock()
	defer p.retryMu.Unlock()
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.settled.Wait()
	}
	return nil
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
	p.settled.Broadcast()
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
		_ = p.waitUntil(context.Background(), func() bool { return int64(len(p.retry)) == p.inFlight.Load() })
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
			p.settled.Broadcast()
			p.retryMu.Unlock()
			return
		}
		p.retryMu.Unlock()
	}
}

// drain waits until no record is in flight or ctx ends.
func (p *Publisher) drain(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil { // ends lingering at once
		return err
	}
	return p.waitUntil(ctx, func() bool { return !p.recovering && p.inFlight.Load() == 0 })
}

// failLeftovers runs after Close: it waits (at most 5 s) for the promises
// Close set off and fails records that were waiting to be produced again.
func (p *Publisher) failLeftovers() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.waitUntil(ctx, func() bool { return !p.recovering && int64(len(p.retry)) == p.inFlight.Load() })
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
