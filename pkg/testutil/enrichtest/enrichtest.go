// Package enrichtest builds small MaxMind DB files for tests of the
// enricher and the tools using it, with mmdbwriter.
package enrichtest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Entry is one network of a test database.
type Entry struct {
	Prefix string
	Record mmdbtype.Map
}

// ASN is a GeoLite2-ASN record.
func ASN(asn uint32, org string) mmdbtype.Map {
	return mmdbtype.Map{
		"autonomous_system_number":       mmdbtype.Uint32(asn),
		"autonomous_system_organization": mmdbtype.String(org),
	}
}

// CountryISO is a GeoLite2-Country record.
func CountryISO(cc string) mmdbtype.Map {
	return mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU")},
		"country": mmdbtype.Map{
			"iso_code": mmdbtype.String(cc),
			"names":    mmdbtype.Map{"en": mmdbtype.String("Country " + cc)},
		},
	}
}

// CountryCode is a DB-IP / ip-location-db country record.
func CountryCode(cc string) mmdbtype.Map {
	return mmdbtype.Map{"country_code": mmdbtype.String(cc)}
}

// WriteMMDB writes entries as an IPv6 database (IPv4 aliased, reserved
// ranges allowed so that documentation prefixes can be used) to dir/name.
func WriteMMDB(tb testing.TB, dir, name, dbType string, entries []Entry) string {
	tb.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true,
		RecordSize:              28,
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		_, n, err := net.ParseCIDR(e.Prefix)
		if err != nil {
			tb.Fatal(err)
		}
		if err := tree.Insert(n, e.Record); err != nil {
			tb.Fatalf("insert %s: %v", e.Prefix, err)
		}
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	// Rename so that a watcher never sees a half-written file.
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Well-known addresses of the standard fixtures.
const (
	AddrAS64500 = "192.0.2.10"    // AS64500 EXAMPLE-ONE, NL
	AddrAS64501 = "198.51.100.20" // AS64501 EXAMPLE-TWO, DE
	AddrAS64502 = "2001:db8::1"   // AS64502 EXAMPLE-SIX, FR
	AddrUnknown = "203.0.113.5"   // in no database
)

// StandardASN writes the standard GeoLite2-ASN-shaped fixture.
func StandardASN(tb testing.TB, dir string) string {
	return WriteMMDB(tb, dir, "asn.mmdb", "GeoLite2-ASN", []Entry{
		{"192.0.2.0/24", ASN(64500, "EXAMPLE-ONE")},
		{"198.51.100.0/24", ASN(64501, "EXAMPLE-TWO")},
		{"2001:db8::/32", ASN(64502, "EXAMPLE-SIX")},
	})
}

// StandardCountry writes the standard GeoLite2-Country-shaped fixture.
func StandardCountry(tb testing.TB, dir string) string {
	return WriteMMDB(tb, dir, "country.mmdb", "GeoLite2-Country", []Entry{
		{"192.0.2.0/24", CountryISO("NL")},
		{"198.51.100.0/24", CountryISO("DE")},
		{"2001:db8::/32", CountryISO("FR")},
	})
}
