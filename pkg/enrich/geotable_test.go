package enrich

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gaissmai/bart"
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
				var got geoPair
				if p := g.lookup(a); p != nil {
					got = *p
				}
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

// TestGeoTableRealDatabases compares the merged table with each full-size
// free database on its own at a million random addresses (skipped without
// scripts/fetch-geo-db.sh's files).
func TestGeoTableRealDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	asnPath, countryPath := realDatabases(t)
	in := interner{}
	asn, err := openGeoDB(asnPath, KindASN, ModeTable, &in)
	if err != nil {
		t.Fatal(err)
	}
	country, err := openGeoDB(countryPath, KindCountry, ModeTable, &in)
	if err != nil {
		t.Fatal(err)
	}
	g := newGeoTable(asn, country, false)
	if g.v4 == nil {
		t.Fatal("no flat IPv4 array for full-size databases")
	}
	hits := 0
	for _, a := range benchAddrs(1 << 20) {
		var want geoPair
		if v := asn.lookup(a); v != nil {
			want.asn, want.asName, want.inASN = v.asn, v.asName, true
		}
		if v := country.lookup(a); v != nil {
			want.country, want.inCC = v.country, true
		}
		var got geoPair
		if p := g.lookup(a); p != nil {
			got = *p
			hits++
		}
		if got != want {
			t.Fatalf("%s: merged table says %+v, the databases %+v", a, got, want)
		}
	}
	t.Logf("%d prefixes merged into %d IPv6 ones and %d /24 blocks (%d value pairs); %d of 1M addresses known",
		asn.info.Networks+country.info.Networks, g.trie.Size(), len(g.v4long)/256, len(g.pairs), hits)
}
