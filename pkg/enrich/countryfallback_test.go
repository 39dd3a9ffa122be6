package enrich

import (
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

// geoLite2Record is a GeoLite2-Country record as MaxMind writes it:
// country and registered_country with geoname ids and names, plus
// represented_country or traits where GeoLite2 has them. An empty
// country leaves the key out, as GeoLite2 does for networks it can only
// place by registration (anycast, satellite, some mobile operators).
func geoLite2Record(country, registered string, anycast bool) mmdbtype.Map {
	place := func(cc string, id uint32) mmdbtype.Map {
		return mmdbtype.Map{
			"geoname_id": mmdbtype.Uint32(id),
			"iso_code":   mmdbtype.String(cc),
			"names":      mmdbtype.Map{"en": mmdbtype.String("Country " + cc)},
		}
	}
	rec := mmdbtype.Map{
		"continent":          mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(6255148)},
		"registered_country": place(registered, 2750405),
	}
	if country != "" {
		rec["country"] = place(country, 2921044)
	}
	if anycast {
		rec["traits"] = mmdbtype.Map{"is_anycast": mmdbtype.Bool(true)}
	}
	return rec
}

// TestCountryFallback checks that, by default, only country.iso_code
// gives a country (a record with only registered_country gives none), and
// that FallbackRegistered opts in to registered_country, in both lookup
// modes.
func TestCountryFallback(t *testing.T) {
	dir := t.TempDir()
	path := enrichtest.WriteMMDB(t, dir, "GeoLite2-Country.mmdb", "GeoLite2-Country", []enrichtest.Entry{
		{Prefix: "192.0.2.0/24", Record: geoLite2Record("NL", "NL", false)},
		{Prefix: "198.51.100.0/24", Record: geoLite2Record("DE", "US", false)}, // located apart from its registration
		{Prefix: "203.0.113.0/24", Record: geoLite2Record("", "US", true)},     // anycast: registered only
		{Prefix: "2001:db8::/32", Record: geoLite2Record("", "FR", false)},
	})
	cases := []struct {
		addr                string
		none, registeredWay string
	}{
		{"192.0.2.1", "NL", "NL"},
		{"198.51.100.1", "DE", "DE"}, // country wins over registered_country either way
		{"203.0.113.1", "", "US"},
		{"2001:db8::1", "", "FR"},
	}
	for _, mode := range []LookupMode{ModeTable, ModeMMDB} {
		for _, fb := range []CountryFallback{FallbackNone, FallbackRegistered} {
			e, err := New(Config{CountryPath: path, Mode: mode, CountryFallback: fb})
			if err != nil {
				t.Fatal(err)
			}
			var st Stats
			for _, c := range cases {
				m := &flowpb.FlowMessage{SrcAddr: addr(c.addr), DstAddr: addr(c.addr)}
				e.Enrich(m, &st)
				want := c.none
				if fb == FallbackRegistered {
					want = c.registeredWay
				}
				if m.SrcCountry != want || m.DstCountry != want {
					t.Errorf("%s, fallback %s: %s -> %q/%q, want %q", mode, fb, c.addr, m.SrcCountry, m.DstCountry, want)
				}
			}
			hits, misses := st.Lookups[DatabaseCountry][ResultHit], st.Lookups[DatabaseCountry][ResultMiss]
			wantHits := uint64(4)
			if fb == FallbackRegistered {
				wantHits = 8
			}
			if hits != wantHits || hits+misses != 8 {
				t.Errorf("%s, fallback %s: %d hits, %d misses; want %d hits of 8", mode, fb, hits, misses, wantHits)
			}
		}
	}
}

func TestParseCountryFallback(t *testing.T) {
	for in, want := range map[string]CountryFallback{"none": FallbackNone, "registered": FallbackRegistered, "Registered": FallbackRegistered} {
		if got, err := ParseCountryFallback(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	if _, err := ParseCountryFallback("represented"); err == nil {
		t.Error("represented accepted")
	}
}
