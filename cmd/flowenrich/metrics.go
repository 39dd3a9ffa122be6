package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/enrich"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// metrics are flowenrich's Prometheus series. The stream adds its counts
// in batches (enrich.Stats), so nothing here is touched per record.
type metrics struct {
	recordsIn  prometheus.Counter
	recordsOut prometheus.Counter
	lookups    [3][3]prometheus.Counter // database, result
	reloads    *prometheus.CounterVec
	build      *prometheus.GaugeVec
	networks   prometheus.Gauge
	// flows by side and attribution (none, session, nat); nil without
	// session sources.
	attributed [2][subscriber.NumVia]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		recordsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowenrich_records_in_total", Help: "Records read from the input.",
		}),
		recordsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowenrich_records_out_total", Help: "Records written to the output.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowenrich_reloads_total", Help: "Reloads of the databases and networks file, by result.",
		}, []string{"result"}),
		build: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flowenrich_database_build_timestamp_seconds", Help: "Build time of the loaded database, from its metadata.",
		}, []string{"database"}),
		networks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowenrich_networks", Help: "Named networks loaded from the networks file.",
		}),
	}
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowenrich_lookups_total",
		Help: "Address lookups by database and result (skipped: no address, or private/reserved space).",
	}, []string{"database", "result"})
	for d, dn := range enrich.DatabaseNames {
		for r, rn := range enrich.ResultNames {
			m.lookups[d][r] = lookups.WithLabelValues(dn, rn)
		}
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	reg.MustRegister(m.recordsIn, m.recordsOut, lookups, m.reloads, m.build, m.networks)
	return m
}

// registerSessions adds the attribution counters, with session sources.
func (m *metrics) registerSessions(reg prometheus.Registerer) {
	attributed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowenrich_flows_attributed_total",
		Help: "Sides of flows given a subscriber, by side and how (session: a session held the address; nat: through a NAT port block).",
	}, []string{"side", "via"})
	unattributed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowenrich_flows_unattributed_total",
		Help: "Sides of flows whose address no session held at the flow's start, by side.",
	}, []string{"side"})
	for side, sn := range enrich.SideNames {
		m.attributed[side][subscriber.ViaNone] = unattributed.WithLabelValues(sn)
		m.attributed[side][subscriber.ViaSession] = attributed.WithLabelValues(sn, "session")
		m.attributed[side][subscriber.ViaNAT] = attributed.WithLabelValues(sn, "nat")
	}
	reg.MustRegister(attributed, unattributed)
}

// add is the stream's Report function.
func (m *metrics) add(st *enrich.Stats) {
	for side := range st.Subscribers {
		for v, n := range st.Subscribers[side] {
			if n > 0 && m.attributed[side][v] != nil {
				m.attributed[side][v].Add(float64(n))
			}
		}
	}
	m.recordsIn.Add(float64(st.Records))
	m.recordsOut.Add(float64(st.Written))
	for d := range st.Lookups {
		for r, n := range st.Lookups[d] {
			if n > 0 {
				m.lookups[d][r].Add(float64(n))
			}
		}
	}
}

// loaded records what the enricher holds now.
func (m *metrics) loaded(e *enrich.Enricher) {
	for _, d := range e.Databases() {
		m.build.WithLabelValues(d.Kind.String()).Set(float64(d.Build.Unix()))
	}
	if n := e.Networks(); n != nil {
		m.networks.Set(float64(n.Len()))
	}
}
