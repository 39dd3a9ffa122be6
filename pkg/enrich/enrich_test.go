package enrich

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

func addr(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

func standard(t testing.TB, mode LookupMode, nets string) (*Enricher, string) {
	dir := t.TempDir()
	cfg := Config{
		ASNPath:     enrichtest.StandardASN(t, dir),
		CountryPath: enrichtest.StandardCountry(t, dir),
		Mode:        mode,
	}
	if nets != "" {
		cfg.NetworksPath = filepath.Join(dir, "nets.yaml")
		if err := os.WriteFile(cfg.NetworksPath, []byte(nets), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, dir
}

func TestShapes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, dbType string
		kind         Kind
		rec          func() enrichtest.Entry
		shape        Shape
		err          string
	}{
		{"asn", "GeoLite2-ASN", KindASN, func() enrichtest.Entry {
			return enrichtest.Entry{Prefix: "192.0.2.0/24", Record: enrichtest.ASN(64500, "X")}
		}, ShapeASN, ""},
		{"geolite-country", "GeoLite2-Country", KindCountry, func() enrichtest.Entry {
			return enrichtest.Entry{Prefix: "192.0.2.0/24", Record: enrichtest.CountryISO("NL")}
		}, ShapeCountryISO, ""},
		{"dbip", "country ipvAll", KindCountry, func() enrichtest.Entry {
			return enrichtest.Entry{Prefix: "192.0.2.0/24", Record: enrichtest.CountryCode("NL")}
		}, ShapeCountryCode, ""},
		{"unknown", "Weird-DB", KindCountry, func() enrichtest.Entry {
			return enrichtest.Entry{Prefix: "192.0.2.0/24", Record: enrichtest.ASN(1, "x")}
		}, 0, "holds AS records, not countries"},
		{"unknown2", "Weird-DB", KindASN, func() enrichtest.Entry {
			return enrichtest.Entry{Prefix: "192.0.2.0/24", Record: enrichtest.CountryCode("NL")}
		}, 0, "holds country records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := enrichtest.WriteMMDB(t, dir, tc.name+".mmdb", tc.dbType, []enrichtest.Entry{tc.rec()})
			for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
				d, err := openGeoDB(p, tc.kind, mode, &interner{})
				if tc.err != "" {
					if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
						t.Fatalf("got %v, want %q naming the file", err, tc.err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if d.info.Shape != tc.shape || d.info.Type != tc.dbType || d.info.Networks != 1 {
					t.Errorf("%v: info %+v", mode, d.info)
				}
				if v := d.lookup(netip.MustParseAddr("192.0.2.77")); v == nil || (v.asn == 0 && v.country == "") {
					t.Errorf("%v: lookup = %+v", mode, v)
				}
				if v := d.lookup(netip.MustParseAddr("192.0.3.1")); v != nil {
					t.Errorf("%v: miss = %+v", mode, v)
				}
			}
		})
	}
}

func TestUnknownShape(t *testing.T) {
	dir := t.TempDir()
	odd := enrichtest.WriteMMDB(t, dir, "odd.mmdb", "GeoIP2-Anonymous-IP", []enrichtest.Entry{
		{Prefix: "192.0.2.0/24", Record: mmdbtype.Map{"is_anonymous": mmdbtype.Bool(true)}},
	})
	_, err := New(Config{CountryPath: odd})
	if err == nil || !strings.Contains(err.Error(), "unknown record shape") || !strings.Contains(err.Error(), "GeoIP2-Anonymous-IP") {
		t.Fatalf("got %v", err)
	}
	if _, err := New(Config{ASNPath: filepath.Join(dir, "missing.mmdb")}); err == nil || !strings.Contains(err.Error(), "missing.mmdb") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.mmdb"), []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{ASNPath: filepath.Join(dir, "junk.mmdb")}); err == nil {
		t.Fatal("junk file accepted")
	}
}

const testNets = `networks:
  - name: dc1
    cidrs: [10.1.0.0/16]
    labels: {site: ams1}
    asn: 64512
    as_name: ACME-DC1
    country: NL
  - name: web
    cidrs: [192.0.2.0/25, "2001:db8:1::/48"]
    labels: {role: web}
`

func TestEnrich(t *testing.T) {
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		t.Run(mode.String(), func(t *testing.T) {
			e, _ := standard(t, mode, testNets)
			var st Stats

			// Public to public, exporter AS missing: filled.
			m := &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr(enrichtest.AddrAS64501)}
			e.Enrich(m, &st)
			if m.SrcAs != 64500 || m.SrcAsName != "EXAMPLE-ONE" || m.SrcCountry != "NL" ||
				m.DstAs != 64501 || m.DstAsName != "EXAMPLE-TWO" || m.DstCountry != "DE" {
				t.Errorf("public: %v", m)
			}
			if m.SrcNetName != "web" || m.SrcNetPrefix != "192.0.2.0/25" || m.SrcNetLabels["role"] != "web" ||
				m.DstNetName != "" || m.FlowDirection != flowpb.FlowMessage_EGRESS {
				t.Errorf("context: %v", m)
			}

			// Exporter AS kept, and no other AS's name is attached to it.
			m = &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr(enrichtest.AddrAS64502), SrcAs: 65000}
			e.Enrich(m, &st)
			if m.SrcAs != 65000 || m.SrcAsName != "" || m.DstAs != 64502 || m.DstCountry != "FR" ||
				m.FlowDirection != flowpb.FlowMessage_EGRESS {
				t.Errorf("keep: %v", m)
			}

			// Private and reserved space: no AS, no country, except from a network.
			m = &flowpb.FlowMessage{SrcAddr: addr("10.1.2.3"), DstAddr: addr("192.168.0.1")}
			e.Enrich(m, &st)
			if m.SrcAs != 64512 || m.SrcAsName != "ACME-DC1" || m.SrcCountry != "NL" || m.SrcNetLabels["site"] != "ams1" ||
				m.DstAs != 0 || m.DstCountry != "" || m.FlowDirection != flowpb.FlowMessage_EGRESS {
				t.Errorf("private: %v", m)
			}

			// Ingress, unknown address, IPv4-mapped IPv6.
			mapped := netip.AddrFrom16(netip.MustParseAddr(enrichtest.AddrUnknown).As16()).AsSlice()
			m = &flowpb.FlowMessage{SrcAddr: mapped, DstAddr: addr("2001:db8:1::9")}
			e.Enrich(m, &st)
			if m.SrcAs != 0 || m.DstAs != 64502 || m.DstNetName != "web" || m.FlowDirection != flowpb.FlowMessage_INGRESS {
				t.Errorf("ingress: %v", m)
			}
			m = &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64501), DstAddr: addr(enrichtest.AddrUnknown)}
			e.Enrich(m, &st)
			if m.FlowDirection != flowpb.FlowMessage_EXTERNAL {
				t.Errorf("external: %v", m)
			}
			m = &flowpb.FlowMessage{SrcAddr: addr("10.1.0.1"), DstAddr: addr("192.0.2.1")}
			e.Enrich(m, &st)
			if m.FlowDirection != flowpb.FlowMessage_INTERNAL {
				t.Errorf("internal: %v", m)
			}
			// No addresses at all: skipped, direction unknown.
			m = &flowpb.FlowMessage{}
			e.Enrich(m, &st)
			if m.FlowDirection != flowpb.FlowMessage_DIRECTION_UNKNOWN {
				t.Errorf("empty: %v", m)
			}

			want := Stats{Records: 7}
			want.Lookups[DatabaseASN] = [numResults]uint64{7, 2, 3}
			want.Lookups[DatabaseCountry] = [numResults]uint64{7, 2, 3}
			want.Lookups[DatabaseNetworks] = [numResults]uint64{6, 6, 2}
			if st != want {
				t.Errorf("stats\n got %+v\nwant %+v", st, want)
			}
		})
	}
}

func TestASNOverride(t *testing.T) {
	dir := t.TempDir()
	e, err := New(Config{ASNPath: enrichtest.StandardASN(t, dir), ASNOverride: true})
	if err != nil {
		t.Fatal(err)
	}
	m := &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500), SrcAs: 65000, DstAddr: addr("10.0.0.1"), DstAs: 65001}
	e.Enrich(m, &Stats{})
	if m.SrcAs != 64500 || m.SrcAsName != "EXAMPLE-ONE" || m.DstAs != 65001 || m.SrcCountry != "" || m.FlowDirection != 0 {
		t.Errorf("override: %v", m)
	}
}

func TestEnrichNoAllocs(t *testing.T) {
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		e, _ := standard(t, mode, testNets)
		m := &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500), DstAddr: addr("2001:db8:1::9")}
		var st Stats
		if n := testing.AllocsPerRun(1000, func() { e.Enrich(m, &st) }); n != 0 {
			t.Errorf("%v: %v allocs per record", mode, n)
		}
	}
}

func TestReload(t *testing.T) {
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		t.Run(mode.String(), func(t *testing.T) { testReload(t, mode) })
	}
}

func testReload(t *testing.T, mode LookupMode) {
	e, dir := standard(t, mode, testNets)
	if e.Changed() {
		t.Fatal("changed right after load")
	}
	if got, err := e.Reload(false); err != nil || len(got) != 0 {
		t.Fatalf("no-op reload: %v %v", got, err)
	}

	// Records flow while files change underneath.
	stop := make(chan struct{})
	var records atomic.Int64
	var wg sync.WaitGroup
	stopOnce := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopOnce) // a failed check must not leave them running
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var st Stats
			m := &flowpb.FlowMessage{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				m.ResetVT()
				m.SrcAddr, m.DstAddr = addr(enrichtest.AddrAS64500), addr("10.1.0.1")
				e.Enrich(m, &st)
				if m.SrcAs != 64500 && m.SrcAs != 64999 {
					t.Errorf("src as %d", m.SrcAs)
					return
				}
				records.Add(1)
			}
		}()
	}

	// A new ASN database: picked up by polling, the networks file reused.
	time.Sleep(10 * time.Millisecond) // a distinct mtime even on coarse clocks
	enrichtest.WriteMMDB(t, dir, "asn.mmdb", "GeoLite2-ASN", []enrichtest.Entry{{Prefix: "192.0.2.0/24", Record: enrichtest.ASN(64999, "NEW")}})
	if e.Changed() {
		t.Fatal("change reported before the file settled for one poll")
	}
	if !e.Changed() {
		t.Fatal("change not noticed")
	}
	got, err := e.Reload(false)
	// In table mode both databases feed one merged table: both are read.
	want := map[LookupMode]int{ModeTable: 2, ModeMMDB: 1}[mode]
	if err != nil || len(got) != want || !strings.HasSuffix(got[0], "asn.mmdb") {
		t.Fatalf("reload: %v %v, want %d files", got, err, want)
	}
	m := &flowpb.FlowMessage{SrcAddr: addr(enrichtest.AddrAS64500)}
	e.Enrich(m, &Stats{})
	if m.SrcAs != 64999 || m.SrcAsName != "NEW" || m.SrcCountry != "NL" {
		t.Errorf("after reload: %v", m)
	}

	// A broken networks file: the reload fails, the old data stays.
	nets := filepath.Join(dir, "nets.yaml")
	if err := os.WriteFile(nets, []byte("networks:\n  - name: x\n    cidrs: [10.0.0.0/33]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(false); err == nil || !strings.Contains(err.Error(), "nets.yaml:3") {
		t.Fatalf("bad reload: %v", err)
	}
	m = &flowpb.FlowMessage{SrcAddr: addr("10.1.0.1")}
	e.Enrich(m, &Stats{})
	if m.SrcNetName != "dc1" {
		t.Errorf("old networks lost: %v", m)
	}
	// SIGHUP-style forced reload of everything, fixed file.
	if err := os.WriteFile(nets, []byte("networks:\n  - name: x\n    cidrs: [10.0.0.0/8]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Reload(true); err != nil || len(got) != 3 {
		t.Fatalf("forced reload: %v %v", got, err)
	}
	stopOnce()
	if records.Load() == 0 {
		t.Fatal("no records enriched during reloads")
	}
	m = &flowpb.FlowMessage{SrcAddr: addr("10.1.0.1")}
	e.Enrich(m, &Stats{})
	if m.SrcNetName != "x" || e.Networks().Len() != 1 {
		t.Errorf("new networks: %v", m)
	}
}

func TestIsReserved(t *testing.T) {
	for s, want := range map[string]bool{
		"10.0.0.1": true, "100.64.0.1": true, "100.128.0.1": false, "127.0.0.1": true, "169.254.1.1": true,
		"172.16.0.1": true, "172.32.0.1": false, "192.168.1.1": true, "224.0.0.1": true, "255.255.255.255": true,
		"0.0.0.0": true, "8.8.8.8": false, "192.0.2.1": false, "::": true, "::1": true, "fd00::1": true,
		"fe80::1": true, "ff02::1": true, "2001:db8::1": false, "2a00::1": false, "198.18.0.1": true,
	} {
		if got := IsReserved(netip.MustParseAddr(s)); got != want {
			t.Errorf("%s: got %v", s, got)
		}
	}
}
