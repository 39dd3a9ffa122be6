package enrich

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

// GeoDir is where scripts/dev/fetch-geo-db.sh puts the real databases;
// FLOWPIPE_GEO_DIR overrides it.
func GeoDir() string {
	if d := os.Getenv("FLOWPIPE_GEO_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "scripts", ".geo")
}

// realDatabases returns the full-size ASN and country files, or skips.
func realDatabases(tb testing.TB) (asn, country string) {
	asn = filepath.Join(GeoDir(), "asn.mmdb")
	country = filepath.Join(GeoDir(), "dbip-country.mmdb")
	for _, p := range []string{asn, country} {
		if _, err := os.Stat(p); err != nil {
			tb.Skipf("%s missing: run scripts/dev/fetch-geo-db.sh", p)
		}
	}
	return asn, country
}

// benchAddrs returns public addresses spread over the whole space, 1 in 8
// IPv6, as a stream of real flows would have.
func benchAddrs(n int) []netip.Addr {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		var a netip.Addr
		if len(out)%8 == 7 {
			var b [16]byte
			b[0], b[1] = 0x20, byte(0x01+rng.IntN(0x0f)) // 2001::/16-200f::/16
			for i := 2; i < 8; i++ {
				b[i] = byte(rng.Uint32())
			}
			a = netip.AddrFrom16(b)
		} else {
			a = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(222)), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		}
		if !IsReserved(a) {
			out = append(out, a)
		}
	}
	return out
}

// BenchmarkLookup compares one database lookup in the bart table against
// walking the mmdb, with the test files and with the real ones.
func BenchmarkLookup(b *testing.B) {
	addrs := benchAddrs(1 << 16)
	run := func(b *testing.B, path string, kind Kind, mode LookupMode) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d, err := openGeoDB(path, kind, mode, &interner{})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		hits := 0
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if d.lookup(addrs[i&(len(addrs)-1)]) != nil {
				hits++
			}
			i++
		}
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MB")
		b.ReportMetric(float64(hits)/float64(i), "hit-ratio")
		runtime.KeepAlive(d)
	}
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		b.Run("test-asn/"+mode.String(), func(b *testing.B) {
			run(b, enrichtest.StandardASN(b, b.TempDir()), KindASN, mode)
		})
	}
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		b.Run("real-asn/"+mode.String(), func(b *testing.B) {
			asn, _ := realDatabases(b)
			run(b, asn, KindASN, mode)
		})
		b.Run("real-country/"+mode.String(), func(b *testing.B) {
			_, country := realDatabases(b)
			run(b, country, KindCountry, mode)
		})
	}
}

// BenchmarkGeoLookup compares what one address costs with the full-size
// databases, ASN and country: a walk of each mmdb file, a lookup in each
// database's own trie, and one lookup in the merged table (geoTable, what
// table mode uses), over a million random public addresses.
func BenchmarkGeoLookup(b *testing.B) {
	asnPath, countryPath := realDatabases(b)
	in := interner{}
	asn, err := openGeoDB(asnPath, KindASN, ModeTable, &in)
	if err != nil {
		b.Fatal(err)
	}
	country, err := openGeoDB(countryPath, KindCountry, ModeTable, &in)
	if err != nil {
		b.Fatal(err)
	}
	addrs := benchAddrs(1 << 20)
	b.Run("mmdb", func(b *testing.B) {
		asn, err := openGeoDB(asnPath, KindASN, ModeMMDB, &in)
		if err != nil {
			b.Fatal(err)
		}
		country, err := openGeoDB(countryPath, KindCountry, ModeMMDB, &in)
		if err != nil {
			b.Fatal(err)
		}
		benchEachDatabase(b, asn, country, addrs)
	})
	b.Run("separate-tries", func(b *testing.B) {
		benchEachDatabase(b, asn, country, addrs)
	})
	b.Run("merged", func(b *testing.B) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g := newGeoTable(asn, country, false)
		runtime.GC()
		runtime.ReadMemStats(&after)
		i, hits := 0, 0
		for b.Loop() {
			p := g.lookup(addrs[i&(len(addrs)-1)])
			if p.inASN {
				hits++
			}
			if p.inCC {
				hits++
			}
			i++
		}
		b.ReportMetric(float64(hits)/float64(2*i), "hit-ratio")
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MB")
		runtime.KeepAlive(g)
	})
}

// benchEachDatabase looks every address up in asn and then in country.
func benchEachDatabase(b *testing.B, asn, country *geoDB, addrs []netip.Addr) {
	i, hits := 0, 0
	for b.Loop() {
		a := addrs[i&(len(addrs)-1)]
		if asn.lookup(a) != nil {
			hits++
		}
		if country.lookup(a) != nil {
			hits++
		}
		i++
	}
	b.ReportMetric(float64(hits)/float64(2*i), "hit-ratio")
}
