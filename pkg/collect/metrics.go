package collect

import (
	"net/netip"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/decode"
)

// DefaultMaxExporterLabels caps the distinct exporter label values; later
// exporters are counted under exporter="other".
const DefaultMaxExporterLabels = 1000

// maxGapSeries caps the (protocol, exporter, domain) series of the
// sequence-gap counter.
const maxGapSeries = 4096

// Drop reasons of flowcollect_packets_dropped_total.
const (
	DropQueueFull  = "queue_full"
	DropNotAllowed = "not_allowed"
	DropTruncated  = "truncated"
	DropUnknown    = "unknown_protocol"
)

var dropReasons = []string{DropQueueFull, DropNotAllowed, DropTruncated, DropUnknown}

// errorReasons are the label values decode.Reason returns.
var errorReasons = []string{"truncated", "version", "template_missing", "malformed", "limit", "other"}

var protocols = []decode.Protocol{decode.NetFlowV5, decode.NetFlowV9, decode.IPFIX, decode.SFlowV5, decode.ProtocolUnknown}

// metrics are the collector's Prometheus metrics. Workers cache the
// per-exporter handles, so no label map is built per packet.
type metrics struct {
	packets *prometheus.CounterVec
	records *prometheus.CounterVec
	bytes   *prometheus.CounterVec
	errors  *prometheus.CounterVec
	dropped *prometheus.CounterVec
	gaps    *prometheus.CounterVec
	resets  *prometheus.CounterVec

	drop    map[string]prometheus.Counter
	errorBy [5][6]prometheus.Counter // [protocol][reason index]

	labels *exporterLabels
}

func newMetrics(reg prometheus.Registerer, maxExporters int) *metrics {
	ns := "flowcollect"
	m := &metrics{
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "packets_received_total",
			Help: "Export datagrams received and accepted, by protocol and exporter."}, []string{"protocol", "exporter"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "records_total",
			Help: "Flow records decoded and written, by protocol and exporter."}, []string{"protocol", "exporter"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bytes_received_total",
			Help: "UDP payload bytes of the datagrams counted in packets_received_total."}, []string{"protocol", "exporter"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "decode_errors_total",
			Help: "Parts of datagrams skipped by the decoders, by protocol and reason."}, []string{"protocol", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "packets_dropped_total",
			Help: "Datagrams dropped before decoding, by reason."}, []string{"reason"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sequence_gaps_total",
			Help: "Export packets (IPFIX: records) lost on the way according to sequence numbers."}, []string{"protocol", "exporter", "domain"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sequence_resets_total",
			Help: "Sequence numbers going backwards (exporter restarts), by protocol."}, []string{"protocol"}),
		drop:   map[string]prometheus.Counter{},
		labels: &exporterLabels{max: maxExporters, names: map[netip.Addr]string{}},
	}
	if m.labels.max <= 0 {
		m.labels.max = DefaultMaxExporterLabels
	}
	for _, r := range dropReasons {
		m.drop[r] = m.dropped.WithLabelValues(r)
	}
	for _, p := range protocols {
		for i, r := range errorReasons {
			m.errorBy[p][i] = m.errors.WithLabelValues(p.String(), r)
		}
	}
	reg.MustRegister(m.packets, m.records, m.bytes, m.errors, m.dropped, m.gaps, m.resets)
	return m
}

func (m *metrics) decodeError(p decode.Protocol, reason string) {
	for i, r := range errorReasons {
		if r == reason {
			m.errorBy[p][i].Inc()
			return
		}
	}
	m.errorBy[p][len(errorReasons)-1].Inc()
}

// exporterLabels hands out exporter label values: the address text for the
// first max exporters, "other" afterwards. Only consulted on a cache miss.
type exporterLabels struct {
	mu    sync.Mutex
	max   int
	names map[netip.Addr]string
}

func (l *exporterLabels) name(a netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n, ok := l.names[a]; ok {
		return n
	}
	if len(l.names) >= l.max {
		return "other"
	}
	n := a.String()
	l.names[a] = n
	return n
}

// exporterKey identifies one cached set of handles.
type exporterKey struct {
	addr  netip.Addr
	proto decode.Protocol
}

type exporterCounters struct {
	packets, records, bytes prometheus.Counter
}

// workerMetrics is one worker's cache of handles; only its worker uses it,
// so it needs no lock. It is also the decoders' Observer.
type workerMetrics struct {
	m        *metrics
	byExp    map[exporterKey]*exporterCounters
	gaps     map[gapKey]prometheus.Counter
	gapCount *int64 // shared series count, guarded by gapMu
	gapMu    *sync.Mutex
}

type gapKey struct {
	addr   netip.Addr
	proto  decode.Protocol
	domain uint32
}

func (w *workerMetrics) exporter(a netip.Addr, p decode.Protocol) *exporterCounters {
	k := exporterKey{a, p}
	if c, ok := w.byExp[k]; ok {
		return c
	}
	if len(w.byExp) > 4*w.m.labels.max {
		// A flood of spoofed sources: stop growing the cache.
		n := "other"
		return &exporterCounters{w.m.packets.WithLabelValues(p.String(), n), w.m.records.WithLabelValues(p.String(), n), w.m.bytes.WithLabelValues(p.String(), n)}
	}
	n := w.m.labels.name(a)
	c := &exporterCounters{
		packets: w.m.packets.WithLabelValues(p.String(), n),
		records: w.m.records.WithLabelValues(p.String(), n),
		bytes:   w.m.bytes.WithLabelValues(p.String(), n),
	}
	w.byExp[k] = c
	return c
}

// SequenceGap implements decode.Observer.
func (w *workerMetrics) SequenceGap(p decode.Protocol, exporter netip.Addr, domain uint32, missed uint64) {
	k := gapKey{exporter, p, domain}
	c, ok := w.gaps[k]
	if !ok {
		w.gapMu.Lock()
		full := *w.gapCount >= maxGapSeries
		if !full {
			*w.gapCount++
		}
		w.gapMu.Unlock()
		if full {
			w.m.gaps.WithLabelValues(p.String(), "other", "other").Add(float64(missed))
			return
		}
		c = w.m.gaps.WithLabelValues(p.String(), w.m.labels.name(exporter), strconv.FormatUint(uint64(domain), 10))
		w.gaps[k] = c
	}
	c.Add(float64(missed))
}

// SequenceReset implements decode.Observer.
func (w *workerMetrics) SequenceReset(p decode.Protocol, _ netip.Addr, _ uint32) {
	w.m.resets.WithLabelValues(p.String()).Inc()
}
