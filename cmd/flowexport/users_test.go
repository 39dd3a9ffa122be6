package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/enrich"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// at is 2026-01-01 at hh:mm UTC, in Unix ns.
func at(hh, mm int) uint64 {
	return uint64(time.Date(2026, 1, 1, hh, mm, 0, 0, time.UTC).UnixNano())
}

// attributedFlows runs flows through flowenrich's stage with a session
// table built from accounting records (alice on 100.64.0.1 from 08:00 to
// 09:00, then bob on the same address from 09:10; carol on 100.64.0.2 and
// 2001:db8:c::/56), and returns the enriched records as flowpublish
// writes them to Kafka (one varint-framed message per record), with the
// bytes each user must show in each direction (sampling rate applied).
func attributedFlows(t *testing.T) (values [][]byte, rx, tx map[string]float64) {
	t.Helper()
	tbl := subscriber.New(subscriber.Config{})
	nas := netip.MustParseAddr("192.0.2.1")
	alice := subscriber.Record{Status: subscriber.StatusStart, NASIP: nas, SessionID: "a1", User: "alice@isp.example",
		FramedIP: netip.MustParseAddr("100.64.0.1"), EventTime: int64(at(8, 0))}
	stop := alice
	stop.Status, stop.EventTime = subscriber.StatusStop, int64(at(9, 0))
	bob := subscriber.Record{Status: subscriber.StatusStart, NASIP: nas, SessionID: "b1", User: "bob@isp.example",
		FramedIP: netip.MustParseAddr("100.64.0.1"), EventTime: int64(at(9, 10))}
	carol := subscriber.Record{Status: subscriber.StatusStart, NASIP: nas, SessionID: "c1", User: "carol@isp.example",
		FramedIP: netip.MustParseAddr("100.64.0.2"), EventTime: int64(at(8, 0))}
	carol.AddPrefix(netip.MustParsePrefix("2001:db8:c::/56"))
	for _, r := range []subscriber.Record{alice, stop, bob, carol} {
		if err := tbl.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	e, err := enrich.New(enrich.Config{Sessions: tbl})
	if err != nil {
		t.Fatal(err)
	}
	web := netip.MustParseAddr("198.51.100.7").AsSlice()
	flow := func(src, dst []byte, start uint64, bytes uint64) *flowpb.FlowMessage {
		return &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, SamplingRate: 10, SamplerAddress: nas.AsSlice(),
			SrcAddr: src, DstAddr: dst, TimeFlowStartNs: start, TimeReceivedNs: start + 60e9, Bytes: bytes, Packets: 1,
			SrcAs: 64500, DstAs: 15169}
	}
	a1, a2 := netip.MustParseAddr("100.64.0.1").AsSlice(), netip.MustParseAddr("100.64.0.2").AsSlice()
	v6 := netip.MustParseAddr("2001:db8:c:42::9").AsSlice()
	flows := []*flowpb.FlowMessage{
		flow(a1, web, at(8, 30), 100),  // alice transmits 1000
		flow(web, a1, at(8, 31), 2000), // alice receives 20000
		flow(web, a1, at(8, 59), 7),    // alice receives 70: a late flow, exported after her Stop
		flow(web, a1, at(9, 20), 300),  // bob receives 3000: the address was reassigned
		flow(a1, web, at(9, 5), 999),   // nobody: between alice's Stop and bob's Start
		flow(a2, a1, at(9, 30), 40),    // carol transmits 400, bob receives 400
		flow(web, v6, at(8, 40), 50),   // carol receives 500 on her delegated IPv6 prefix
	}
	var in bytes.Buffer
	w := framing.NewWriter(&in)
	for _, m := range flows {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s := enrich.NewStream(e, enrich.StreamConfig{In: &in, Out: &out, OutputFormat: framing.FormatBin})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := framing.NewReader(&out, 0)
	for {
		body, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, append(binary.AppendUvarint(nil, uint64(len(body))), body...))
	}
	if len(values) != len(flows) {
		t.Fatalf("%d records enriched, want %d", len(values), len(flows))
	}
	rx = map[string]float64{"alice@isp.example": 20070, "bob@isp.example": 3400, "carol@isp.example": 500}
	tx = map[string]float64{"alice@isp.example": 1000, "carol@isp.example": 400}
	return values, rx, tx
}

// TestGroupByUserPromQL carries subscriber fields set by flowenrich's
// attribution through Kafka into flowexport --group-by as,user, lets a
// real Prometheus scrape it and asks PromQL for each user's bytes in each
// direction, beside the AS pairs; a second instance with --max-users 1
// shows the folded users as "other".
func TestGroupByUserPromQL(t *testing.T) {
	prom := tools.Require(t, "prometheus")
	values, rx, tx := attributedFlows(t)
	const topic = "flows"
	c := startTopic(t, topic, nil)
	produceToPartition(t, c, topic, 0, values) // one partition: the cap keeps the first user seen
	broker := c.ListenAddrs()[0]
	addr, capped := freePort(t), freePort(t)
	common := []string{"--brokers", broker, "--topic", topic, "--start-offset", "earliest", "--asn-db", "none"}
	runFlowExport(t, append(common, "--group-by", "as,user", "--asn", "64500", "--metrics-listen", addr)...)
	runFlowExport(t, append(common, "--group-by", "user", "--max-users", "1", "--group", "capped", "--metrics-listen", capped)...)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "global:\n  scrape_interval: 1s\nscrape_configs:\n"+
		"  - job_name: users\n    static_configs:\n      - targets: ['%s']\n"+
		"  - job_name: capped\n    static_configs:\n      - targets: ['%s']\n", addr, capped), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := freePort(t)
	pctx, pcancel := context.WithCancel(context.Background())
	var plogs tools.Output
	cmd := exec.CommandContext(pctx, prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	cmd.Stdout, cmd.Stderr = &plogs, &plogs
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { pcancel(); _ = cmd.Wait() }()

	var total float64
	for _, v := range tx {
		total += v
	}
	for _, q := range []struct {
		query string
		want  map[string]float64
	}{
		{`sum by (user) (flowexport_user_receive_bytes_total{job="users"})`, rx},
		{`sum by (user) (flowexport_user_transmit_bytes_total{job="users"})`, tx},
		{`topk(1, sum by (user) (flowexport_user_receive_bytes_total{job="users"}))`,
			map[string]float64{"alice@isp.example": 20070}},
		{`sum by (user, hostname) (flowexport_user_receive_flows_total{job="users", user="alice@isp.example"})`,
			map[string]float64{"alice@isp.example/192.0.2.1": 2}},
		// The AS pairs beside: every flow is from AS 64500.
		{`sum by (source_as) (flow_transmit_bytes_total{job="users"})`, map[string]float64{"64500": 10 * (100 + 2000 + 7 + 300 + 999 + 40 + 50)}},
		// Capped at one series: the first one made (alice transmitting)
		// keeps counting, the rest of each direction is "other"; nothing
		// is lost.
		{`sum by (user) (flowexport_user_transmit_bytes_total{job="capped"})`,
			map[string]float64{"alice@isp.example": 1000, "other": 400}},
		{`sum by (user) (flowexport_user_receive_bytes_total{job="capped"})`,
			map[string]float64{"other": 20070 + 3400 + 500}},
		{`sum(flowexport_user_transmit_bytes_total{job="capped"})`, map[string]float64{"": total}},
		{`flowexport_users_folded_total{job="capped"}`, map[string]float64{"": 6}},
	} {
		by := byLabels(q.query)
		var got map[string]float64
		if !pollFor(40*time.Second, func() bool {
			got = promVector(promAddr, q.query, by...)
			return mapsEqual(got, q.want)
		}) {
			t.Errorf("%s = %v, want %v", q.query, got, q.want)
		}
	}
	if t.Failed() {
		t.Logf("prometheus log:\n%s", plogs.String())
	}
}
