package enrich

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
)

// geoTable answers the ASN and the country database with one prefix-table
// lookup per address instead of one per database: with full-size databases
// and addresses spread over the Internet every lookup walks cold memory,
// so two walks per address were most of the stage's cost.
//
// It holds the union of both databases' prefixes, each mapped to the pair
// of values the two databases give it. Longest-prefix match on the union
// finds, for each database, its own longest match: if p is the most
// specific union prefix holding an address and q the most specific prefix
// of one database holding it, q is in the union too, so p lies within q,
// and no prefix of that database lies between them (it would hold the
// address and be more specific than q). So p's pair, computed at build
// time as each database's longest match for p, is the pair for the
// address.
//
// IPv4 addresses of a large merged table go through a flat DIR-24-8 array
// instead of the trie: one memory access for most addresses (two below a
// /24) where a trie walk costs three or four, and with addresses from all
// over the Internet each of those is a cache miss.
type geoTable struct {
	// v4 is indexed by an address's top 24 bits: 0 for no data, a pair
	// index + 1, or v4Block | n for the n-th block of v4long, 256 entries
	// (same encoding, no blocks) for /24s holding longer prefixes. Empty
	// for small tables, which keep IPv4 in trie.
	v4     []uint32
	v4long []uint32
	trie   bart.Table[uint32] // pair index; IPv6, and IPv4 without v4
	pairs  []geoPair
	// asnAliases and ccAliases are the databases' aliases (geoDB.aliases).
	asnAliases, ccAliases [len(aliasRanges)]bool
}

const v4Block = 1 << 31

// flatV4Min is the number of IPv4 prefixes from which the 64 MiB flat
// array pays for itself; a full-size database has half a million or more.
const flatV4Min = 1 << 16

// geoPair is what both databases say about one prefix.
type geoPair struct {
	asn     uint32
	asName  string
	country string
	inASN   bool // the ASN database has the prefix
	inCC    bool // the country database has it
}

// newGeoTable merges the prefix tables of asn and country; either may be
// nil, not both. flatV4 asks for the flat IPv4 array whatever the size.
func newGeoTable(asn, country *geoDB, flatV4 bool) *geoTable {
	t := &geoTable{}
	if asn != nil {
		t.asnAliases = asn.aliases
	}
	if country != nil {
		t.ccAliases = country.aliases
	}
	// IPv4 prefixes wait here, compact, until the array is filled.
	type entry struct {
		addr uint32
		bits uint8
		pair uint32
	}
	var v4 []entry
	if flatV4 || size4(asn)+size4(country) >= flatV4Min {
		v4 = make([]entry, 0, size4(asn)+size4(country))
	}
	// Each distinct (ASN value, country value) combination is stored once.
	index := make(map[[2]uint32]uint32)
	add := func(p netip.Prefix) {
		key := [2]uint32{noValue, noValue}
		var pair geoPair
		if asn != nil {
			if i, ok := asn.table.LookupPrefix(p); ok {
				key[0] = i
				v := &asn.values[i]
				pair.asn, pair.asName, pair.inASN = v.asn, v.asName, true
			}
		}
		if country != nil {
			if i, ok := country.table.LookupPrefix(p); ok {
				key[1] = i
				pair.country, pair.inCC = country.values[i].country, true
			}
		}
		i, ok := index[key]
		if !ok {
			i = uint32(len(t.pairs))
			t.pairs = append(t.pairs, pair)
			index[key] = i
		}
		if p.Addr().Is4() && v4 != nil {
			v4 = append(v4, entry{binary.BigEndian.Uint32(p.Addr().AsSlice()), uint8(p.Bits()), i})
		} else {
			t.trie.Insert(p, i)
		}
	}
	for _, d := range []*geoDB{asn, country} {
		if d == nil {
			continue
		}
		for p := range d.table.All() {
			add(p)
		}
	}
	if v4 == nil {
		return t
	}
	// Shorter prefixes first, so that longer ones overwrite them, and no
	// prefix of /24 or shorter meets a block.
	slices.SortFunc(v4, func(a, b entry) int { return int(a.bits) - int(b.bits) })
	t.v4 = make([]uint32, 1<<24)
	// Size the blocks exactly: one per /24 holding longer prefixes.
	has := make([]uint64, 1<<24/64)
	blocks := 0
	for _, e := range v4 {
		if e.bits > 24 {
			n := e.addr >> 8
			if has[n/64]&(1<<(n%64)) == 0 {
				has[n/64] |= 1 << (n % 64)
				blocks++
			}
		}
	}
	t.v4long = make([]uint32, 0, blocks*256)
	for _, e := range v4 {
		if e.bits <= 24 {
			first := e.addr >> 8
			fill(t.v4[first:first+1<<(24-e.bits)], e.pair+1)
			continue
		}
		slot := &t.v4[e.addr>>8]
		if *slot&v4Block == 0 {
			n := uint32(len(t.v4long) / 256)
			for range 256 {
				t.v4long = append(t.v4long, *slot)
			}
			*slot = v4Block | n
		}
		first := (*slot&^v4Block)<<8 | e.addr&0xff
		fill(t.v4long[first:first+1<<(32-e.bits)], e.pair+1)
	}
	return t
}

func size4(d *geoDB) int {
	if d == nil {
		return 0
	}
	return d.table.Size4()
}

func fill(s []uint32, v uint32) {
	for i := range s {
		s[i] = v
	}
}

// lookup returns what the databases say about a; the zero pair when
// neither knows it.
func (t *geoTable) lookup(a netip.Addr) geoPair {
	if a.Is6() {
		if r, v4 := embeddedIPv4(a); r >= 0 && (t.asnAliases[r] || t.ccAliases[r]) {
			return t.lookupAliased(a, v4, r)
		}
	}
	if p := t.find(a); p != nil {
		return *p
	}
	return geoPair{}
}

// lookupAliased answers an address of alias range r from the IPv4 data
// of the databases that alias r and from the IPv6 data of the others.
func (t *geoTable) lookupAliased(a, v4 netip.Addr, r int) geoPair {
	var p6, p4, out geoPair
	if p := t.find(a); p != nil {
		p6 = *p
	}
	if p := t.find(v4); p != nil {
		p4 = *p
	}
	from := &p6
	if t.asnAliases[r] {
		from = &p4
	}
	out.asn, out.asName, out.inASN = from.asn, from.asName, from.inASN
	from = &p6
	if t.ccAliases[r] {
		from = &p4
	}
	out.country, out.inCC = from.country, from.inCC
	return out
}

func (t *geoTable) find(a netip.Addr) *geoPair {
	if a.Is4() && t.v4 != nil {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		e := t.v4[x>>8]
		if e&v4Block != 0 {
			e = t.v4long[(e&^v4Block)<<8|x&0xff]
		}
		if e == 0 {
			return nil
		}
		return &t.pairs[e-1]
	}
	i, ok := t.trie.Lookup(a)
	if !ok {
		return nil
	}
	return &t.pairs[i]
}

// embeddedIPv4 returns the index in aliasRanges of the range holding a and
// the IPv4 address embedded there, or -1.
func embeddedIPv4(a netip.Addr) (int, netip.Addr) {
	b := a.As16()
	switch {
	case b[0] == 0x20 && b[1] == 0x02:
		return 0, netip.AddrFrom4([4]byte(b[2:6]))
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0:
		return 1, netip.AddrFrom4([4]byte(b[4:8]))
	}
	return -1, netip.Addr{}
}
