package export

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDefaultConfigValid(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ASN = 64500
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := DefaultConfig().Validate(); err == nil {
		t.Fatal("no ASN and no all-pairs validated")
	}
}

func newTestTable(t testing.TB, cfg Config) (*Table, *Counter) {
	t.Helper()
	tbl, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, NewCounter(tbl)
}

func countAll(t testing.TB, c *Counter, now time.Time, values ...[]byte) {
	t.Helper()
	c.Begin(now)
	defer c.End()
	for _, v := range values {
		if _, _, err := c.Count(v); err != nil {
			t.Fatalf("Count(%q): %v", v, err)
		}
	}
}

func TestTableExposition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ASN = 64500
	cfg.ASNames = map[uint32]string{6939: "HURRICANE", 64500: "EXAMPLE-NET"}
	tbl, c := newTestTable(t, cfg)
	in := testFlow(15169, 64500, 1000, 2, 10, "192.0.2.1")
	in.SrcAsName = "GOOGLE" // enriched name wins over the table
	countAll(t, c, time.Now(),
		framed(in), jsonFlow(in), // 2 x (10000 bytes, 20 packets, 1 flow)
		bare(testFlow(64500, 6939, 50, 1, 0, "2001:db8::1")),                                    // rate 0 counts as 1
		[]byte(`{"label":"bdr1","as_src":64500,"as_dst":6939,"bytes":7,"packets":1,"flows":3}`), // pmacct
		bare(testFlow(1, 2, 1, 1, 1, "192.0.2.1")),                                              // unmatched
	)
	want := `
# HELP flow_receive_bytes_total Bytes received by the monitored AS (destination_as is --asn), multiplied by the sampling rate.
# TYPE flow_receive_bytes_total counter
flow_receive_bytes_total{destination_as="64500",destination_as_name="EXAMPLE-NET",hostname="192.0.2.1",source_as="15169",source_as_name="GOOGLE"} 20000
# HELP flow_receive_flows_total Flow records received by the monitored AS (destination_as is --asn).
# TYPE flow_receive_flows_total counter
flow_receive_flows_total{destination_as="64500",destination_as_name="EXAMPLE-NET",hostname="192.0.2.1",source_as="15169",source_as_name="GOOGLE"} 2
# HELP flow_receive_packets_total Packets received by the monitored AS (destination_as is --asn), multiplied by the sampling rate.
# TYPE flow_receive_packets_total counter
flow_receive_packets_total{destination_as="64500",destination_as_name="EXAMPLE-NET",hostname="192.0.2.1",source_as="15169",source_as_name="GOOGLE"} 40
# HELP flow_transmit_bytes_total Bytes transmitted by the monitored AS (source_as is --asn), multiplied by the sampling rate.
# TYPE flow_transmit_bytes_total counter
flow_transmit_bytes_total{destination_as="6939",destination_as_name="HURRICANE",hostname="2001:db8::1",source_as="64500",source_as_name="EXAMPLE-NET"} 50
flow_transmit_bytes_total{destination_as="6939",destination_as_name="HURRICANE",hostname="bdr1",source_as="64500",source_as_name="EXAMPLE-NET"} 7
# HELP flow_transmit_flows_total Flow records transmitted by the monitored AS (source_as is --asn).
# TYPE flow_transmit_flows_total counter
flow_transmit_flows_total{destination_as="6939",destination_as_name="HURRICANE",hostname="2001:db8::1",source_as="64500",source_as_name="EXAMPLE-NET"} 1
flow_transmit_flows_total{destination_as="6939",destination_as_name="HURRICANE",hostname="bdr1",source_as="64500",source_as_name="EXAMPLE-NET"} 3
# HELP flowexport_pairs AS-pair series currently exported, the "other" series included.
# TYPE flowexport_pairs gauge
flowexport_pairs 3
`
	err := testutil.CollectAndCompare(tbl, strings.NewReader(want),
		"flow_receive_bytes_total", "flow_receive_flows_total", "flow_receive_packets_total",
		"flow_transmit_bytes_total", "flow_transmit_flows_total", "flowexport_pairs")
	if err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tbl)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
}

func TestTableAllPairsAndNoSampling(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllPairs, cfg.NoSamplingMultiply, cfg.DefaultAS = true, true, 64500
	tbl, c := newTestTable(t, cfg)
	countAll(t, c, time.Now(), bare(testFlow(0, 2, 100, 1, 1000, "192.0.2.1")))
	want := `
# HELP flow_bytes_total Bytes between any two ASes (--all-pairs), multiplied by the sampling rate.
# TYPE flow_bytes_total counter
flow_bytes_total{destination_as="2",destination_as_name="",hostname="192.0.2.1",source_as="64500",source_as_name=""} 100
`
	if err := testutil.CollectAndCompare(tbl, strings.NewReader(want), "flow_bytes_total"); err != nil {
		t.Error(err)
	}
}

func TestTableCapFoldsIntoOther(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllPairs, cfg.MaxPairs = true, 3
	// Names known for the folded ASes must not leak into the "other"
	// series: every AS label there says "other".
	cfg.ASNames = map[uint32]string{4: "FOUR", 100: "HUNDRED"}
	tbl, c := newTestTable(t, cfg)
	now := time.Now()
	for as := uint32(1); as <= 10; as++ {
		countAll(t, c, now, bare(testFlow(as, 100, 10, 1, 1, "192.0.2.1")))
	}
	countAll(t, c, now, bare(testFlow(2, 100, 10, 1, 1, "192.0.2.1"))) // existing pair, not folded
	want := `
# HELP flow_bytes_total Bytes between any two ASes (--all-pairs), multiplied by the sampling rate.
# TYPE flow_bytes_total counter
flow_bytes_total{destination_as="100",destination_as_name="HUNDRED",hostname="192.0.2.1",source_as="1",source_as_name=""} 10
flow_bytes_total{destination_as="100",destination_as_name="HUNDRED",hostname="192.0.2.1",source_as="2",source_as_name=""} 20
flow_bytes_total{destination_as="100",destination_as_name="HUNDRED",hostname="192.0.2.1",source_as="3",source_as_name=""} 10
flow_bytes_total{destination_as="other",destination_as_name="other",hostname="other",source_as="other",source_as_name="other"} 70
# HELP flowexport_pairs AS-pair series currently exported, the "other" series included.
# TYPE flowexport_pairs gauge
flowexport_pairs 4
# HELP flowexport_pairs_folded_total Records counted in the "other" series because the table was full (--max-pairs).
# TYPE flowexport_pairs_folded_total counter
flowexport_pairs_folded_total 7
`
	if err := testutil.CollectAndCompare(tbl, strings.NewReader(want), "flow_bytes_total", "flowexport_pairs", "flowexport_pairs_folded_total"); err != nil {
		t.Error(err)
	}
}

func TestTableExpiry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllPairs, cfg.MaxPairs, cfg.PairTTL = true, 2, time.Minute
	tbl, c := newTestTable(t, cfg)
	t0 := time.Now()
	countAll(t, c, t0, bare(testFlow(1, 2, 1, 1, 1, "192.0.2.1")), bare(testFlow(3, 4, 1, 1, 1, "192.0.2.1")),
		bare(testFlow(5, 6, 1, 1, 1, "192.0.2.1"))) // folded
	countAll(t, c, t0.Add(50*time.Second), bare(testFlow(1, 2, 1, 1, 1, "192.0.2.1")))
	tbl.Expire(t0.Add(90 * time.Second)) // 3->4 and "other" idle for 90 s
	if n := tbl.Len(); n != 1 {
		t.Fatalf("after expiry: %d series, want 1", n)
	}
	// Room again: a new pair gets its own series.
	countAll(t, c, t0.Add(91*time.Second), bare(testFlow(7, 8, 1, 1, 1, "192.0.2.1")))
	tbl.mu.Lock()
	_, ok := tbl.pairs[pairKey{src: 7, dst: 8, dir: Pair, host: "192.0.2.1"}]
	expired := tbl.expired
	tbl.mu.Unlock()
	if !ok || expired != 2 {
		t.Fatalf("new pair stored %v, expired %d; want true, 2", ok, expired)
	}
}

// TestTableMemoryBounded offers 1 M distinct pairs to a table capped at
// 10 000 and checks that it keeps 10 000 series plus "other".
func TestTableMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("1 M records")
	}
	cfg := DefaultConfig()
	cfg.AllPairs = true
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tbl, c := newTestTable(t, cfg)
	now := time.Now()
	c.Begin(now)
	for i := range uint32(1_000_000) {
		c.rec = Record{SrcAS: i, DstAS: i ^ 0x5555, Bytes: 1, Packets: 1, Flows: 1}
		tbl.addLocked(&c.rec)
	}
	c.End()
	if n := tbl.Len(); n != cfg.MaxPairs+1 {
		t.Fatalf("%d series, want %d", n, cfg.MaxPairs+1)
	}
	if tbl.folded != 1_000_000-uint64(cfg.MaxPairs) {
		t.Fatalf("folded %d", tbl.folded)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 32<<20 {
		t.Errorf("heap in use grew by %d MiB with the table live", grown>>20)
	}
	runtime.KeepAlive(tbl)
}

func TestLoadASNames(t *testing.T) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-ASN", RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		cidr string
		as   uint32
		org  string
	}{{"8.8.8.0/24", 15169, "GOOGLE"}, {"8.8.4.0/24", 15169, "GOOGLE"}, {"2001:470::/32", 6939, "HURRICANE"}} {
		_, ipnet, _ := net.ParseCIDR(n.cidr)
		if err := tree.Insert(ipnet, mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(n.as),
			"autonomous_system_organization": mmdbtype.String(n.org),
		}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	names, err := LoadASNames(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[15169] != "GOOGLE" || names[6939] != "HURRICANE" {
		t.Fatalf("names = %v", names)
	}
	if _, err := LoadASNames(filepath.Join(t.TempDir(), "missing.mmdb")); err == nil {
		t.Fatal("missing file loaded")
	}
}
