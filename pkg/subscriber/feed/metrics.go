package feed

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// reasonsBySource are the rejection reasons each source can have, so that
// the metrics show every series that can move, and only those.
var reasonsBySource = [subscriber.NumSources][]subscriber.Reason{
	subscriber.SourceDetail: {subscriber.ReasonMalformed, subscriber.ReasonNoStatus, subscriber.ReasonUnusedStatus,
		subscriber.ReasonNoSessionID, subscriber.ReasonNoTime},
	subscriber.SourceRADIUS: {subscriber.ReasonMalformed, subscriber.ReasonNoStatus, subscriber.ReasonUnusedStatus,
		subscriber.ReasonNoSessionID, subscriber.ReasonNoTime, subscriber.ReasonNotAllowed, subscriber.ReasonNotAccounting,
		subscriber.ReasonBadAuthenticator, subscriber.ReasonBadMessageAuth},
	subscriber.SourceKafka: {subscriber.ReasonMalformed, subscriber.ReasonNoStatus, subscriber.ReasonUnusedStatus,
		subscriber.ReasonNoSessionID, subscriber.ReasonNoTime, subscriber.ReasonBadJSON},
}

// collector exposes the table's and the sources' counters, read at
// scrape time from their atomics: nothing on the record paths touches
// Prometheus.
type collector struct {
	f                                   *Feeds
	sources                             []subscriber.Source
	sessions, records, rejected         *prometheus.Desc
	clock, natBlocks, natEvents, natIgn *prometheus.Desc
}

// Register registers the metrics of the sessions and their sources on
// reg, named namespace_*: sessions by source and state, accounting
// records read and rejected by source and reason, the sessions' clock,
// NAT port blocks and events, state saves.
func (f *Feeds) Register(reg prometheus.Registerer, namespace string) {
	ns := namespace
	name := func(n string) string { return prometheus.BuildFQName(ns, "", n) }
	c := &collector{f: f,
		sessions: prometheus.NewDesc(name("sessions"),
			"Accounting sessions held, by the source that opened them and state (active: open; stopped: kept for late flows).",
			[]string{"source", "state"}, nil),
		records: prometheus.NewDesc(name("accounting_records_total"),
			"Accounting records read, by source (RADIUS: datagrams received).", []string{"source"}, nil),
		rejected: prometheus.NewDesc(name("accounting_records_rejected_total"),
			"Accounting records not applied, by source and reason.", []string{"source", "reason"}, nil),
		clock: prometheus.NewDesc(name("sessions_clock_timestamp_seconds"),
			"Newest event time seen in accounting and NAT events: the sessions' clock, which history is pruned against.", nil, nil),
		natBlocks: prometheus.NewDesc(name("nat_port_blocks"),
			"NAT port blocks held, by state (open: allocated; closed: kept for late flows).", []string{"state"}, nil),
		natEvents: prometheus.NewDesc(name("nat_events_total"),
			"NAT port-block events applied from the flow stream, by event.", []string{"event"}, nil),
		natIgn: prometheus.NewDesc(name("nat_events_ignored_total"),
			"NAT events not applied, by reason (unmatched: a de-allocation of a block never seen allocated; unsupported: another event or incomplete fields).",
			[]string{"reason"}, nil),
	}
	if len(f.cfg.DetailPatterns) > 0 {
		c.sources = append(c.sources, subscriber.SourceDetail)
	}
	if f.cfg.Listen != "" {
		c.sources = append(c.sources, subscriber.SourceRADIUS)
	}
	if f.cfg.Topic != "" {
		c.sources = append(c.sources, subscriber.SourceKafka)
	}
	saves := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "sessions_state_saves_total",
		Help: "Saves of the sessions state file, by result."}, []string{"result"})
	f.saves = [2]prometheus.Counter{saves.WithLabelValues("success"), saves.WithLabelValues("failure")}
	reg.MustRegister(c, saves)
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	t := c.f.table
	active, stopped := t.Counts()
	counts := &c.f.counts
	for _, s := range c.sources {
		name := s.String()
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(active[s]), name, "active")
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(stopped[s]), name, "stopped")
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.CounterValue, float64(counts.Read[s].Load()), name)
		for _, r := range reasonsBySource[s] {
			ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(counts.Rejected[s][r].Load()), name, r.String())
		}
	}
	ch <- prometheus.MustNewConstMetric(c.clock, prometheus.GaugeValue, float64(t.Clock())/1e9)
	n := t.NATStats()
	ch <- prometheus.MustNewConstMetric(c.natBlocks, prometheus.GaugeValue, float64(n.Open), "open")
	ch <- prometheus.MustNewConstMetric(c.natBlocks, prometheus.GaugeValue, float64(n.Closed), "closed")
	ch <- prometheus.MustNewConstMetric(c.natEvents, prometheus.CounterValue, float64(n.Allocations), "port_block_allocation")
	ch <- prometheus.MustNewConstMetric(c.natEvents, prometheus.CounterValue, float64(n.Deallocations), "port_block_deallocation")
	ch <- prometheus.MustNewConstMetric(c.natIgn, prometheus.CounterValue, float64(n.Unmatched), "unmatched")
	ch <- prometheus.MustNewConstMetric(c.natIgn, prometheus.CounterValue, float64(n.Ignored), "unsupported")
}
