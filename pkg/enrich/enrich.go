// Package enrich adds AS numbers, AS names, countries, a CIDR context
// (named networks with labels, flow direction) and the subscriber of each
// side (RADIUS accounting sessions, see pkg/subscriber) to flow records.
//
// Databases are MaxMind DB files (GeoLite2-ASN/Country/City, DB-IP,
// ip-location-db), read with maxminddb-golang and, by default, loaded into
// in-memory prefix tables (bart) for lookups without allocation. The CIDR
// context comes from a YAML file. Everything loaded is immutable and held
// behind one atomic pointer: Reload builds a new set off the hot path and
// swaps it in, so records keep flowing; a failed reload keeps the old set.
package enrich

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// Config says which files to load and how to apply them.
type Config struct {
	ASNPath      string // ASN database (mmdb); empty: no AS enrichment
	CountryPath  string // country database (mmdb); empty: no countries
	NetworksPath string // CIDR context (YAML); empty: no context, no direction
	Mode         LookupMode
	// ASNOverride makes the database's AS win over an AS the exporter set.
	// By default only missing (zero) AS numbers are filled.
	ASNOverride bool
	// CountryFallback says whether a GeoLite2 record without a country
	// takes its registered_country (default: no).
	CountryFallback CountryFallback
	// Sessions, if set, gives each side the user, session id and calling
	// station of the accounting session that held its address at the
	// flow's start (src_user ... dst_calling_station_id), and takes the
	// NAT port-block events of the stream.
	Sessions *subscriber.Table
}

// Database names, as used in Stats and metric labels.
const (
	DatabaseASN = iota
	DatabaseCountry
	DatabaseNetworks
	numDatabases
)

// DatabaseNames are the label values of the databases, by index.
var DatabaseNames = [numDatabases]string{"asn", "country", "networks"}

// Lookup results, as used in Stats and metric labels.
const (
	ResultHit = iota
	ResultMiss
	ResultSkipped // no address, or private/reserved space
	numResults
)

// ResultNames are the label values of the results, by index.
var ResultNames = [numResults]string{"hit", "miss", "skipped"}

// Stats counts lookups. It is owned by one goroutine and plain (not
// atomic): the caller adds it to its metrics every so often and resets it.
type Stats struct {
	Lookups [numDatabases][numResults]uint64
	Records uint64 // records enriched
	Written uint64 // records written out (Stream only)
	// Subscribers counts the sides of records by how they were
	// attributed (subscriber.ViaNone, ViaSession, ViaNAT), with Sessions.
	Subscribers [numSides][subscriber.NumVia]uint64
}

// Reset zeroes s.
func (s *Stats) Reset() { *s = Stats{} }

// state is one loaded set of databases, never modified once published.
type state struct {
	asn, country *geoDB
	geo          *geoTable // table mode: both databases in one table
	nets         *Networks
	netsStamp    fileStamp
}

// Enricher enriches records with the currently loaded state. Enrich is
// safe for concurrent use; Reload serialises itself.
type Enricher struct {
	cfg      Config
	cur      atomic.Pointer[state]
	reloadMu sync.Mutex

	pollMu sync.Mutex
	seen   map[string]fileStamp // stamps at the previous Changed call
}

// New loads every configured file; any failure is returned and nothing is
// kept.
func New(cfg Config) (*Enricher, error) {
	if cfg.ASNPath == "" && cfg.CountryPath == "" && cfg.NetworksPath == "" && cfg.Sessions == nil {
		return nil, errors.New("enrich: nothing to do: give an ASN database, a country database, a networks file or sessions")
	}
	e := &Enricher{cfg: cfg}
	s, _, err := e.load(nil, true)
	if err != nil {
		return nil, err
	}
	e.cur.Store(s)
	return e, nil
}

// Databases describes the loaded databases (ASN first, then country).
func (e *Enricher) Databases() []DatabaseInfo {
	s := e.cur.Load()
	var out []DatabaseInfo
	for _, d := range []*geoDB{s.asn, s.country} {
		if d != nil {
			out = append(out, d.info)
		}
	}
	return out
}

// Networks returns the loaded CIDR context, or nil.
func (e *Enricher) Networks() *Networks { return e.cur.Load().nets }

// Changed reports whether a configured file's size or modification time
// differs from the loaded one's and is the same as at the previous call:
// called at every poll, it lets a file being written settle for one
// interval instead of reading it half-done (a truncated file can be valid
// YAML). A file that cannot be read counts as changed once it stays so, so
// that the reload reports why.
func (e *Enricher) Changed() bool {
	e.pollMu.Lock()
	defer e.pollMu.Unlock()
	s := e.cur.Load()
	if e.seen == nil {
		e.seen = make(map[string]fileStamp)
	}
	changed := false
	check := func(path string, loaded fileStamp) {
		if path == "" {
			return
		}
		st, err := statFile(path)
		if err != nil {
			st = fileStamp{size: -1}
		}
		prev, ok := e.seen[path]
		e.seen[path] = st
		if st != loaded && ok && prev == st {
			changed = true
		}
	}
	if s.asn != nil {
		check(e.cfg.ASNPath, s.asn.stamp)
	}
	if s.country != nil {
		check(e.cfg.CountryPath, s.country.stamp)
	}
	if s.nets != nil {
		check(e.cfg.NetworksPath, s.netsStamp)
	}
	return changed
}

// Reload reloads the files that changed (all of them when force is set)
// and swaps the new set in. On error the old set stays in use. It returns
// which files were reloaded.
func (e *Enricher) Reload(force bool) (reloaded []string, err error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	s, reloaded, err := e.load(e.cur.Load(), force)
	if err != nil {
		return nil, err
	}
	if len(reloaded) > 0 {
		e.cur.Store(s)
	}
	return reloaded, nil
}

// load builds a state, reusing the parts of old whose files did not change.
func (e *Enricher) load(old *state, force bool) (*state, []string, error) {
	s := &state{}
	var reloaded []string
	in := interner{}
	unchanged := func(path string, loaded fileStamp) bool {
		if force || old == nil {
			return false
		}
		st, err := statFile(path)
		return err == nil && st == loaded
	}
	// In table mode the databases live on only in the merged table (see
	// geoTable), so a change to either file reloads both.
	table := e.cfg.Mode == ModeTable
	keepGeo := old != nil
	if p := e.cfg.ASNPath; p != "" && keepGeo {
		keepGeo = unchanged(p, old.asn.stamp)
	}
	if p := e.cfg.CountryPath; p != "" && keepGeo {
		keepGeo = unchanged(p, old.country.stamp)
	}
	var err error
	if p := e.cfg.ASNPath; p != "" {
		if old != nil && unchanged(p, old.asn.stamp) && (!table || keepGeo) {
			s.asn = old.asn
		} else if s.asn, err = openGeoDB(p, KindASN, e.cfg.Mode, &in); err != nil {
			return nil, nil, err
		} else {
			reloaded = append(reloaded, p)
		}
	}
	if p := e.cfg.CountryPath; p != "" {
		if old != nil && unchanged(p, old.country.stamp) && (!table || keepGeo) {
			s.country = old.country
		} else if s.country, err = openGeoDBWith(p, KindCountry, e.cfg.Mode, e.cfg.CountryFallback, &in); err != nil {
			return nil, nil, err
		} else {
			reloaded = append(reloaded, p)
		}
	}
	if table && (s.asn != nil || s.country != nil) {
		if keepGeo {
			s.geo = old.geo
		} else {
			s.geo = newGeoTable(s.asn, s.country, false)
			// Each database's own trie was only needed to build the
			// merged table.
			for _, d := range []*geoDB{s.asn, s.country} {
				if d != nil {
					d.table = nil
				}
			}
		}
	}
	if p := e.cfg.NetworksPath; p != "" {
		if old != nil && unchanged(p, old.netsStamp) {
			s.nets, s.netsStamp = old.nets, old.netsStamp
		} else {
			st, err := statFile(p)
			if err != nil {
				return nil, nil, fmt.Errorf("enrich: networks file: %w", err)
			}
			if s.nets, err = LoadNetworks(p); err != nil {
				return nil, nil, err
			}
			s.netsStamp = st
			reloaded = append(reloaded, p)
		}
	}
	return s, reloaded, nil
}

// Enrich sets m's AS numbers and names, countries and CIDR context from
// the loaded state and counts the lookups in st. It does not allocate: the
// strings and label maps it sets are shared, read-only values (the caller
// must not modify m's label maps, and must drop them before reusing m for
// decoding, as ResetVT does).
func (e *Enricher) Enrich(m *flowpb.FlowMessage, st *Stats) {
	e.enrichWith(e.cur.Load(), m, st)
}

// enrichWith enriches m from one snapshot of the loaded data, so that a
// caller which looked at the snapshot first sees what enrichment used. It
// returns the CIDR context found for each side.
func (e *Enricher) enrichWith(s *state, m *flowpb.FlowMessage, st *Stats) (sn, dn *netEntry) {
	st.Records++
	if e.cfg.Sessions != nil {
		// The lookups below hide the wait for the sessions (see
		// subscriber.Table.PrefetchSlot).
		e.cfg.Sessions.PrefetchSession(m.SrcAddr)
		e.cfg.Sessions.PrefetchSession(m.DstAddr)
	}
	src, srcOK := addrFrom(m.SrcAddr)
	dst, dstOK := addrFrom(m.DstAddr)
	if s.nets != nil {
		sn = s.netLookup(src, srcOK, st)
		dn = s.netLookup(dst, dstOK, st)
		setNet(sn, &m.SrcNetName, &m.SrcNetLabels, &m.SrcNetPrefix)
		setNet(dn, &m.DstNetName, &m.DstNetLabels, &m.DstNetPrefix)
		m.FlowDirection = direction(srcOK && dstOK, sn != nil, dn != nil)
	}
	s.side(src, srcOK, sn, &m.SrcAs, &m.SrcAsName, &m.SrcCountry, e.cfg.ASNOverride, st)
	s.side(dst, dstOK, dn, &m.DstAs, &m.DstAsName, &m.DstCountry, e.cfg.ASNOverride, st)
	if e.cfg.Sessions != nil {
		e.attribute(m, src, srcOK, dst, dstOK, st)
	}
	return sn, dn
}

func (s *state) netLookup(a netip.Addr, ok bool, st *Stats) *netEntry {
	if !ok {
		st.Lookups[DatabaseNetworks][ResultSkipped]++
		return nil
	}
	e := s.nets.lookup(a)
	if e == nil {
		st.Lookups[DatabaseNetworks][ResultMiss]++
	} else {
		st.Lookups[DatabaseNetworks][ResultHit]++
	}
	return e
}

// setNet writes the CIDR context of one side. The networks file owns these
// fields: an address outside every network clears them.
func setNet(e *netEntry, name *string, labels *map[string]string, prefix *string) {
	if e == nil {
		*name, *labels, *prefix = "", nil, ""
		return
	}
	*name, *labels, *prefix = e.net.Name, e.net.Labels, e.prefix
}

func direction(known, srcIn, dstIn bool) flowpb.FlowMessage_FlowDirection {
	switch {
	case !known:
		return flowpb.FlowMessage_DIRECTION_UNKNOWN
	case srcIn && dstIn:
		return flowpb.FlowMessage_INTERNAL
	case srcIn:
		return flowpb.FlowMessage_EGRESS
	case dstIn:
		return flowpb.FlowMessage_INGRESS
	}
	return flowpb.FlowMessage_EXTERNAL
}

// side enriches one direction. A network's AS or country beats the
// databases; the databases are not asked about private or reserved space.
// The AS name is set only when it belongs to the AS the record ends up
// with, so a kept exporter AS never gets another AS's name.
func (s *state) side(a netip.Addr, ok bool, ne *netEntry, as *uint32, asName, country *string, override bool, st *Stats) {
	var asn uint32
	var name, cc string
	if ne != nil {
		asn, name, cc = ne.net.ASN, ne.net.ASName, ne.net.Country
	}
	reserved := ok && IsReserved(a)
	wantASN := asn == 0 && s.asn != nil
	wantCC := cc == "" && s.country != nil
	if !wantASN && !wantCC {
		// The networks file answered both, or no database is loaded.
	} else if !ok || reserved {
		if wantASN {
			st.Lookups[DatabaseASN][ResultSkipped]++
		}
		if wantCC {
			st.Lookups[DatabaseCountry][ResultSkipped]++
		}
	} else {
		p := s.geoLookup(a, wantASN, wantCC)
		if wantASN {
			if p.inASN {
				asn, name = p.asn, p.asName
				st.Lookups[DatabaseASN][ResultHit]++
			} else {
				st.Lookups[DatabaseASN][ResultMiss]++
			}
		}
		if wantCC {
			if p.inCC {
				cc = p.country
				st.Lookups[DatabaseCountry][ResultHit]++
			} else {
				st.Lookups[DatabaseCountry][ResultMiss]++
			}
		}
	}
	if asn != 0 {
		if *as == 0 || override {
			*as = asn
		}
		if *as == asn && name != "" {
			*asName = name
		}
	}
	if cc != "" {
		*country = cc
	}
}

// geoLookup asks the databases about a: the merged table in table mode,
// else each file that is wanted.
func (s *state) geoLookup(a netip.Addr, wantASN, wantCC bool) geoPair {
	if s.geo != nil {
		return s.geo.lookup(a)
	}
	var p geoPair
	if wantASN {
		if v := s.asn.lookup(a); v != nil {
			p.asn, p.asName, p.inASN = v.asn, v.asName, true
		}
	}
	if wantCC {
		if v := s.country.lookup(a); v != nil {
			p.country, p.inCC = v.country, true
		}
	}
	return p
}

// addrFrom reads a 4- or 16-byte address; IPv4-mapped IPv6 is unmapped.
func addrFrom(b []byte) (netip.Addr, bool) {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)), true
	case 16:
		return netip.AddrFrom16([16]byte(b)).Unmap(), true
	}
	return netip.Addr{}, false
}
