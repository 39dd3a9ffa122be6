package feed

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/testutil/radiustest"
)

func start(t *testing.T, cfg Config) *Feeds {
	t.Helper()
	f, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func checkProbes(t *testing.T, name string, tbl *subscriber.Table) {
	t.Helper()
	for _, p := range radiustest.Probes {
		got := ""
		if s := tbl.Lookup(p.Addr, p.Time); s != nil {
			got = s.User()
		}
		if got != p.User {
			t.Errorf("%s: %v at %v: %q, want %q", name, p.Addr, time.Unix(0, p.Time).UTC().Format(time.TimeOnly), got, p.User)
		}
	}
}

func checkCounts(t *testing.T, name string, f *Feeds, src subscriber.Source) {
	t.Helper()
	c := f.Counts()
	if got := c.Read[src].Load(); got != radiustest.PacketCount {
		t.Errorf("%s: %d records read, want %d", name, got, radiustest.PacketCount)
	}
	for r := range subscriber.NumReasons {
		want := int64(0)
		if r == subscriber.ReasonUnusedStatus {
			want = radiustest.UnusedPackets
		}
		if got := c.Rejected[src][r].Load(); got != want {
			t.Errorf("%s: %d rejected as %s, want %d", name, got, r, want)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFreeRADIUS feeds the same accounting to every source, from a real
// FreeRADIUS running the example configuration (scripts/deploy/freeradius)
// and from radclient, and checks that each source builds the same
// sessions:
//   - radclient -> FreeRADIUS -> replicate -> listener;
//   - radclient -> FreeRADIUS -> detail file -> detail reader;
//   - radclient -> FreeRADIUS -> json_encode/linelog -> kcat -> Kafka -> topic;
//   - radclient -> listener.
//
// Then the detail reader restarts from the state file and follows a new
// record.
func TestFreeRADIUS(t *testing.T) {
	radiustest.Require(t, "freeradius")
	radiustest.Require(t, "radclient")
	kcat := radiustest.Require(t, "kcat")

	replicated := start(t, Config{Listen: "127.0.0.1:0", Secret: []byte("repl-secret")})
	replAddr, _ := replicated.ListenAddr()
	srv := radiustest.Start(t, radiustest.Config{ReplicateTo: replAddr, ReplicateSecret: "repl-secret"})
	if n, out := radiustest.Radclient(t, srv.Acct, radiustest.ClientSecret, radiustest.Packets); n != radiustest.PacketCount {
		t.Fatalf("FreeRADIUS answered %d of %d:\n%s\n%s", n, radiustest.PacketCount, out, srv.Log())
	}
	waitFor(t, "the replicated packets", func() bool {
		return replicated.Counts().Read[subscriber.SourceRADIUS].Load() == radiustest.PacketCount
	})
	checkProbes(t, "replicate", replicated.Table())
	checkCounts(t, "replicate", replicated, subscriber.SourceRADIUS)

	state := filepath.Join(t.TempDir(), "sessions.state")
	detailCfg := Config{DetailPatterns: []string{srv.DetailGlob}, StatePath: state}
	fromDetail, err := Start(context.Background(), detailCfg)
	if err != nil {
		t.Fatal(err)
	}
	checkProbes(t, "detail", fromDetail.Table())
	checkCounts(t, "detail", fromDetail, subscriber.SourceDetail)

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "radius-accounting"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, kcat, "-P", "-b", strings.Join(cluster.ListenAddrs(), ","),
		"-t", "radius-accounting", "-l", srv.JSONPath).CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	fromKafka := start(t, Config{KafkaOpts: []kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...)}, Topic: "radius-accounting"})
	checkProbes(t, "kafka", fromKafka.Table())
	checkCounts(t, "kafka", fromKafka, subscriber.SourceKafka)

	direct := start(t, Config{Listen: "127.0.0.1:0", Secret: []byte("direct-secret")})
	directAddr, _ := direct.ListenAddr()
	if n, out := radiustest.Radclient(t, directAddr, "direct-secret", radiustest.Packets); n != radiustest.PacketCount {
		t.Fatalf("listener answered %d of %d:\n%s", n, radiustest.PacketCount, out)
	}
	checkProbes(t, "listener", direct.Table())
	checkCounts(t, "listener", direct, subscriber.SourceRADIUS)

	// Restart the detail reader from its state: nothing is read twice,
	// and what FreeRADIUS writes next is followed.
	if err := fromDetail.Close(); err != nil {
		t.Fatal(err)
	}
	again := start(t, detailCfg)
	checkProbes(t, "detail after restart", again.Table())
	if got := again.Counts().Read[subscriber.SourceDetail].Load(); got != 0 {
		t.Errorf("%d records read again after the restart", got)
	}
	late := "Acct-Status-Type = Start\nNAS-IP-Address = 192.0.2.1\nAcct-Session-Id = \"s9\"\nUser-Name = \"zoe\"\n" +
		"Framed-IP-Address = 100.64.0.9\nEvent-Timestamp = \"Jan  1 2026 11:00:00 UTC\"\n"
	if n, out := radiustest.Radclient(t, srv.Acct, radiustest.ClientSecret, late); n != 1 {
		t.Fatalf("not answered:\n%s", out)
	}
	waitFor(t, "the new detail record", func() bool {
		s := again.Table().Lookup(netip.MustParseAddr("100.64.0.9"), 1767265200e9)
		return s != nil && s.User() == "zoe"
	})
}

// TestStateSavedAndLoaded: the state file is written by Close and every
// SaveEvery, and a restart with it knows the sessions without any source
// having them again.
func TestStateSavedAndLoaded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "detail")
	if err := os.WriteFile(path, []byte(detailStart), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	f := start(t, Config{DetailPatterns: []string{path}, StatePath: state, SaveEvery: 50 * time.Millisecond})
	waitFor(t, "a periodic save", func() bool { _, err := os.Stat(state); return err == nil })
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The detail file is gone: only the state knows the session now.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	g := start(t, Config{DetailPatterns: []string{path}, StatePath: state})
	if s := g.Table().Lookup(radiustest.Probes[1].Addr, radiustest.Probes[1].Time); s == nil || s.User() != "alice" {
		t.Fatal("session not restored from the state file")
	}
}

const detailStart = "Thu Jan  1 08:00:00 2026\n\tAcct-Status-Type = Start\n\tNAS-IP-Address = 192.0.2.1\n" +
	"\tAcct-Session-Id = \"s1\"\n\tUser-Name = \"alice\"\n\tFramed-IP-Address = 100.64.0.1\n\tTimestamp = 1767254400\n\n"

func TestDamagedStateIsSetAside(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.WriteFile(state, []byte("flowpipe subscriber state v1\ngarbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "detail")
	if err := os.WriteFile(path, []byte(detailStart), 0o600); err != nil {
		t.Fatal(err)
	}
	f := start(t, Config{DetailPatterns: []string{path}, StatePath: state})
	if _, err := os.Stat(state + ".bad"); err != nil {
		t.Errorf("damaged state not set aside: %v", err)
	}
	if f.Table().Len() != 1 {
		t.Errorf("%d sessions: the detail file was not read from its start", f.Table().Len())
	}
}

func TestValidate(t *testing.T) {
	for _, cfg := range []Config{
		{Listen: ":1813"},
		{Secret: []byte("x")},
		{StatePath: "x"},
		{Topic: "t", History: -1},
	} {
		if cfg.Validate() == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if err := (Config{Listen: ":1813", Secret: []byte("x"), StatePath: "s"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	path := filepath.Join(dir, "detail")
	if err := os.WriteFile(path, []byte(detailStart+"Date\n\tUser-Name = x\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := start(t, Config{DetailPatterns: []string{path}, Listen: "127.0.0.1:0", Secret: []byte("s"),
		StatePath: filepath.Join(dir, "state")})
	f.Register(reg, "flowenrich")
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", err, problems)
	}
	for series, want := range map[string]float64{
		`flowenrich_sessions{source="detail",state="active"}`:                                      1,
		`flowenrich_accounting_records_total{source="detail"}`:                                     2,
		`flowenrich_accounting_records_rejected_total{reason="no_status_type",source="detail"}`:    1,
		`flowenrich_accounting_records_rejected_total{reason="bad_authenticator",source="radius"}`: 0,
		`flowenrich_sessions_state_saves_total{result="success"}`:                                  1,
		`flowenrich_sessions_clock_timestamp_seconds`:                                              1767254400,
		`flowenrich_nat_port_blocks{state="open"}`:                                                 0,
	} {
		if got := gathered(t, reg, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// gathered is the value of one series, written as in the exposition
// format with labels in name order.
func gathered(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+`="`+l.GetValue()+`"`)
				}
				s += "{" + strings.Join(ls, ",") + "}"
			}
			if s != series {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("series %s not found", series)
	return 0
}
