package enrich

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
	"github.com/flowpipe/flowpipe/pkg/testutil/proc"
)

// benchStream builds n framed records of a realistic size (IPFIX-like, 30
// fields). Addresses: one side in the declared networks for half the
// records, the other side drawn from pool with a Zipf law (a few top
// talkers, a long tail), as in real traffic.
func benchStream(tb testing.TB, n int, pool []netip.Addr) []byte {
	return benchStreamInside(tb, n, pool, nil)
}

// benchStreamInside is benchStream with the inside side drawn by inside
// (subscriber addresses) rather than uniformly from 10.1.0.0/16.
func benchStreamInside(tb testing.TB, n int, pool []netip.Addr, inside func() netip.Addr) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(5, 6)), 1.1, 1, uint64(len(pool)-1))
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	m := &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_IPFIX, SamplingRate: 1000, SamplerAddress: netip.MustParseAddr("10.0.0.1").AsSlice(),
		Etype: 0x800, Proto: 6, InIf: 3, OutIf: 7, SrcMac: 0x0a0b0c0d0e0f, DstMac: 0x0102030405, IpTtl: 64, TcpFlags: 0x18,
		NextHop: netip.MustParseAddr("10.0.0.254").AsSlice(), SrcNet: 24, DstNet: 16, ObservationDomainId: 1,
	}
	for i := range n {
		in := netip.AddrFrom4([4]byte{10, 1, byte(rng.IntN(256)), byte(rng.IntN(256))})
		if inside != nil {
			in = inside()
		}
		outside := pool[zipf.Uint64()]
		src, dst := outside, in
		switch i % 4 {
		case 1:
			src, dst = in, outside
		case 2:
			src, dst = outside, pool[zipf.Uint64()]
		}
		m.SrcAddr, m.DstAddr = src.AsSlice(), dst.AsSlice()
		m.TimeReceivedNs = 1_700_000_000_000_000_000 + uint64(i)*1000
		m.TimeFlowStartNs, m.TimeFlowEndNs = m.TimeReceivedNs-5e9, m.TimeReceivedNs-1e9
		m.SequenceNum = uint32(i)
		m.Bytes, m.Packets = uint64(64+rng.IntN(100000)), uint64(1+rng.IntN(100))
		m.SrcPort, m.DstPort = uint32(rng.IntN(65536)), 443
		if err := w.WriteMessage(m); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

const benchNets = `networks:
  - name: dc1
    cidrs: [10.1.0.0/16, "2001:db8:1::/48"]
    labels: {site: ams1, role: servers, tenant: acme}
  - name: dc1-db
    cidrs: [10.1.2.0/24]
    labels: {site: ams1, role: databases}
`

// BenchmarkStage measures the whole stage on one goroutine: read bin
// frames, 4 database lookups and 2 CIDR context lookups per record, write
// bin frames. "test" uses the small test databases; "real" the full-size
// free ones from scripts/dev/fetch-geo-db.sh, in both lookup modes, with a
// pool of 50k public addresses (Zipf) and with uniformly random addresses
// over the whole space (every lookup a cache miss: the worst case).
// "sessions" adds subscriber attribution with 1 M open IPv4 sessions (see
// benchmarkSessions).
func BenchmarkStage(b *testing.B) {
	const records = 1 << 16
	run := func(b *testing.B, cfg Config, pool []netip.Addr, inside func() netip.Addr) {
		dir := b.TempDir()
		cfg.NetworksPath = filepath.Join(dir, "nets.yaml")
		if err := os.WriteFile(cfg.NetworksPath, []byte(benchNets), 0o644); err != nil {
			b.Fatal(err)
		}
		e, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		in := benchStreamInside(b, records, pool, inside)
		rd := bytes.NewReader(in)
		var total Stats
		report := func(st *Stats) {
			total.Written += st.Written
			for d := range st.Lookups {
				total.Lookups[d][ResultHit] += st.Lookups[d][ResultHit]
			}
			for side := range st.Subscribers {
				for v, n := range st.Subscribers[side] {
					total.Subscribers[side][v] += n
				}
			}
		}
		// No collection left over from building the tables may run (and
		// be counted) during the measurement.
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cpu0 := proc.CPU()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			rd.Reset(in)
			s := NewStream(e, StreamConfig{In: rd, Out: io.Discard, OutputFormat: framing.FormatBin, Report: report})
			if err := s.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		cpu := proc.CPU() - cpu0
		runtime.ReadMemStats(&after)
		n := float64(total.Written)
		if n != float64(b.N*records) {
			b.Fatalf("%v records out, want %d", n, b.N*records)
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e9/n, "ns/record")
		b.ReportMetric(n/b.Elapsed().Seconds(), "records/s")
		// The process's CPU time, unlike wall time, does not count the
		// time other processes hold the cores: records/s per core.
		b.ReportMetric(n/cpu.Seconds(), "records/cpu-s")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/record")
		b.ReportMetric(float64(total.Lookups[DatabaseASN][ResultHit])/(2*n), "asn-hit-ratio")
		if cfg.Sessions != nil {
			hits := total.Subscribers[SideSrc][1] + total.Subscribers[SideDst][1]
			b.ReportMetric(float64(hits)/n, "subscribers/record")
		}
	}
	b.Run("test", func(b *testing.B) {
		dir := b.TempDir()
		pool := []netip.Addr{netip.MustParseAddr(enrichtest.AddrAS64500), netip.MustParseAddr(enrichtest.AddrAS64501),
			netip.MustParseAddr(enrichtest.AddrAS64502), netip.MustParseAddr(enrichtest.AddrUnknown)}
		run(b, Config{ASNPath: enrichtest.StandardASN(b, dir), CountryPath: enrichtest.StandardCountry(b, dir)}, pool, nil)
	})
	b.Run("sessions", func(b *testing.B) { benchmarkSessions(b, run) })
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		for _, spread := range []string{"pool50k", "uniform"} {
			b.Run("real/"+mode.String()+"/"+spread, func(b *testing.B) {
				asn, country := realDatabases(b)
				pool := benchAddrs(1 << 20)
				if spread == "pool50k" {
					pool = pool[:50000]
				}
				run(b, Config{ASNPath: asn, CountryPath: country, Mode: mode}, pool, nil)
			})
		}
	}
}

// TestStreamStopsCleanly checks that a read error after the context ended
// (the input closed on SIGTERM) ends the stream with nil after flushing,
// and that a write error is returned as it is.
func TestStreamStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	e, err := New(Config{ASNPath: enrichtest.StandardASN(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	in := benchStream(t, 10, []netip.Addr{netip.MustParseAddr(enrichtest.AddrAS64500)})
	pr, pw := io.Pipe()
	var out bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	s := NewStream(e, StreamConfig{In: pr, Out: &out, OutputFormat: framing.FormatBin})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if _, err := pw.Write(in); err != nil {
		t.Fatal(err)
	}
	cancel()
	pr.CloseWithError(os.ErrClosed)
	if err := <-done; err != nil {
		t.Fatalf("stop: %v", err)
	}
	r := framing.NewMessageReader(&out, framing.FormatBin, 0, nil)
	var m flowpb.FlowMessage
	n := 0
	for r.Read(&m) == nil {
		if m.SrcAs != 64500 && m.DstAs != 64500 {
			t.Fatalf("record %d not enriched: %v", n, &m)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("flushed %d records, want 10", n)
	}

	s = NewStream(e, StreamConfig{In: bytes.NewReader(in), Out: failWriter{}, OutputFormat: framing.FormatBin})
	if err := s.Run(context.Background()); err != errBroken {
		t.Fatalf("write error: %v", err)
	}
}

var errBroken = errors.New("broken pipe")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errBroken }

// TestStreamJSONPassesUnknownKeys: from JSON to JSON, the members that are
// no flow field (goflow2 custom fields of a mapping this stage was not
// given, other producers' keys) come out byte for byte; and the label maps
// of the networks file, which records share, survive input lines that
// carry labels of their own (an earlier enrichment's).
func TestStreamJSONPassesUnknownKeys(t *testing.T) {
	e, _ := standard(t, ModeTable, testNets)
	const foreign = `"in_if_name":"ge-0/0/1","tags" : {"a":[1,2.5e3,null]}`
	line := `{"type":"IPFIX","src_addr":"10.1.2.3","dst_addr":"192.0.2.7",` + foreign +
		`,"src_net_labels":{"old":"x"},"dst_net_labels":{"old":"y"}}` + "\n"
	var out bytes.Buffer
	s := NewStream(e, StreamConfig{In: strings.NewReader(strings.Repeat(line, 3)), Out: &out, OutputFormat: framing.FormatJSON})
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines: %s", len(lines), out.String())
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, ","+foreign+"}") {
			t.Errorf("line %d lost the unknown keys: %s", i, l)
		}
		if !strings.Contains(l, `"src_net_labels":{"site":"ams1"},"dst_net_labels":{"role":"web"}`) {
			t.Errorf("line %d: labels %s", i, l)
		}
	}
	for _, nw := range []string{"dc1", "web"} {
		for _, n := range e.Networks().networks {
			if n.Name == nw && len(n.Labels) != 1 {
				t.Errorf("network %s: labels now %v", nw, n.Labels)
			}
		}
	}
}
