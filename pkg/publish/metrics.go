package publish

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/spool"
)

// metrics are flowpublish's own; franz-go's client metrics (connections,
// bytes on the wire, request latency) come from kafkaopt.WithMetrics.
type metrics struct {
	recordsIn   prometheus.CounterFunc
	bytesIn     prometheus.Counter
	produced    prometheus.CounterFunc
	failed      *prometheus.CounterVec
	retried     prometheus.Counter
	inputErrors prometheus.Counter
	latency     prometheus.Histogram
	batch       prometheus.Histogram

	// With a spool.
	spoolSync prometheus.Histogram
}

// newMetrics reads the record counts from the Publisher's own atomics at
// scrape time rather than keeping a second counter per record.
func newMetrics(reg prometheus.Registerer, read, produced *atomic.Uint64, buffered *atomic.Int64) *metrics {
	m := &metrics{
		recordsIn: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flowpublish_records_in_total", Help: "Flow records read from the input."},
			func() float64 { return float64(read.Load()) }),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_bytes_in_total", Help: "Bytes of flow records read (frame bodies or JSON lines)."}),
		produced: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "flowpublish_records_produced_total", Help: "Records acknowledged by Kafka."},
			func() float64 { return float64(produced.Load()) }),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowpublish_records_failed_total", Help: "Records that finally failed to be produced, by reason (Kafka error code or client condition)."},
			[]string{"reason"}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_records_reproduced_total", Help: "Records produced again after their topic was re-created under a new id."}),
		inputErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_input_errors_total", Help: "Bad frames or lines that stopped the input."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowpublish_produce_latency_seconds",
			Help:    fmt.Sprintf("Time from reading a record to its acknowledgement (one record in %d, in read order).", latencySample),
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 14), // 0.5 ms .. ~75 s
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowpublish_batch_records",
			Help:    "Records per produced batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}),
	}
	m.spoolSync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "flowpublish_spool_sync_duration_seconds",
		Help:    "Time the periodic fsync of the spool took.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 0.1 ms .. 26 s
	})
	reg.MustRegister(m.recordsIn, m.bytesIn, m.produced, m.failed, m.retried, m.inputErrors, m.latency, m.batch,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flowpublish_records_buffered", Help: "Records read but not yet acknowledged or failed."},
			func() float64 { return float64(buffered.Load()) }))
	return m
}

// registerSpoolMetrics exposes the spool's state, read at scrape time.
func registerSpoolMetrics(reg prometheus.Registerer, sp *spool.Spool, m *metrics) {
	stat := func(f func(spool.Stats) int64) func() float64 {
		return func() float64 { return float64(f(sp.Stats())) }
	}
	gauge := func(name, help string, f func(spool.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, stat(f))
	}
	counter := func(name, help string, labels prometheus.Labels, f func(spool.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, stat(f))
	}
	const dropped = "Records dropped because the spool was full, by --spool-full policy."
	const damaged = "Damage found in spool segments: a segment cut inside a record (torn_tail, cut), a record failing its checksum (checksum, skipped), a bad segment header (bad_header)."
	reg.MustRegister(m.spoolSync,
		counter("flowpublish_spool_drained_records_total", "Records read back from the spool's files to be produced (Kafka had fallen behind, or a previous run left them).", nil,
			func(s spool.Stats) int64 { return s.Drained }),
		gauge("flowpublish_spool_records", "Records in the spool not yet acknowledged by Kafka.",
			func(s spool.Stats) int64 { return s.Records }),
		gauge("flowpublish_spool_bytes", "Size of the spool's segment files.",
			func(s spool.Stats) int64 { return s.Bytes }),
		gauge("flowpublish_spool_segments", "Segment files in the spool.",
			func(s spool.Stats) int64 { return int64(s.Segments) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "flowpublish_spool_oldest_record_age_seconds",
			Help: "Age of the oldest record in the spool not yet acknowledged (0 when empty)."},
			func() float64 { return sp.Stats().OldestAge.Seconds() }),
		counter("flowpublish_spool_recovered_records_total", "Records found in the spool at start, left by a previous run.", nil,
			func(s spool.Stats) int64 { return s.Recovered }),
		counter("flowpublish_spool_dropped_records_total", dropped, prometheus.Labels{"reason": "drop_oldest"},
			func(s spool.Stats) int64 { return s.DroppedOldest }),
		counter("flowpublish_spool_dropped_records_total", dropped, prometheus.Labels{"reason": "drop_newest"},
			func(s spool.Stats) int64 { return s.DroppedNewest }),
		counter("flowpublish_spool_corruptions_total", damaged, prometheus.Labels{"reason": "torn_tail"},
			func(s spool.Stats) int64 { return s.TornTails }),
		counter("flowpublish_spool_corruptions_total", damaged, prometheus.Labels{"reason": "checksum"},
			func(s spool.Stats) int64 { return s.Damaged }),
		counter("flowpublish_spool_corruptions_total", damaged, prometheus.Labels{"reason": "bad_header"},
			func(s spool.Stats) int64 { return s.BadHeaders }),
	)
}
