package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/enrich"
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

// add is the stream's Report function.
func (m *metrics) add(st *enrich.Stats) {
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
