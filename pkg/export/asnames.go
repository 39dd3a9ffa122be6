package export

import (
	"fmt"
	"os"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// LoadASNames reads the AS number to name table of a GeoLite2-ASN-shaped
// mmdb (autonomous_system_number, autonomous_system_organization), walking
// every network once, so that names are found by number even for records
// that carry no addresses (pmacct's as_src/as_dst).
func LoadASNames(path string) (map[uint32]string, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("export: AS names: %w", err)
	}
	defer db.Close()
	var rec struct {
		Number uint32 `maxminddb:"autonomous_system_number"`
		Org    string `maxminddb:"autonomous_system_organization"`
	}
	names := make(map[uint32]string)
	for res := range db.Networks() {
		rec.Number, rec.Org = 0, ""
		if err := res.Decode(&rec); err != nil {
			return nil, fmt.Errorf("export: AS names: %s: %w", path, err)
		}
		if rec.Number == 0 || rec.Org == "" {
			continue
		}
		if _, ok := names[rec.Number]; !ok {
			names[rec.Number] = strings.ToValidUTF8(rec.Org, "\uFFFD")
		}
	}
	return names, nil
}

// DefaultASNamesPaths is where flowexport looks for AS names when no
// database is named: the free GeoLite2-ASN-shaped file that
// scripts/dev/fetch-geo-db.sh builds (relative to the working directory,
// so a checkout finds it), then where packages and deployments put it.
func DefaultASNamesPaths() []string {
	return []string{"scripts/.geo/asn.mmdb", "/var/lib/flowpipe/asn.mmdb", "/usr/share/flowpipe/asn.mmdb"}
}

// FindASNames returns the first of paths that is a regular file.
func FindASNames(paths []string) (string, bool) {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	return "", false
}
