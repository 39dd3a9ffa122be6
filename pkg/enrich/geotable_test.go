package enrich

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gaissmai/bart"
	"github.com/maxmind/mmdbwriter"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

// randomGeoDB builds a table-mode database of n random prefixes around a
// few hot spots, so that the two databases' prefixes nest and overlap at
// every length, as real ASN and country files do.
func randomGeoDB(rng *rand.Rand, n int, kind Kind) *geoDB {
	d := &geoDB{table: new(bart.Table[uint32])}
	for i := range n {
		var a netip.Addr
		var bits int
		if rng.IntN(4) == 0 {
			var b [16]byte
			b[0], b[1], b[2] = 0x20, 0x01, byte(rng.IntN(4))
			b[3], b[4] = byte(rng.Uint32()), byte(rng.Uint32())
			a, bits = netip.AddrFrom16(b), 8+rng.IntN(57)
		} else if rng.IntN(3) == 0 {
			// Many long prefixes in a few /24s: nested inside the flat
			// array's blocks.
			a = netip.AddrFrom4([4]byte{3, 3, byte(rng.IntN(4)), byte(rng.Uint32())})
			bits = 22 + rng.IntN(11)
		} else {
			a = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(3)), byte(rng.IntN(4)), byte(rng.Uint32()), byte(rng.Uint32())})
			bits = 4 + rng.IntN(29)
		}
		v := geoValue{asn: uint32(i + 1), asName: fmt.Sprint("AS", i+1)}
		if kind == KindCountry {
			v = geoValue{country: fmt.Sprintf("C%d", i)}
		}
		d.table.Insert(netip.PrefixFrom(a, bits).Masked(), uint32(len(d.values)))
		d.values = append(d.values, v)
	}
	return d
}

// TestGeoTableMatchesEachDatabase checks the merged table against a lookup
// in each database on its own, at addresses inside, next to and between
// the prefixes.
func TestGeoTableMatchesEachDatabase(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	asn := randomGeoDB(rng, 3000, KindASN)
	country := randomGeoDB(rng, 2000, KindCountry)
	for _, tc := range []struct {
		name         string
		asn, country *geoDB
		flat         bool
	}{
		{"both", asn, country, false},
		{"asn only", asn, nil, false},
		{"country only", nil, country, false},
		{"both/flat", asn, country, true},
		{"asn only/flat", asn, nil, true},
		{"country only/flat", nil, country, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGeoTable(tc.asn, tc.country, tc.flat)
			var probes []netip.Addr
			for _, d := range []*geoDB{asn, country} {
				for p := range d.table.All() {
					probes = append(probes, p.Addr(), p.Addr().Prev(), lastAddr(p), lastAddr(p).Next())
				}
			}
			for range 20000 {
				probes = append(probes, netip.AddrFrom4([4]byte{byte(rng.IntN(5)), byte(rng.IntN(5)), byte(rng.Uint32()), byte(rng.Uint32())}),
					netip.AddrFrom4([4]byte{3, 3, byte(rng.IntN(4)), byte(rng.Uint32())}))
			}
			checked := 0
			for _, a := range probes {
				if !a.IsValid() {
					continue
				}
				var want geoPair
				if tc.asn != nil {
					if v := tc.asn.lookup(a); v != nil {
						want.asn, want.asName, want.inASN = v.asn, v.asName, true
					}
				}
				if tc.country != nil {
					if v := tc.country.lookup(a); v != nil {
						want.country, want.inCC = v.country, true
					}
				}
				got := g.lookup(a)
				if got != want {
					t.Fatalf("%s: merged table says %+v, the databases %+v", a, got, want)
				}
				checked++
			}
			if checked < 20000 {
				t.Fatalf("only %d addresses checked", checked)
			}
		})
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestGeoTableRealDatabases compares the merged table with walks of the
// full-size free database files themselves (mmdb mode) at a million random
// public addresses, 6to4 and Teredo ones among them (skipped without
// scripts/dev/fetch-geo-db.sh's files).
func TestGeoTableRealDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	asnPath, countryPath := realDatabases(t)
	in := interner{}
	open := func(path string, kind Kind, mode LookupMode) *geoDB {
		d, err := openGeoDB(path, kind, mode, &in)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	g := newGeoTable(open(asnPath, KindASN, ModeTable), open(countryPath, KindCountry, ModeTable), false)
	if g.v4 == nil {
		t.Fatal("no flat IPv4 array for full-size databases")
	}
	asn, country := open(asnPath, KindASN, ModeMMDB), open(countryPath, KindCountry, ModeMMDB)
	addrs := benchAddrs(1 << 20)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		var b [16]byte
		b[0], b[1] = 0x20, 0x02
		for i := 2; i < 16; i++ {
			b[i] = byte(rng.Uint32())
		}
		addrs = append(addrs, netip.AddrFrom16(b))
		b[1], b[2], b[3] = 0x01, 0, 0
		addrs = append(addrs, netip.AddrFrom16(b))
	}
	hits := 0
	for _, a := range addrs {
		var want geoPair
		if v := asn.lookup(a); v != nil {
			want.asn, want.asName, want.inASN = v.asn, v.asName, true
		}
		if v := country.lookup(a); v != nil {
			want.country, want.inCC = v.country, true
		}
		got := g.lookup(a)
		if got.inASN || got.inCC {
			hits++
		}
		if got != want {
			t.Fatalf("%s: merged table says %+v, the files %+v", a, got, want)
		}
	}
	t.Logf("%d IPv6 prefixes and %d /24 blocks (%d value pairs); %d of %d addresses known",
		g.trie.Size(), len(g.v4long)/256, len(g.pairs), hits, len(addrs))
}

// TestGeoTableAliases: 6to4 and Teredo addresses get the IPv4 data of a
// file that aliases them (MaxMind's default) and the IPv6 data of a file
// that does not, in both lookup modes, as the files themselves answer.
func TestGeoTableAliases(t *testing.T) {
	dir := t.TempDir()
	asnPath := enrichtest.StandardASN(t, dir) // aliased
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "country ipvAll", IncludeReservedNetworks: true, DisableIPv4Aliasing: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ prefix, cc string }{{"192.0.2.0/24", "NL"}, {"2002::/16", "JP"}} {
		_, n, err := net.ParseCIDR(e.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, enrichtest.CountryCode(e.cc)); err != nil {
			t.Fatal(err)
		}
	}
	countryPath := filepath.Join(dir, "unaliased.mmdb")
	f, err := os.Create(countryPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		e, err := New(Config{ASNPath: asnPath, CountryPath: countryPath, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			addr string
			asn  uint32
			cc   string
		}{
			{"2002:c000:20a::1", 64500, "JP"},     // 6to4 of 192.0.2.10: AS from IPv4, country from 2002::/16
			{"2001:0:c000:20a::1", 64500, ""},     // Teredo, server 192.0.2.10: the country file has nothing there
			{"2002:cb00:7105::1", 0, "JP"},        // 6to4 of 203.0.113.5, in no ASN network
			{"2001:db8::1", 64502, ""},            // plain IPv6
			{enrichtest.AddrAS64500, 64500, "NL"}, // plain IPv4
		} {
			m := &flowpb.FlowMessage{SrcAddr: netip.MustParseAddr(tc.addr).AsSlice()}
			e.Enrich(m, &Stats{})
			if m.SrcAs != tc.asn || m.SrcCountry != tc.cc {
				t.Errorf("%v: %s: AS %d country %q, want %d %q", mode, tc.addr, m.SrcAs, m.SrcCountry, tc.asn, tc.cc)
			}
		}
	}
}
