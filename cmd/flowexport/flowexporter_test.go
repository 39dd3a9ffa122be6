package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// What neptune-networks/flow-exporter documents, as its README and
// cmd/flow-exporter/main.go have it (read at commit a663b2f): the command
// lines users run, and the exposition it shows for AS397143.
const (
	flowExporterReadmeCommand = `./flow-exporter --brokers=kafka.fqdn.com:9092 --topic=pmacct.acct --asn=15169`
	flowExporterDockerCommand = `--brokers=kafka.fqdn.com:9092 --topic=pmacct.acct --asn=15169`
	flowExporterReadmeMetrics = `flow_receive_bytes_total{destination_as="397143",destination_as_name="NEPTUNE-NETWORKS - Neptune Networks",hostname="border.neptunenetworks.org",source_as="10318",source_as_name="CABLEVISION S.A."} 663
flow_transmit_bytes_total{destination_as="10318",destination_as_name="CABLEVISION S.A.",hostname="border.neptunenetworks.org",source_as="397143",source_as_name="NEPTUNE-NETWORKS - Neptune Networks"} 1137`
)

// flowExporterArgs turns one of flow-exporter's documented command lines
// into flowexport's arguments: the broker placeholder becomes the test
// broker and --addr an ephemeral port (its default, :9590, is a fixed port).
func flowExporterArgs(line, broker, addr string) []string {
	var args []string
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "./") {
			continue
		}
		args = append(args, strings.ReplaceAll(f, "kafka.fqdn.com:9092", broker))
	}
	return append(args, "--addr="+addr)
}

// pmacctJSON is one record of pmacct's kafka plugin with the aggregate of
// flow-exporter's README (src_host, dst_host, src_port, dst_port, src_as,
// dst_as, label).
func pmacctJSON(label string, src, dst uint32, bytes int) []byte {
	return fmt.Appendf(nil, `{"event_type": "purge", "label": %q, "as_src": %d, "as_dst": %d, "ip_src": "192.0.2.1", "ip_dst": "198.51.100.7", "port_src": 443, "port_dst": 50123, "stamp_inserted": "2019-11-17 12:00:00", "stamp_updated": "2019-11-17 12:05:01", "packets": 3, "bytes": %d}`,
		label, src, dst, bytes)
}

// startTopic starts a broker with topic (4 partitions) holding values,
// value i on partition i%4.
func startTopic(t *testing.T, topic string, values [][]byte) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if len(values) > 0 {
		produceTo(t, c, topic, values)
	}
	return c
}

func produceTo(t *testing.T, c *kfake.Cluster, topic string, values [][]byte) {
	t.Helper()
	produceToPartition(t, c, topic, -1, values)
}

// produceToPartition writes values to partition p, or round-robin for -1.
func produceToPartition(t *testing.T, c *kfake.Cluster, topic string, p int32, values [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: p, Value: v}
		if p < 0 {
			recs[i].Partition = int32(i % 4)
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// neptuneASNDB writes, where flowexport looks without --asn-db
// (scripts/.geo/asn.mmdb under the working directory, as
// scripts/dev/fetch-geo-db.sh leaves it), a GeoLite2-ASN-shaped file
// naming the ASes of flow-exporter's README, and moves into that directory.
func neptuneASNDB(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	geo := filepath.Join(dir, "scripts", ".geo")
	if err := os.MkdirAll(geo, 0o755); err != nil {
		t.Fatal(err)
	}
	enrichtest.WriteMMDB(t, geo, "asn.mmdb", "GeoLite2-ASN", []enrichtest.Entry{
		{Prefix: "192.0.2.0/24", Record: enrichtest.ASN(397143, "NEPTUNE-NETWORKS - Neptune Networks")},
		{Prefix: "198.51.100.0/24", Record: enrichtest.ASN(10318, "CABLEVISION S.A.")},
		{Prefix: "203.0.113.0/24", Record: enrichtest.ASN(15169, "GOOGLE")},
		{Prefix: "2001:db8::/32", Record: enrichtest.ASN(6939, "HURRICANE")},
	})
	t.Chdir(dir)
}

// runFlowExport runs the app in the background and stops it at cleanup,
// checking that it exited 0.
func runFlowExport(t *testing.T, args ...string) *tools.Output {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs tools.Output
	done := make(chan int, 1)
	go func() {
		done <- command.Run(ctx, newApp(), append([]string{"flowexport"}, args...),
			command.Streams{In: strings.NewReader(""), Out: &logs, Err: &logs})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("flowexport %v: exit %d\n%s", args, code, logs.String())
		}
	})
	return &logs
}

// TestFlowExporterReadme runs flowexport with flow-exporter's own README
// command lines (flags with =, no --asn-db) on pmacct records and checks
// that AS names come from the default search path, that the README's
// example exposition appears line for line, and that the log names the
// AS database used.
func TestFlowExporterReadme(t *testing.T) {
	neptuneASNDB(t)
	const topic = "pmacct.acct"
	values := [][]byte{
		pmacctJSON("border.neptunenetworks.org", 10318, 397143, 663),
		pmacctJSON("border.neptunenetworks.org", 397143, 10318, 1137),
		pmacctJSON("bdr1.fqdn.com", 15169, 6939, 52),
		pmacctJSON("bdr1.fqdn.com", 6939, 15169, 1500),
	}
	c := startTopic(t, topic, values)
	broker := c.ListenAddrs()[0]

	for _, tc := range []struct {
		name, line string
		want       []string
	}{
		{"readme", flowExporterReadmeCommand, []string{
			`flow_transmit_bytes_total{destination_as="6939",destination_as_name="HURRICANE",hostname="bdr1.fqdn.com",source_as="15169",source_as_name="GOOGLE"} 52`,
			`flow_receive_bytes_total{destination_as="15169",destination_as_name="GOOGLE",hostname="bdr1.fqdn.com",source_as="6939",source_as_name="HURRICANE"} 1500`,
		}},
		{"docker", flowExporterDockerCommand, []string{
			`flow_transmit_bytes_total{destination_as="6939",destination_as_name="HURRICANE",hostname="bdr1.fqdn.com",source_as="15169",source_as_name="GOOGLE"} 52`,
		}},
		// The README's example output is for AS397143.
		{"readme-example", strings.Replace(flowExporterReadmeCommand, "--asn=15169", "--asn=397143", 1),
			strings.Split(flowExporterReadmeMetrics, "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freePort(t)
			// flow-exporter reads from the newest offset; the records are
			// already there, so read them from the start in a fresh group.
			args := append(flowExporterArgs(tc.line, broker, addr), "--start-offset=earliest", "--group="+tc.name)
			logs := runFlowExport(t, args...)
			var expo string
			waitFor(t, 30*time.Second, "every record counted", func() bool {
				expo, _ = scrape(addr)
				v, _ := metricValue(expo, `flowexport_records_consumed_total{format="pmacct"}`)
				return int(v) == len(values)
			})
			for _, line := range tc.want {
				if !strings.Contains(expo, "\n"+line+"\n") {
					t.Errorf("no line %s in\n%s", line, expo)
				}
			}
			if !strings.Contains(logs.String(), "loaded AS names") || !strings.Contains(logs.String(), filepath.Join("scripts", ".geo", "asn.mmdb")) {
				t.Errorf("log does not say which AS database was used:\n%s", logs.String())
			}
		})
	}
}

// TestFlowExporterPartitions runs flow-exporter's main.go flag style (one
// dash, space-separated values) with --partitions 0,2: only those
// partitions are read, no group membership, and the counted offsets are
// committed under --group so that a restart resumes instead of recounting.
func TestFlowExporterPartitions(t *testing.T) {
	const topic = "pmacct.acct"
	var values [][]byte
	for i := range 40 {
		values = append(values, pmacctJSON("bdr1", 15169, 6939, 100+i)) // partition i%4
	}
	c := startTopic(t, topic, values)
	broker := c.ListenAddrs()[0]
	var want float64 // partitions 0 and 2
	for i := range 40 {
		if i%4 == 0 || i%4 == 2 {
			want += float64(100 + i)
		}
	}
	series := `flow_transmit_bytes_total{destination_as="6939",destination_as_name="",hostname="bdr1",source_as="15169",source_as_name=""}`

	run := func(extra ...string) (stop func()) {
		addr := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var logs tools.Output
		args := append([]string{"flowexport", "-brokers", broker, "-topic", topic, "-partitions", "0,2", "-asn", "15169",
			"-addr", addr, "-asn-db", "none", "-group", "fe", "-start-offset", "earliest"}, extra...)
		go func() {
			done <- command.Run(ctx, newApp(), args, command.Streams{In: strings.NewReader(""), Out: &logs, Err: &logs})
		}()
		if !pollFor(30*time.Second, func() bool {
			expo, _ := scrape(addr)
			v, _ := metricValue(expo, series)
			return v == want
		}) {
			expo, _ := scrape(addr)
			cancel()
			<-done
			t.Fatalf("partitions 0 and 2 not counted: %s\n%s", expo, logs.String())
		}
		return func() {
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("exit %d\n%s", code, logs.String())
			}
		}
	}
	stop := run()
	// Let a few polls pass: nothing from partitions 1 and 3 may arrive.
	time.Sleep(500 * time.Millisecond)
	stop()

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	offs, err := adm.FetchOffsets(context.Background(), "fe")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	offs.Each(func(o kadm.OffsetResponse) { got = append(got, fmt.Sprintf("%d@%d", o.Partition, o.At)) })
	slices.Sort(got)
	if !slices.Equal(got, []string{"0@10", "2@10"}) {
		t.Errorf("committed %v, want 0@10 2@10", got)
	}
	groups, err := adm.DescribeGroups(context.Background(), "fe")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if len(g.Members) != 0 {
			t.Errorf("group fe has members %v: --partitions must not join it", g.Members)
		}
	}

	// A restart resumes at the commits: the same sums, plus only what
	// arrived meanwhile.
	produceTo(t, c, topic, [][]byte{pmacctJSON("bdr1", 15169, 6939, 7)}) // partition 0
	want = 7
	stop = run()
	stop()
}

// TestFlowExporterUsage checks flow-exporter's flags that flowexport
// rejects, with clear errors.
func TestFlowExporterUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--asn=1", "--partitions=0,x"},
		{"--asn=1", "--partitions=-1"},
		{"--asn=1", "--partitions=0", "--start-offset=committed"},
	} {
		if code, out := runApp(context.Background(), args...); code != command.ExitUsage || !strings.Contains(out, "--partitions") {
			t.Errorf("%v: exit %d, want 2 naming --partitions\n%s", args, code, out)
		}
	}
}

// TestFlowExporterPromQL lets a real Prometheus scrape flowexport fed as
// flow-exporter is, and runs the queries a flow-exporter Grafana dashboard
// is built from: bits per second and totals by AS name and AS number in
// each direction, top N peers, per router. With --max-pairs 2 the folded
// traffic must show up as "other" whichever AS label a query groups by.
func TestFlowExporterPromQL(t *testing.T) {
	prom := tools.Require(t, "prometheus")
	neptuneASNDB(t)
	const topic = "pmacct.acct"
	values := [][]byte{
		pmacctJSON("border", 10318, 397143, 600), // received: pair 1
		pmacctJSON("border", 10318, 397143, 63),
		pmacctJSON("border", 397143, 10318, 1137), // transmitted: pair 2
		pmacctJSON("border", 15169, 397143, 5000), // received: folded (cap 2)
		pmacctJSON("border", 397143, 6939, 40),    // transmitted: folded
	}
	// One partition, so that the order, and so which pairs the cap keeps,
	// is fixed.
	c := startTopic(t, topic, nil)
	produceToPartition(t, c, topic, 0, values)
	line := strings.Replace(flowExporterReadmeCommand, "--asn=15169", "--asn=397143", 1)
	addr := freePort(t)
	runFlowExport(t, append(flowExporterArgs(line, c.ListenAddrs()[0], addr), "--start-offset=earliest")...)
	// The cap is per process: a second one with --max-pairs 2 on the same
	// data, in its own group, scraped as another job.
	capped := freePort(t)
	runFlowExport(t, append(flowExporterArgs(line, c.ListenAddrs()[0], capped),
		"--max-pairs=2", "--group=capped", "--start-offset=earliest")...)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "global:\n  scrape_interval: 1s\nscrape_configs:\n"+
		"  - job_name: flow-exporter\n    static_configs:\n      - targets: ['%s']\n"+
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

	for _, q := range []struct {
		query string
		want  map[string]float64 // the value by the query's "by" label(s), joined with "/"
	}{
		{`sum by (source_as_name) (flow_receive_bytes_total{job="flow-exporter"})`,
			map[string]float64{"CABLEVISION S.A.": 663, "GOOGLE": 5000}},
		{`sum by (destination_as_name) (flow_transmit_bytes_total{job="flow-exporter"})`,
			map[string]float64{"CABLEVISION S.A.": 1137, "HURRICANE": 40}},
		{`topk(1, sum by (source_as, source_as_name) (flow_receive_bytes_total{job="flow-exporter"}))`,
			map[string]float64{"15169/GOOGLE": 5000}},
		{`sum by (hostname) (flow_receive_bytes_total{job="flow-exporter"}) + on (hostname) sum by (hostname) (flow_transmit_bytes_total{job="flow-exporter"})`,
			map[string]float64{"border": 6840}},
		{`sum by (destination_as) (flow_receive_bytes_total{job="flow-exporter"})`,
			map[string]float64{"397143": 5663}},
		{`count by (source_as_name) (sum by (source_as_name) (rate(flow_receive_bytes_total{job="flow-exporter"}[1m]) * 8))`,
			map[string]float64{"CABLEVISION S.A.": 1, "GOOGLE": 1}},
		// The capped instance: every AS label of the folded series is "other".
		{`sum by (source_as_name) (flow_receive_bytes_total{job="capped"})`,
			map[string]float64{"CABLEVISION S.A.": 663, "other": 5000}},
		{`sum by (destination_as_name) (flow_transmit_bytes_total{job="capped"})`,
			map[string]float64{"CABLEVISION S.A.": 1137, "other": 40}},
		{`sum by (source_as, destination_as, hostname) (flow_transmit_bytes_total{job="capped"})`,
			map[string]float64{"397143/10318/border": 1137, "other/other/other": 40}},
		{`count(flow_receive_bytes_total{job="capped", source_as_name=""} or flow_transmit_bytes_total{job="capped", destination_as_name=""})`,
			nil},
	} {
		by := byLabels(q.query)
		var got map[string]float64
		ok := pollFor(40*time.Second, func() bool {
			got = promVector(promAddr, q.query, by...)
			if q.want == nil {
				return got != nil && len(got) == 0
			}
			return mapsEqual(got, q.want)
		})
		if !ok {
			t.Errorf("%s = %v, want %v", q.query, got, q.want)
		}
	}
	if t.Failed() {
		t.Logf("prometheus log:\n%s", plogs.String())
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// byLabels is the label list of the query's first "by (...)".
func byLabels(q string) []string {
	_, rest, ok := strings.Cut(q, "by (")
	if !ok {
		return nil
	}
	list, _, _ := strings.Cut(rest, ")")
	var out []string
	for _, l := range strings.Split(list, ",") {
		out = append(out, strings.TrimSpace(l))
	}
	return out
}

// promVector runs an instant query and returns its samples keyed by the
// values of labels (joined with "/"), or nil if the query failed.
func promVector(addr, query string, labels ...string) map[string]float64 {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" {
		return nil
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		var key []string
		for _, l := range labels {
			key = append(key, s.Metric[l])
		}
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil
		}
		out[strings.Join(key, "/")] = v
	}
	return out
}

func pollFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// TestFlowExporterOldFlags runs the flags of flow-exporter's first
// releases (--broker, --defaultAS for pmacct's AS 0) as they were written.
func TestFlowExporterOldFlags(t *testing.T) {
	const topic = "pmacct.acct"
	c := startTopic(t, topic, [][]byte{pmacctJSON("bdr1", 0, 6939, 500)}) // pmacct writes 0 for the local AS
	addr := freePort(t)
	runFlowExport(t, "--broker="+c.ListenAddrs()[0], "--topic="+topic, "--asn=64500", "--defaultAS=64500",
		"--addr="+addr, "--asn-db=none", "--start-offset=earliest")
	series := `flow_transmit_bytes_total{destination_as="6939",destination_as_name="",hostname="bdr1",source_as="64500",source_as_name=""}`
	waitFor(t, 30*time.Second, series, func() bool {
		expo, _ := scrape(addr)
		v, _ := metricValue(expo, series)
		return v == 500
	})
}
