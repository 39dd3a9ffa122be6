package enrich

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

// clock is 2026-01-01 at hh:mm:ss UTC, in Unix ns.
func clock(tb testing.TB, hms string) int64 {
	tb.Helper()
	d, err := time.Parse("15:04:05", hms)
	if err != nil {
		tb.Fatal(err)
	}
	return time.Date(2026, 1, 1, d.Hour(), d.Minute(), d.Second(), 0, time.UTC).UnixNano()
}

// sessionsTable holds alice (100.64.0.1 and a delegated /56, 08:00 to
// 09:00), bob (100.64.0.1 again from 09:10) and carol (100.64.0.2 from
// 08:00, behind a CGNAT).
func sessionsTable(t testing.TB) *subscriber.Table {
	tbl := subscriber.New(subscriber.Config{})
	nas := netip.MustParseAddr("192.0.2.1")
	alice := subscriber.Record{Status: subscriber.StatusStart, NASIP: nas, SessionID: "a1", User: "alice",
		CallingStationID: "00-11-22-33-44-55", FramedIP: netip.MustParseAddr("100.64.0.1"), EventTime: clock(t, "08:00:00")}
	alice.AddPrefix(netip.MustParsePrefix("2001:db8:aa::/56"))
	stop := alice
	stop.Status, stop.EventTime = subscriber.StatusStop, clock(t, "09:00:00")
	for _, r := range []subscriber.Record{
		alice, stop,
		{Status: subscriber.StatusStart, NASIP: nas, SessionID: "b1", User: "bob", FramedIP: netip.MustParseAddr("100.64.0.1"), EventTime: clock(t, "09:10:00")},
		{Status: subscriber.StatusStart, NASIP: nas, SessionID: "c1", User: "carol", CallingStationID: "491701234567",
			FramedIP: netip.MustParseAddr("100.64.0.2"), EventTime: clock(t, "08:00:00")},
	} {
		if err := tbl.Apply(&r); err != nil {
			t.Fatal(err)
		}
	}
	return tbl
}

func withSessions(t testing.TB, nets string) *Enricher {
	e, _ := standard(t, ModeTable, nets)
	e.cfg.Sessions = sessionsTable(t)
	return e
}

// subscriberCases are records in stream order, each with the users its
// sides must get ("nat:" before a user found through a NAT port block).
func subscriberCases(t testing.TB) []struct {
	m        *flowpb.FlowMessage
	src, dst string
} {
	pub := addr(enrichtest.AddrAS64500)
	return []struct {
		m        *flowpb.FlowMessage
		src, dst string
	}{
		{&flowpb.FlowMessage{SrcAddr: addr("100.64.0.1"), DstAddr: pub, TimeFlowStartNs: uint64(clock(t, "08:30:00")), Proto: 6}, "alice", ""},
		// No start time: the time received is the flow's time.
		{&flowpb.FlowMessage{SrcAddr: addr("100.64.0.1"), DstAddr: pub, TimeReceivedNs: uint64(clock(t, "09:30:00"))}, "bob", ""},
		// A late flow: started before the address was reassigned.
		{&flowpb.FlowMessage{SrcAddr: pub, DstAddr: addr("100.64.0.1"), TimeFlowStartNs: uint64(clock(t, "08:59:59")),
			TimeReceivedNs: uint64(clock(t, "09:40:00"))}, "", "alice"},
		{&flowpb.FlowMessage{SrcAddr: addr("100.64.0.1"), DstAddr: pub, TimeFlowStartNs: uint64(clock(t, "09:05:00"))}, "", ""},
		{&flowpb.FlowMessage{SrcAddr: pub, DstAddr: addr("2001:db8:aa:1::5"), TimeFlowStartNs: uint64(clock(t, "08:10:00"))}, "", "alice"},
		// Stale subscriber fields from upstream are replaced.
		{&flowpb.FlowMessage{SrcAddr: addr("100.64.9.9"), DstAddr: addr("100.64.0.2"), TimeFlowStartNs: uint64(clock(t, "08:10:00")),
			SrcUser: "stale", SrcSessionId: "x", DstCallingStationId: "y"}, "", "carol"},
		// The CGNAT's port-block allocation, in the stream: its private
		// side is carol's.
		{&flowpb.FlowMessage{SrcAddr: addr("100.64.0.2"), PostNatSrcAddr: addr("198.51.100.7"), NatEvent: 16,
			NatPortRangeStart: 2048, NatPortRangeEnd: 2559, TimeReceivedNs: uint64(clock(t, "08:05:00"))}, "carol", ""},
		// Outside the CGNAT: the public address and a port of the block.
		{&flowpb.FlowMessage{SrcAddr: addr("198.51.100.7"), DstAddr: pub, SrcPort: 2100, DstPort: 443, Proto: 6,
			TimeFlowStartNs: uint64(clock(t, "08:06:00"))}, "nat:carol", ""},
		{&flowpb.FlowMessage{SrcAddr: pub, DstAddr: addr("198.51.100.7"), SrcPort: 53, DstPort: 2559, Proto: 17,
			TimeFlowStartNs: uint64(clock(t, "08:06:00"))}, "", "nat:carol"},
		{&flowpb.FlowMessage{SrcAddr: addr("198.51.100.7"), DstAddr: pub, SrcPort: 2560, Proto: 6,
			TimeFlowStartNs: uint64(clock(t, "08:06:00"))}, "", ""},
		{&flowpb.FlowMessage{SrcAddr: addr("198.51.100.7"), DstAddr: pub, SrcPort: 2100, Proto: 1, // ICMP: no ports
			TimeFlowStartNs: uint64(clock(t, "08:06:00"))}, "", ""},
		{&flowpb.FlowMessage{SrcAddr: addr("198.51.100.7"), DstAddr: pub, SrcPort: 2100, Proto: 6, // before the allocation
			TimeFlowStartNs: uint64(clock(t, "08:04:59"))}, "", ""},
		{&flowpb.FlowMessage{}, "", ""},
	}
}

func TestSubscriberAttribution(t *testing.T) {
	e := withSessions(t, testNets)
	var st Stats
	want := [numSides][subscriber.NumVia]uint64{}
	for i, tc := range subscriberCases(t) {
		m := tc.m.CloneVT()
		e.Enrich(m, &st)
		if m.SrcUser != user(tc.src) || m.DstUser != user(tc.dst) {
			t.Errorf("case %d: src %q dst %q, want %q %q", i, m.SrcUser, m.DstUser, tc.src, tc.dst)
		}
		for side, u := range []string{tc.src, tc.dst} {
			switch {
			case u == "":
				want[side][subscriber.ViaNone]++
			case strings.HasPrefix(u, "nat:"):
				want[side][subscriber.ViaNAT]++
			default:
				want[side][subscriber.ViaSession]++
			}
		}
		if i == 0 && (m.SrcSessionId != "a1" || m.SrcCallingStationId != "00-11-22-33-44-55" || m.SrcAs != 0 || m.DstAs != 64500) {
			t.Errorf("case 0: %v", m)
		}
		if i == 5 && (m.SrcSessionId != "" || m.DstCallingStationId != "491701234567") {
			t.Errorf("case 5: stale fields kept: %v", m)
		}
	}
	if st.Subscribers != want {
		t.Errorf("stats %v, want %v", st.Subscribers, want)
	}
	if n := e.cfg.Sessions.NATStats(); n.Open != 1 || n.Allocations != 1 {
		t.Errorf("NAT %+v", n)
	}
}

// TestSpliceWithSessionsMatchesDecodeEncode: with sessions, the spliced
// records decode to what the decode/enrich/encode path gives.
func TestSpliceWithSessionsMatchesDecodeEncode(t *testing.T) {
	for _, nets := range []string{"", testNets} {
		e := withSessions(t, nets)
		var sp splicer
		for i, tc := range subscriberCases(t) {
			frame := tc.m.AppendMarshal(nil)
			var st1, st2 Stats
			got, err := sp.enrich(e, frame, &st1)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			want := tc.m.CloneVT()
			e.Enrich(want, &st2)
			var back flowpb.FlowMessage
			if err := back.UnmarshalVT(got); err != nil {
				t.Fatalf("case %d: spliced record does not decode: %v", i, err)
			}
			if !back.EqualVT(want) || !bytes.Equal(back.ProtoReflect().GetUnknown(), want.ProtoReflect().GetUnknown()) {
				t.Errorf("networks %v, case %d:\n got %v\nwant %v", nets != "", i, &back, want)
			}
			if st1 != st2 {
				t.Errorf("case %d: stats %+v, want %+v", i, st1, st2)
			}
			if back.SrcUser != user(tc.src) || back.DstUser != user(tc.dst) {
				t.Errorf("case %d: src %q dst %q, want %q %q", i, back.SrcUser, back.DstUser, tc.src, tc.dst)
			}
		}
	}
}

func user(want string) string { return strings.TrimPrefix(want, "nat:") }

func TestSpliceSessionFieldTypes(t *testing.T) {
	e := withSessions(t, "")
	var sp splicer
	for name, frame := range map[string][]byte{
		"time_flow_start_ns as bytes": {0xfa, 0x06, 0x01, 0x05},
		"src_port as bytes":           {0xaa, 0x01, 0x01, 0x05},
		"post_nat_src_addr as varint": {0xa0, 0x47, 0x05},
	} {
		if _, err := sp.enrich(e, frame, &Stats{}); err == nil {
			t.Errorf("%s: accepted % x", name, frame)
		}
	}
}

func TestSessionsOnly(t *testing.T) {
	e, err := New(Config{Sessions: sessionsTable(t)})
	if err != nil {
		t.Fatal(err)
	}
	m := &flowpb.FlowMessage{SrcAddr: addr("100.64.0.2"), TimeFlowStartNs: uint64(clock(t, "08:00:00"))}
	e.Enrich(m, &Stats{})
	if m.SrcUser != "carol" {
		t.Fatalf("%v", m)
	}
}

func TestSessionsNoAllocs(t *testing.T) {
	e := withSessions(t, testNets)
	cases := subscriberCases(t)
	var st Stats
	var sp splicer
	for _, i := range []int{0, 4, 7} { // IPv4, IPv6 prefix, through NAT
		m := cases[i].m
		frame := m.AppendMarshal(nil)
		_, _ = sp.enrich(e, frame, &st)
		if n := testing.AllocsPerRun(200, func() { _, _ = sp.enrich(e, frame, &st) }); n != 0 {
			t.Errorf("case %d: splice allocates %v times per record", i, n)
		}
		c := m.CloneVT()
		if n := testing.AllocsPerRun(200, func() { e.Enrich(c, &st) }); n != 0 {
			t.Errorf("case %d: Enrich allocates %v times per record", i, n)
		}
	}
}

// FuzzSpliceSessions is FuzzSplice with sessions: never panics; whenever
// the full decoder accepts a frame, the splicer accepts it too and both
// paths give equal records, subscriber fields and NAT events included.
func FuzzSpliceSessions(f *testing.F) {
	for _, tc := range subscriberCases(f) {
		f.Add(tc.m.AppendMarshal(nil))
	}
	base, _ := standard(f, ModeTable, testNets)
	f.Fuzz(func(t *testing.T, frame []byte) {
		e := &Enricher{cfg: base.cfg}
		e.cur.Store(base.cur.Load())
		e.cfg.Sessions = sessionsTable(t)
		var sp splicer
		got, serr := sp.enrich(e, frame, &Stats{})
		if serr == nil && !wireOK(frame) {
			t.Fatalf("splice accepts a malformed frame")
		}
		var want flowpb.FlowMessage
		if want.UnmarshalVT(frame) != nil || !canonicalInput(frame) {
			return
		}
		if serr != nil {
			t.Fatalf("splice rejects a valid frame: %v", serr)
		}
		e.Enrich(&want, &Stats{})
		var back flowpb.FlowMessage
		if err := back.UnmarshalVT(got); err != nil {
			t.Fatalf("spliced record does not decode: %v", err)
		}
		if !back.EqualVT(&want) {
			t.Fatalf("splice and decode/encode differ:\n got %v\nwant %v", &back, &want)
		}
	})
}

// benchSubscriberAddr is the i-th subscriber's address, spread over
// 100.64.0.0/10 in a fixed random order.
func benchSubscriberAddr(i int) netip.Addr {
	v := uint32(i)*2654435761%(1<<22) | 100<<24 | 64<<16
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// benchSessions opens n IPv4 sessions with realistic identities, started
// before the flows of benchStream.
func benchSessions(tb testing.TB, n int) *subscriber.Table {
	tbl := subscriber.New(subscriber.Config{})
	var r subscriber.Record
	for i := range n {
		r.Reset()
		r.Status, r.NASIP = subscriber.StatusStart, netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%16)})
		r.SessionID = fmt.Sprintf("%016X", uint64(i)*0x9E3779B97F4A7C15)
		r.User = fmt.Sprintf("sub%07d@isp.example", i)
		r.CallingStationID = fmt.Sprintf("02-00-%02X-%02X-%02X-%02X", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
		r.SetFramedIP(benchSubscriberAddr(i))
		r.EventTime = 1_699_000_000e9 + int64(i)*1e6
		if err := tbl.Apply(&r); err != nil {
			tb.Fatal(err)
		}
	}
	return tbl
}

// benchmarkSessions runs the stage with the test databases and the CIDR
// context on flows whose inside side is a subscriber address and whose
// other side is a public one: "off" without sessions, "1M" with 1 M open
// sessions; the difference is what attribution costs. The subscribers
// are drawn uniformly from all 1 M ("uniform": every session lookup a
// cache miss, the worst case), with a Zipf law over all 1 M ("zipf": a
// few heavy users, a long tail), or uniformly from 50 k of them spread
// over the table ("active50k": the subscribers active in a given second).
func benchmarkSessions(b *testing.B, run func(*testing.B, Config, []netip.Addr, func() netip.Addr)) {
	const n = 1_000_000
	tbl := benchSessions(b, n)
	dir := b.TempDir()
	asn, country := enrichtest.StandardASN(b, dir), enrichtest.StandardCountry(b, dir)
	pool := benchAddrs(50_000)
	for _, spread := range []string{"uniform", "zipf", "active50k"} {
		for _, with := range []bool{false, true} {
			name := spread + "/off"
			cfg := Config{ASNPath: asn, CountryPath: country}
			if with {
				name, cfg.Sessions = spread+"/1M", tbl
			}
			b.Run(name, func(b *testing.B) {
				rng := rand.New(rand.NewPCG(7, 8))
				zipf := rand.NewZipf(rand.New(rand.NewPCG(9, 10)), 1.1, 1, n-1)
				inside := func() netip.Addr { return benchSubscriberAddr(rng.IntN(n)) }
				switch spread {
				case "zipf":
					inside = func() netip.Addr { return benchSubscriberAddr(int(zipf.Uint64())) }
				case "active50k":
					inside = func() netip.Addr { return benchSubscriberAddr(rng.IntN(50_000) * (n / 50_000)) }
				}
				run(b, cfg, pool, inside)
			})
		}
	}
}
