package publish

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
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
	reg.MustRegister(m.recordsIn, m.bytesIn, m.produced, m.failed, m.retried, m.inputErrors, m.latency, m.batch,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "flowpublish_records_buffered", Help: "Records read but not yet acknowledged or failed."},
			func() float64 { return float64(buffered.Load()) }))
	return m
}
