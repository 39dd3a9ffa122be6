package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

// TestCountryFallbackFlag runs flowenrich on JSON records with a
// GeoLite2-shaped country database in which one network has only a
// registered_country: without --country-fallback it gets no country, with
// --country-fallback registered it gets that one; a bad value is a usage
// error.
func TestCountryFallbackFlag(t *testing.T) {
	dir := t.TempDir()
	rec := func(country, registered string) mmdbtype.Map {
		m := mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String(registered)}}
		if country != "" {
			m["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(country)}
		}
		return m
	}
	db := enrichtest.WriteMMDB(t, dir, "GeoLite2-Country.mmdb", "GeoLite2-Country", []enrichtest.Entry{
		{Prefix: "192.0.2.0/24", Record: rec("NL", "NL")},
		{Prefix: "198.51.100.0/24", Record: rec("", "US")},
	})
	in := `{"type":"IPFIX","src_addr":"192.0.2.1","dst_addr":"198.51.100.1","bytes":1}` + "\n"
	for _, tc := range []struct {
		flag     []string
		src, dst string
	}{
		{nil, "NL", ""},
		{[]string{"--country-fallback", "none"}, "NL", ""},
		{[]string{"--country-fallback", "registered"}, "NL", "US"},
	} {
		args := append([]string{"flowenrich", "--country-db", db, "--format", "json"}, tc.flag...)
		code, out, stderr := runApp(t, args, strings.NewReader(in))
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.flag, code, stderr)
		}
		var got map[string]any
		if err := json.Unmarshal(bytes.TrimSpace(out), &got); err != nil {
			t.Fatalf("%v: %v: %s", tc.flag, err, out)
		}
		src, _ := got["src_country"].(string)
		dst, _ := got["dst_country"].(string)
		if src != tc.src || dst != tc.dst {
			t.Errorf("%v: src_country %q dst_country %q, want %q %q\n%s", tc.flag, src, dst, tc.src, tc.dst, out)
		}
	}
	if code, _, stderr := runApp(t, []string{"flowenrich", "--country-db", db, "--country-fallback", "represented"}, nil); code != 2 || !strings.Contains(stderr, "--country-fallback") {
		t.Errorf("bad value: exit %d: %s", code, stderr)
	}
}
