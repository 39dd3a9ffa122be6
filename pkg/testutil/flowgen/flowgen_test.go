package flowgen

import (
	"bytes"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flowpipe/flowpipe/pkg/testutil/proc"
)

var cmpFlows = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

type testCase struct {
	name string
	cfg  Config
}

func testCases() []testCase {
	return []testCase{
		{"netflow5", Config{Protocol: NetFlowV5, Seed: 1, SamplingRate: 100, ObservationDomain: 0x0102}},
		{"netflow5-few", Config{Protocol: NetFlowV5, Seed: 9, RecordsPerPacket: 3}},
		{"netflow9", Config{Protocol: NetFlowV9, Seed: 2, IPv6Ratio: 0.3, SamplingRate: 512, ObservationDomain: 7, TemplateInterval: 5}},
		{"netflow9-ipv6-unsampled", Config{Protocol: NetFlowV9, Seed: 5, IPv6Ratio: 1, RecordsPerPacket: 5}},
		{"ipfix", Config{Protocol: IPFIX, Seed: 3, IPv6Ratio: 0.3, SamplingRate: 1000, ObservationDomain: 42,
			VariableLengthIE: true, EnterpriseIE: true, TemplateInterval: 5}},
		{"ipfix-benchmark", Config{Protocol: IPFIX}},
		{"sflow", Config{Protocol: SFlow, Seed: 4, IPv6Ratio: 0.3, SamplingRate: 2048, ObservationDomain: 3}},
		{"sflow-ipv6-agent", Config{Protocol: SFlow, Seed: 6, IPv6Ratio: 0.5, RecordsPerPacket: 3,
			Exporter: netip.MustParseAddr("2001:db8::1"), HeaderSize: 256}},
		// Flows reused from a pool of 3 packets; export times 0.7s apart move
		// them by whole seconds.
		{"netflow5-pool", Config{Protocol: NetFlowV5, Seed: 11, FlowPool: 3, PacketInterval: 700 * time.Millisecond}},
		{"netflow9-pool", Config{Protocol: NetFlowV9, Seed: 12, IPv6Ratio: 0.3, SamplingRate: 100, TemplateInterval: 5,
			FlowPool: 3, PacketInterval: 700 * time.Millisecond}},
		{"ipfix-pool", Config{Protocol: IPFIX, Seed: 13, IPv6Ratio: 0.3, VariableLengthIE: true, EnterpriseIE: true,
			FlowPool: 3, PacketInterval: 700 * time.Millisecond}},
		{"sflow-pool", Config{Protocol: SFlow, Seed: 14, IPv6Ratio: 0.3, SamplingRate: 64, FlowPool: 3}},
	}
}

// capture is what n calls to Next returned, copied.
type capture struct {
	pkts  [][]byte
	flows [][]Flow
	times []time.Time
}

func generate(t testing.TB, cfg Config, n int) (*Generator, capture) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	for range n {
		pkt, flows := g.Next()
		c.pkts = append(c.pkts, bytes.Clone(pkt))
		c.flows = append(c.flows, cloneFlows(flows))
		c.times = append(c.times, g.Time())
	}
	return g, c
}

func cloneFlows(flows []Flow) []Flow {
	out := slices.Clone(flows)
	for i := range out {
		out[i].ASPath, out[i].Communities = slices.Clone(out[i].ASPath), slices.Clone(out[i].Communities)
	}
	return out
}

// TestRoundTrip decodes every packet with the independent readers of
// reader_test.go and checks the flows and the headers against ground truth.
func TestRoundTrip(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			g, c := generate(t, tc.cfg, 40)
			cfg := g.Config()
			bootMs := cfg.BaseTime.UnixMilli() - 3600_000
			var got [][]Flow
			switch cfg.Protocol {
			case NetFlowV5:
				got = checkV5(t, cfg, c, bootMs)
			case NetFlowV9, IPFIX:
				got = checkNF(t, cfg, c, bootMs)
			case SFlow:
				got = checkSFlow(t, cfg, c, bootMs)
			}
			total := 0
			for i := range c.pkts {
				total += len(c.flows[i])
				if diff := cmp.Diff(c.flows[i], got[i], cmpFlows...); diff != "" {
					t.Fatalf("packet %d: flows mismatch (-want +decoded):\n%s", i, diff)
				}
			}
			if total == 0 {
				t.Fatal("no flows")
			}
		})
	}
}

func checkV5(t *testing.T, cfg Config, c capture, bootMs int64) [][]Flow {
	var got [][]Flow
	var seq uint32
	for i, pkt := range c.pkts {
		h, flows := readV5(t, pkt)
		if h.count != cfg.RecordsPerPacket || h.seq != seq || int64(h.secs) != c.times[i].Unix() ||
			int64(h.uptime) != int64(h.secs)*1000-bootMs || h.engineType != byte(cfg.ObservationDomain>>8) ||
			h.engine != byte(cfg.ObservationDomain) {
			t.Fatalf("packet %d: header %+v, want sequence %d, time %v", i, h, seq, c.times[i])
		}
		if cfg.SamplingRate > 0 && h.sampling != 0x4000|uint16(cfg.SamplingRate) {
			t.Fatalf("packet %d: sampling %#x", i, h.sampling)
		}
		seq += uint32(h.count)
		got = append(got, flows)
	}
	return got
}

func checkNF(t *testing.T, cfg Config, c capture, bootMs int64) [][]Flow {
	ipfix := cfg.Protocol == IPFIX
	r := newNFReader(t, ipfix)
	var got [][]Flow
	var records uint32
	for i, pkt := range c.pkts {
		p := r.read(pkt)
		got = append(got, p.flows)
		if p.id != cfg.ObservationDomain || int64(p.secs) != c.times[i].Unix() {
			t.Fatalf("packet %d: domain %d, export time %d", i, p.id, p.secs)
		}
		if !ipfix && (p.seq != uint32(i) || int64(p.uptime) != int64(p.secs)*1000-bootMs) {
			t.Fatalf("packet %d: sequence %d, uptime %d", i, p.seq, p.uptime)
		}
		if ipfix && p.seq != records {
			t.Fatalf("packet %d: sequence %d, want %d data records sent before", i, p.seq, records)
		}
		records += uint32(p.records)

		isTemplate := i%(cfg.TemplateInterval+1) == 0
		if isTemplate {
			want := []uint16{0, 1}
			if ipfix {
				want = []uint16{2, 3}
			}
			if cfg.SamplingRate > 0 {
				want = append(want, TemplateOptions)
			}
			if !slices.Equal(p.setIDs, want) || !slices.Equal(p.templateIDs, []uint16{256, 257, 258}) || len(p.flows) != 0 {
				t.Fatalf("packet %d: template packet with sets %v, templates %v", i, p.setIDs, p.templateIDs)
			}
			continue
		}
		want := []uint16{}
		if n4 := countV4(c.flows[i]); n4 > 0 {
			want = append(want, TemplateIPv4)
		}
		if countV4(c.flows[i]) < len(c.flows[i]) {
			want = append(want, TemplateIPv6)
		}
		if !slices.Equal(p.setIDs, want) || len(p.flows) != cfg.RecordsPerPacket {
			t.Fatalf("packet %d: data sets %v, %d flows", i, p.setIDs, len(p.flows))
		}
	}
	return got
}

func countV4(flows []Flow) int {
	n := 0
	for _, f := range flows {
		if f.SrcAddr.Is4() {
			n++
		}
	}
	return n
}

func checkSFlow(t *testing.T, cfg Config, c capture, bootMs int64) [][]Flow {
	var got [][]Flow
	sampleSeq := uint32(1)
	for i, pkt := range c.pkts {
		d := readSFlow(t, pkt, c.times[i])
		got = append(got, d.flows)
		if d.agent != cfg.Exporter || d.subAgent != cfg.ObservationDomain || d.seq != uint32(i+1) ||
			int64(d.uptime) != c.times[i].UnixMilli()-bootMs {
			t.Fatalf("datagram %d: agent %v, sub-agent %d, sequence %d, uptime %d", i, d.agent, d.subAgent, d.seq, d.uptime)
		}
		if !slices.Equal(d.counterSeqs, []uint32{uint32(i + 1)}) {
			t.Fatalf("datagram %d: counter samples %v", i, d.counterSeqs)
		}
		for j, s := range d.flowSeqs {
			if s != sampleSeq || d.formats[j] != uint32(1+2*(j%2)) {
				t.Fatalf("datagram %d: sample %d has sequence %d and format %d", i, j, s, d.formats[j])
			}
			sampleSeq++
		}
	}
	return got
}

func TestDeterministic(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, a := generate(t, tc.cfg, 30)
			_, b := generate(t, tc.cfg, 30)
			for i := range a.pkts {
				if !bytes.Equal(a.pkts[i], b.pkts[i]) {
					t.Fatalf("packet %d differs with the same seed", i)
				}
			}
			other := tc.cfg
			other.Seed++
			_, d := generate(t, other, 30)
			if slices.EqualFunc(a.pkts, d.pkts, bytes.Equal) {
				t.Fatal("another seed gave the same packets")
			}
		})
	}
}

// TestBenchmarkPacket pins the IPFIX benchmark packet: one IPv4 data set of
// 28 records of 80 bytes.
func TestBenchmarkPacket(t *testing.T) {
	g, err := New(Config{Protocol: IPFIX})
	if err != nil {
		t.Fatal(err)
	}
	r := newNFReader(t, true)
	r.read(g.Templates())
	pkt, flows := g.Next()
	p := r.read(pkt)
	if len(pkt) != 16+4+28*80 || len(flows) != 28 || !slices.Equal(p.setIDs, []uint16{TemplateIPv4}) {
		t.Fatalf("benchmark packet: %d bytes, %d flows, sets %v", len(pkt), len(flows), p.setIDs)
	}
}

func TestTemplates(t *testing.T) {
	for _, p := range []Protocol{NetFlowV5, SFlow} {
		g, _ := New(Config{Protocol: p})
		if g.Templates() != nil {
			t.Errorf("%s: templates", p)
		}
	}
	for _, p := range []Protocol{NetFlowV9, IPFIX} {
		g, _ := New(Config{Protocol: p, TemplateInterval: 3})
		tmpl := g.Templates()
		r := newNFReader(t, p == IPFIX)
		if got := r.read(tmpl).templateIDs; !slices.Equal(got, []uint16{256, 257, 258}) {
			t.Fatalf("%s: templates %v", p, got)
		}
		for i := range 8 {
			pkt, flows := g.Next()
			if isTemplate := i == 3 || i == 7; isTemplate != (len(flows) == 0) {
				t.Fatalf("%s: packet %d has %d flows", p, i, len(flows))
			}
			r.read(pkt)
		}
		g, _ = New(Config{Protocol: p, TemplateInterval: -1})
		for i := range 30 {
			if _, flows := g.Next(); len(flows) == 0 {
				t.Fatalf("%s: packet %d without flows although TemplateInterval < 0", p, i)
			}
		}
	}
}

func TestNextAllocs(t *testing.T) {
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(200, func() { g.Next() }); n != 0 {
				t.Fatalf("Next allocates %v times per call", n)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Protocol{NetFlowV5, NetFlowV9, IPFIX, SFlow} {
		if err := (Config{Protocol: p}).Validate(); err != nil {
			t.Errorf("%s: defaults: %v", p, err)
		}
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "unknown protocol"},
		{Config{Protocol: NetFlowV5, RecordsPerPacket: 31}, "at most 30"},
		{Config{Protocol: NetFlowV5, IPv6Ratio: 0.5}, "IPv4 only"},
		{Config{Protocol: NetFlowV5, SamplingRate: 20000}, "14 bits"},
		{Config{Protocol: IPFIX, IPv6Ratio: 1.5}, "IPv6 ratio"},
		{Config{Protocol: IPFIX, RecordsPerPacket: -1}, "records per packet"},
		{Config{Protocol: IPFIX, RecordsPerPacket: 1000}, "UDP datagram"},
		{Config{Protocol: SFlow, HeaderSize: 32}, "header size"},
		{Config{Protocol: NetFlowV9, PacketInterval: -time.Second}, "packet interval"},
		{Config{Protocol: IPFIX, FlowPool: -1}, "flow pool"},
		{Config{Protocol: IPFIX, FlowPool: 1 << 30}, "flow pool"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "flowgen: ") {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%+v: New accepted it", tc.cfg)
		}
	}
}

func TestParseProtocol(t *testing.T) {
	for _, p := range []Protocol{NetFlowV5, NetFlowV9, IPFIX, SFlow} {
		if got, err := ParseProtocol(p.String()); got != p || err != nil {
			t.Errorf("ParseProtocol(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseProtocol("netflow7"); err == nil {
		t.Error("netflow7 accepted")
	}
}

// BenchmarkNext reports the cost of a generated record: CPU ns (of the
// whole process, so run it with -test.cpu 1) and heap allocations.
func BenchmarkNext(b *testing.B) {
	benchmarkPackets(b, func(g *Generator) ([]byte, int) {
		pkt, flows := g.Next()
		return pkt, len(flows)
	})
}

// BenchmarkSendPackets is BenchmarkNext for the packets Send makes: into
// its own buffer, without the flows of reused packets.
func BenchmarkSendPackets(b *testing.B) {
	buf := make([]byte, 0, maxDatagram)
	benchmarkPackets(b, func(g *Generator) ([]byte, int) {
		var records int
		buf, _, records = g.appendNext(buf[:0], false)
		return buf, records
	})
}

func benchmarkPackets(b *testing.B, next func(*Generator) ([]byte, int)) {
	for _, tc := range testCases() {
		b.Run(tc.name, func(b *testing.B) {
			g, err := New(tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			var n, size int
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			cpu := proc.CPU()
			b.ReportAllocs()
			for b.Loop() {
				pkt, records := next(g)
				n += records
				size += len(pkt)
			}
			cpu = proc.CPU() - cpu
			runtime.ReadMemStats(&ms1)
			b.SetBytes(int64(size / b.N))
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/record")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(n), "allocs/record")
		})
	}
}
