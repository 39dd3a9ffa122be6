package publish

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are flowpublish's own; franz-go's client metrics (connections,
// bytes on the wire, request latency) come from kafkaopt.WithMetrics.
type metrics struct {
	recordsIn   prometheus.Counter
	bytesIn     prometheus.Counter
	produced    prometheus.Counter
	failed      *prometheus.CounterVec
	retried     prometheus.Counter
	inputErrors prometheus.Counter
	latency     prometheus.Histogram
	batch       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, buffered func() float64) *metrics {
	m := &metrics{
		recordsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_records_in_total", Help: "Flow records read from the input."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_bytes_in_total", Help: "Bytes of flow records read (frame bodies or JSON lines)."}),
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_records_produced_total", Help: "Records acknowledged by Kafka."}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowpublish_records_failed_total", Help: "Records that finally failed to be produced, by reason (Kafka error code or client condition)."},
			[]string{"reason"}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_records_reproduced_total", Help: "Records produced again after their topic was re-created under a new id."}),
		inputErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowpublish_input_errors_total", Help: "Bad frames or lines that stopped the input."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flowpublish_produce_latency_seconds",
			Help:    "Time from handing a record to the producer to its acknowledgement (one record in 8, in read order).",
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
			Name: "flowpublish_records_buffered", Help: "Records read but not yet acknowledged or failed."}, buffered))
	return m
}
