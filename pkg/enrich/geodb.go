package enrich

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gaissmai/bart"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Kind is what a database is asked for.
type Kind int

const (
	KindASN     Kind = iota // AS number and organisation
	KindCountry             // country ISO code
)

func (k Kind) String() string {
	if k == KindASN {
		return "asn"
	}
	return "country"
}

// LookupMode says how a database is searched.
type LookupMode int

const (
	// ModeTable loads every network of the file into an in-memory prefix
	// table at load time: faster lookups, more memory.
	ModeTable LookupMode = iota
	// ModeMMDB walks the mmdb search tree for each lookup.
	ModeMMDB
)

// ParseLookupMode parses "table" or "mmdb".
func ParseLookupMode(s string) (LookupMode, error) {
	switch strings.ToLower(s) {
	case "table":
		return ModeTable, nil
	case "mmdb":
		return ModeMMDB, nil
	}
	return 0, fmt.Errorf("enrich: lookup mode %q: want table or mmdb", s)
}

func (m LookupMode) String() string {
	if m == ModeMMDB {
		return "mmdb"
	}
	return "table"
}

// CountryFallback says where a country comes from when a GeoLite2-shaped
// record has no country of its own.
type CountryFallback int

const (
	// FallbackNone uses country.iso_code only: where the address is, as a
	// geolocation user expects. A record without it gives no country.
	FallbackNone CountryFallback = iota
	// FallbackRegistered uses registered_country.iso_code (the country the
	// network is registered in, often that of an anycast or mobile
	// operator's headquarters) when country is absent.
	FallbackRegistered
)

// ParseCountryFallback parses "none" or "registered".
func ParseCountryFallback(s string) (CountryFallback, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return FallbackNone, nil
	case "registered":
		return FallbackRegistered, nil
	}
	return 0, fmt.Errorf("enrich: country fallback %q: want none or registered", s)
}

func (f CountryFallback) String() string {
	if f == FallbackRegistered {
		return "registered"
	}
	return "none"
}

// Shape is the record layout of a database file.
type Shape int

const (
	ShapeUnknown Shape = iota
	// ShapeASN: autonomous_system_number, autonomous_system_organization
	// (GeoLite2-ASN, GeoIP2-ISP, DB-IP ASN, ip-location-db ASN).
	ShapeASN
	// ShapeCountryISO: country.iso_code, and registered_country.iso_code
	// as a fallback only with FallbackRegistered (GeoLite2-Country/City,
	// GeoIP2, DB-IP Lite).
	ShapeCountryISO
	// ShapeCountryCode: a top-level country_code (ip-location-db).
	ShapeCountryCode
)

func (s Shape) String() string {
	switch s {
	case ShapeASN:
		return "autonomous_system_number"
	case ShapeCountryISO:
		return "country.iso_code"
	case ShapeCountryCode:
		return "country_code"
	}
	return "unknown"
}

// mmdbRecord holds every field of every supported shape; absent fields stay
// zero. It is decoded once per distinct data record at load, never per flow.
type mmdbRecord struct {
	ASN     uint32 `maxminddb:"autonomous_system_number"`
	ASOrg   string `maxminddb:"autonomous_system_organization"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Registered struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	CountryCode string `maxminddb:"country_code"`
}

// geoValue is the interned result of one data record.
type geoValue struct {
	asn     uint32
	asName  string
	country string
}

// DatabaseInfo describes a loaded database.
type DatabaseInfo struct {
	Kind     Kind
	Path     string
	Type     string // the file's database_type metadata
	Shape    Shape
	Build    time.Time
	Networks int // networks with data (table mode: prefixes in the table)
}

// geoDB is one loaded database file, immutable and safe for concurrent use.
type geoDB struct {
	info   DatabaseInfo
	values []geoValue
	stamp  fileStamp
	// aliases says, for 6to4 and Teredo (see aliasRanges), whether the
	// file sends their lookups to its IPv4 data, as MaxMind's writers do
	// by default: its networks then leave those ranges out.
	aliases [len(aliasRanges)]bool

	// ModeTable
	table *bart.Table[uint32]
	// ModeMMDB: the reader holds the file's bytes on the Go heap (not a
	// memory map), so an old reader dropped by a reload is simply garbage
	// collected once the last lookup using it returns, and a file rewritten
	// in place can never fault a lookup.
	reader   *maxminddb.Reader
	byOffset map[uintptr]uint32
}

// lookup returns the value for a, or nil.
func (d *geoDB) lookup(a netip.Addr) *geoValue {
	if d.table != nil {
		i, ok := d.table.Lookup(a)
		if !ok {
			return nil
		}
		return &d.values[i]
	}
	r := d.reader.Lookup(a)
	if !r.Found() {
		return nil
	}
	i, ok := d.byOffset[r.Offset()]
	if !ok {
		return nil
	}
	return &d.values[i]
}

// openGeoDB loads path as a database of kind, detecting its shape, with
// no country fallback.
func openGeoDB(path string, kind Kind, mode LookupMode, in *interner) (*geoDB, error) {
	return openGeoDBWith(path, kind, mode, FallbackNone, in)
}

// openGeoDBWith is openGeoDB with the country fallback.
func openGeoDBWith(path string, kind Kind, mode LookupMode, fallback CountryFallback, in *interner) (*geoDB, error) {
	stamp, err := statFile(path)
	if err != nil {
		return nil, fmt.Errorf("enrich: %s database: %w", kind, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("enrich: %s database: %w", kind, err)
	}
	reader, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("enrich: %s database %s: %w", kind, path, err)
	}
	md := reader.Metadata
	shape, err := detectShape(reader, kind)
	if err != nil {
		return nil, fmt.Errorf("enrich: %s database %s (type %q): %w", kind, path, md.DatabaseType, err)
	}
	d := &geoDB{
		info: DatabaseInfo{
			Kind: kind, Path: path, Type: md.DatabaseType, Shape: shape,
			Build: time.Unix(int64(md.BuildEpoch), 0),
		},
		stamp:    stamp,
		byOffset: make(map[uintptr]uint32),
	}
	// Decode each distinct data record once: a few hundred thousand at
	// most, shared by millions of networks.
	var bad error
	valueOf := func(r maxminddb.Result) (uint32, bool) {
		off := r.Offset()
		if i, ok := d.byOffset[off]; ok {
			return i, i != noValue
		}
		var rec mmdbRecord
		if err := r.Decode(&rec); err != nil {
			bad = err
			d.byOffset[off] = noValue
			return 0, false
		}
		v, ok := valueFrom(&rec, shape, fallback, in)
		if !ok {
			d.byOffset[off] = noValue
			return 0, false
		}
		i := uint32(len(d.values))
		d.values = append(d.values, v)
		d.byOffset[off] = i
		return i, true
	}
	if mode == ModeTable {
		d.table = new(bart.Table[uint32])
	}
	for r := range reader.Networks() {
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("enrich: %s database %s: %w", kind, path, err)
		}
		i, ok := valueOf(r)
		if !ok {
			continue
		}
		d.info.Networks++
		if d.table != nil {
			d.table.Insert(r.Prefix(), i)
		}
	}
	if d.info.Networks == 0 && bad != nil {
		return nil, fmt.Errorf("enrich: %s database %s: %w", kind, path, bad)
	}
	for i, r := range aliasRanges {
		d.aliases[i] = aliased(reader, r)
	}
	if mode == ModeTable {
		d.byOffset = nil
		_ = reader.Close()
	} else {
		for off, i := range d.byOffset {
			if i == noValue {
				delete(d.byOffset, off)
			}
		}
		d.reader = reader
	}
	return d, nil
}

const noValue = ^uint32(0)

// aliasRanges are the IPv6 ranges that embed an IPv4 address and that
// MaxMind DB files may alias to their IPv4 data.
var aliasRanges = [...]netip.Prefix{
	netip.MustParsePrefix("2002::/16"), // 6to4: IPv4 in bits 16-47
	netip.MustParsePrefix("2001::/32"), // Teredo: server IPv4 in bits 32-63
}

// aliased reports whether the file aliases range r to its IPv4 data: its
// networks within r then appear only when aliases are asked for.
func aliased(r *maxminddb.Reader, within netip.Prefix) bool {
	for range r.NetworksWithin(within) {
		return false // data of its own
	}
	for range r.NetworksWithin(within, maxminddb.IncludeAliasedNetworks()) {
		return true
	}
	return false
}

func valueFrom(rec *mmdbRecord, shape Shape, fallback CountryFallback, in *interner) (geoValue, bool) {
	switch shape {
	case ShapeASN:
		if rec.ASN == 0 {
			return geoValue{}, false
		}
		return geoValue{asn: rec.ASN, asName: in.intern(rec.ASOrg)}, true
	case ShapeCountryISO:
		c := rec.Country.ISOCode
		if c == "" && fallback == FallbackRegistered {
			c = rec.Registered.ISOCode
		}
		if c == "" {
			return geoValue{}, false
		}
		return geoValue{country: in.intern(c)}, true
	case ShapeCountryCode:
		if rec.CountryCode == "" {
			return geoValue{}, false
		}
		return geoValue{country: in.intern(rec.CountryCode)}, true
	}
	return geoValue{}, false
}

// maxProbes bounds how many records are read to detect a file's shape.
const maxProbes = 64

// detectShape reads the first records of the file and picks the shape that
// their fields show, for the kind asked. The metadata's database_type only
// breaks ties: files in the wild (ip-location-db's "country ipvAll") do not
// follow MaxMind's type names.
func detectShape(r *maxminddb.Reader, kind Kind) (Shape, error) {
	var asn, iso, code, seen int
	for res := range r.Networks() {
		if seen == maxProbes {
			break
		}
		seen++
		var rec map[string]any
		if err := res.Decode(&rec); err != nil {
			continue
		}
		if _, ok := rec["autonomous_system_number"]; ok {
			asn++
		}
		if _, ok := rec["country_code"]; ok {
			code++
		}
		for _, k := range []string{"country", "registered_country"} {
			if m, ok := rec[k].(map[string]any); ok {
				if _, ok := m["iso_code"]; ok {
					iso++
					break
				}
			}
		}
	}
	switch kind {
	case KindASN:
		if asn > 0 {
			return ShapeASN, nil
		}
		if iso > 0 || code > 0 {
			return ShapeUnknown, errors.New("holds country records, not AS numbers (give it to the country database option)")
		}
	case KindCountry:
		switch {
		case iso > 0 && iso >= code:
			return ShapeCountryISO, nil
		case code > 0:
			return ShapeCountryCode, nil
		case asn > 0:
			return ShapeUnknown, errors.New("holds AS records, not countries (give it to the ASN database option)")
		}
	}
	if seen == 0 {
		return ShapeUnknown, errors.New("holds no networks")
	}
	return ShapeUnknown, errors.New("unknown record shape: want autonomous_system_number (GeoLite2-ASN), country.iso_code (GeoLite2-Country/City, DB-IP) or country_code (ip-location-db)")
}

// interner makes equal strings share one copy across a load.
type interner map[string]string

func (in *interner) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := (*in)[s]; ok {
		return v
	}
	s = strings.Clone(s)
	(*in)[s] = s
	return s
}

// fileStamp is what polling compares to notice a changed file.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	if fi.IsDir() {
		return fileStamp{}, fmt.Errorf("%s is a directory", path)
	}
	return fileStamp{mtime: fi.ModTime(), size: fi.Size()}, nil
}
