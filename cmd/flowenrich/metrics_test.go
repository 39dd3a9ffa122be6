package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowpipe/flowpipe/pkg/enrich"
)

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	e, err := enrich.New(enrich.Config{ASNPath: f.asn, CountryPath: f.country, NetworksPath: f.nets})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.loaded(e)
	st := enrich.Stats{Records: 3, Written: 3}
	st.Lookups[enrich.DatabaseASN][enrich.ResultHit] = 4
	st.Lookups[enrich.DatabaseNetworks][enrich.ResultSkipped] = 2
	m.add(&st)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	want := `
# HELP flowenrich_records_in_total Records read from the input.
# TYPE flowenrich_records_in_total counter
flowenrich_records_in_total 3
# HELP flowenrich_networks Named networks loaded from the networks file.
# TYPE flowenrich_networks gauge
flowenrich_networks 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "flowenrich_records_in_total", "flowenrich_networks"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.lookups[enrich.DatabaseASN][enrich.ResultHit]); got != 4 {
		t.Errorf("asn hits %v", got)
	}
	if n := testutil.CollectAndCount(reg, "flowenrich_database_build_timestamp_seconds"); n != 2 {
		t.Errorf("%d build timestamps", n)
	}
}
