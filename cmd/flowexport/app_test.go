package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

const topic = "flows"

func runApp(ctx context.Context, args ...string) (int, string) {
	var stdout, stderr tools.Output
	code := command.Run(ctx, newApp(), append([]string{"flowexport"}, args...),
		command.Streams{In: strings.NewReader(""), Out: &stdout, Err: &stderr})
	return code, stdout.String() + stderr.String()
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--topic", "flows"}, // neither --asn nor --all-pairs
		{"--asn", "64500", "--start-offset", "middle"},
		{"--asn", "64500", "--partitions", "0,one"},
		{"--asn", "64500", "--max-pairs", "0"},
		{"--asn", "64500", "--group-by", "country"},
		{"--group-by", "user", "--max-users", "0"},
		{"--group-by", "as,user"}, // AS pairs without --asn or --all-pairs
		{"--asn", "64500", "--brokers", "no-port"},
		{"--asn", "99999999999"},
		{"--no-such-flag"},
	} {
		if code, out := runApp(context.Background(), args...); code != command.ExitUsage {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out)
		}
	}
	if code, out := runApp(context.Background(), "--asn", "1", "--asn-db", filepath.Join(t.TempDir(), "none.mmdb")); code != command.ExitRuntime {
		t.Errorf("missing --asn-db: exit %d, want 1\n%s", code, out)
	}
	code, out := runApp(context.Background(), "--help")
	if code != 0 || !strings.Contains(out, "flowexport --brokers kafka1:9092") || !strings.Contains(out, "FLOWEXPORT_ASN") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func flowValue(src, dst uint32, bytes, packets, rate uint64, sampler string) []byte {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_NETFLOW_V9, SrcAs: src, DstAs: dst, Bytes: bytes,
		Packets: packets, SamplingRate: rate, SamplerAddress: netip.MustParseAddr(sampler).AsSlice()}
	b, _ := m.MarshalVT()
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

// testData is what the tests produce and the sums they expect with --asn 64500.
type testData struct {
	values            [][]byte
	rx, tx            uint64 // bytes x sampling rate
	rxFrom15169, rxPk uint64
}

func makeTestData() testData {
	var d testData
	for i := range 400 {
		peer := []uint32{15169, 6939, 13335}[i%3]
		bytes, rate := uint64(100+i), uint64(1+i%4)
		switch i % 4 {
		case 0, 1: // received, bin
			d.values = append(d.values, flowValue(peer, 64500, bytes, 2, rate, "192.0.2.1"))
			d.rx += bytes * rate
			d.rxPk += 2 * rate
			if peer == 15169 {
				d.rxFrom15169 += bytes * rate
			}
		case 2: // transmitted, pmacct JSON
			d.values = append(d.values, fmt.Appendf(nil,
				`{"label":"bdr1","as_src":64500,"as_dst":%d,"bytes":%d,"packets":1,"sampling_rate":%d}`, peer, bytes, rate))
			d.tx += bytes * rate
		case 3: // neither
			d.values = append(d.values, flowValue(peer, 1, bytes, 1, rate, "192.0.2.1"))
		}
	}
	d.values = append(d.values, []byte("not a flow"), []byte(`{"as_src":`))
	return d
}

func startCluster(t *testing.T, d testData) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(d.values))
	for i, v := range d.values {
		recs[i] = &kgo.Record{Value: v}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return c
}

func scrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// metricValue finds one sample line by its name and label text.
func metricValue(exposition, series string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestExportEndToEnd runs flowexport in-process against kfake, checks its
// exposition (values and promtool check metrics), then lets a real
// Prometheus scrape it and checks the sums with PromQL.
func TestExportEndToEnd(t *testing.T) {
	d := makeTestData()
	c := startCluster(t, d)
	metricsAddr := freePort(t)
	asnDB := writeASNDB(t, map[string]uint32{"8.8.8.0/24": 15169, "2001:470::/32": 6939})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out string
	go func() {
		var code int
		code, out = runApp(ctx, "--brokers", strings.Join(c.ListenAddrs(), ","), "--topic", topic,
			"--asn", "64500", "--start-offset", "earliest", "--metrics-listen", metricsAddr, "--asn-db", asnDB)
		done <- code
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d\n%s", code, out)
		}
	}()

	var expo string
	waitFor(t, 30*time.Second, "every record consumed", func() bool {
		expo, _ = scrape(metricsAddr)
		inv, _ := metricValue(expo, "flowexport_records_invalid_total")
		bin, _ := metricValue(expo, `flowexport_records_consumed_total{format="bin"}`)
		pm, _ := metricValue(expo, `flowexport_records_consumed_total{format="pmacct"}`)
		return int(inv+bin+pm) == len(d.values)
	})
	series := `flow_receive_bytes_total{destination_as="64500",destination_as_name="",hostname="192.0.2.1",source_as="15169",source_as_name="AS15169 name"}`
	if v, ok := metricValue(expo, series); !ok || uint64(v) != d.rxFrom15169 {
		t.Errorf("%s = %v (found %v), want %d", series, v, ok, d.rxFrom15169)
	}
	lags := 0
	for _, line := range strings.Split(expo, "\n") {
		if strings.HasPrefix(line, "flowexport_consumer_lag{") {
			lags++
			if !strings.HasSuffix(line, " 0") {
				t.Errorf("lag after consuming everything: %s", line)
			}
		}
	}
	if lags == 0 {
		t.Error("no flowexport_consumer_lag series")
	}
	if v, _ := metricValue(expo, "flowexport_records_unmatched_total"); v != 100 {
		t.Errorf("unmatched %v, want 100", v)
	}
	if !strings.Contains(expo, `flow_transmit_flows_total{destination_as="6939",destination_as_name="AS6939 name",hostname="bdr1",source_as="64500",source_as_name=""}`) {
		t.Error("no pmacct transmit series")
	}

	t.Run("promtool", func(t *testing.T) {
		promtool := tools.Require(t, "promtool")
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(expo)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, b)
		}
	})

	t.Run("prometheus", func(t *testing.T) {
		prom := tools.Require(t, "prometheus")
		dir := t.TempDir()
		cfg := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfg, fmt.Appendf(nil, "global:\n  scrape_interval: 1s\nscrape_configs:\n"+
			"  - job_name: flowexport\n    static_configs:\n      - targets: ['%s']\n", metricsAddr), 0o644); err != nil {
			t.Fatal(err)
		}
		promAddr := freePort(t)
		pctx, pcancel := context.WithCancel(context.Background())
		defer pcancel()
		var logs tools.Output
		cmd := exec.CommandContext(pctx, prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+promAddr)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { pcancel(); _ = cmd.Wait() }()

		for query, want := range map[string]uint64{
			"sum(flow_receive_bytes_total)":                           d.rx,
			"sum(flow_transmit_bytes_total)":                          d.tx,
			"sum(flow_receive_packets_total)":                         d.rxPk,
			`sum(flow_receive_bytes_total{source_as="15169"})`:        d.rxFrom15169,
			`sum(flow_transmit_bytes_total{hostname="bdr1"})`:         d.tx,
			`sum(flowexport_records_consumed_total{format="pmacct"})`: 100,
		} {
			var got string
			waitFor(t, 40*time.Second, query, func() bool {
				got = promQuery(promAddr, query)
				return got == strconv.FormatUint(want, 10)
			})
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
}

// writeASNDB writes a GeoLite2-ASN-shaped mmdb naming each AS "AS<n> name".
func writeASNDB(t *testing.T, nets map[string]uint32) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	writeASNDBAt(t, path, nets, "name")
	return path
}

// writeASNDBAt writes the database to path, naming each AS "AS<n> <suffix>".
func writeASNDBAt(t *testing.T, path string, nets map[string]uint32, suffix string) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, as := range nets {
		_, ipnet, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(ipnet, mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(as),
			"autonomous_system_organization": mmdbtype.String(fmt.Sprintf("AS%d %s", as, suffix)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
}

// promQuery returns the value of a one-sample instant query, or "".
func promQuery(addr, query string) string {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || len(r.Data.Result) != 1 {
		return ""
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return s
}

// TestSIGTERMCommits builds the binary, lets it count, sends SIGTERM and
// checks that it exits 0 with every partition committed to its end.
func TestSIGTERMCommits(t *testing.T) {
	bin := tools.Build(t, ".")
	d := makeTestData()
	c := startCluster(t, d)
	metricsAddr := freePort(t)
	cmd := exec.Command(bin, "--broker", c.ListenAddrs()[0], "--topic", topic, "--asn", "64500",
		"--group", "sigterm", "--metrics-listen", metricsAddr)
	cmd.Env = append(os.Environ(), "FLOWEXPORT_START_OFFSET=earliest")
	var logs tools.Output
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	waitFor(t, 30*time.Second, "every record consumed", func() bool {
		expo, _ := scrape(metricsAddr)
		inv, _ := metricValue(expo, "flowexport_records_invalid_total")
		bin, _ := metricValue(expo, `flowexport_records_consumed_total{format="bin"}`)
		pm, _ := metricValue(expo, `flowexport_records_consumed_total{format="pmacct"}`)
		return int(inv+bin+pm) == len(d.values)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tools.WaitExit(t, cmd, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, logs.String())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), "sigterm")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != int64(len(d.values)) {
		t.Errorf("committed %d records, want %d\n%s", committed, len(d.values), logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) &&
			!strings.Contains(line, "skipping a record that is no flow") {
			t.Errorf("unexpected warning: %s", line)
		}
	}
}
