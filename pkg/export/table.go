package export

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Direction is the family a flow is counted in.
type Direction uint8

const (
	// Receive: the flow's destination AS is the monitored AS.
	Receive Direction = iota
	// Transmit: the flow's source AS is the monitored AS.
	Transmit
	// Pair: any flow, with --all-pairs.
	Pair
	numDirections
)

// OtherLabel replaces every label of the series that pairs fold into once
// the table is full: AS numbers, AS names and hostname alike, so that a
// query grouping by any of them shows the folded traffic as "other".
const OtherLabel = "other"

// maxHosts bounds the cache of sampler address texts; it is cleared when
// full, so it costs a few allocations but never unbounded memory.
const maxHosts = 4096

// Config says what the table counts and how big it may grow.
type Config struct {
	// ASN is the monitored AS: flows from it are transmitted, flows to it
	// received. 0 counts nothing in those families.
	ASN uint32
	// AllPairs also counts every flow in the flow_*_total families.
	AllPairs bool
	// DefaultAS replaces an AS number of 0 in a record (pmacct writes 0 for
	// the local AS); 0 leaves it.
	DefaultAS uint32
	// NoSamplingMultiply counts bytes and packets as exported, instead of
	// multiplied by the sampling rate.
	NoSamplingMultiply bool
	// MaxPairs caps the series per family and hostname combined; beyond it
	// new pairs fold into the "other" series.
	MaxPairs int
	// PairTTL drops a series not updated for this long.
	PairTTL time.Duration
	// ASNames names AS numbers when the records carry no names (LoadASNames).
	ASNames map[uint32]string
	// Users also counts every flow by subscriber, in the
	// flowexport_user_* families: bytes from a src_user are transmitted
	// by that user, bytes to a dst_user received (flowenrich's subscriber
	// attribution sets them).
	Users bool
	// MaxUsers caps the user series, as MaxPairs does the pairs: beyond
	// it new users fold into the "other" series of their family.
	MaxUsers int
}

// DefaultConfig has flow-exporter's behaviour plus bounded cardinality.
func DefaultConfig() Config {
	return Config{MaxPairs: 10000, MaxUsers: 10000, PairTTL: time.Hour}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.ASN == 0 && !c.AllPairs && !c.Users {
		errs = append(errs, errors.New("export: set a monitored AS, all pairs or users"))
	}
	if c.MaxPairs < 1 {
		errs = append(errs, fmt.Errorf("export: max pairs must be >= 1, got %d", c.MaxPairs))
	}
	if c.Users && c.MaxUsers < 1 {
		errs = append(errs, fmt.Errorf("export: max users must be >= 1, got %d", c.MaxUsers))
	}
	if c.PairTTL <= 0 {
		errs = append(errs, fmt.Errorf("export: pair TTL must be > 0, got %s", c.PairTTL))
	}
	return errors.Join(errs...)
}

type pairKey struct {
	src, dst uint32
	dir      Direction
	other    bool
	host     string
}

type pairCounts struct {
	bytes, packets, flows uint64
	lastSeen              int64 // unix nanoseconds
	srcName, dstName      string
}

// Table holds the per-AS-pair counters and exposes them as a
// prometheus.Collector built at scrape time. Records are counted through
// a Counter; a scrape sees whole batches.
type Table struct {
	cfg Config

	mu        sync.Mutex
	pairs     map[pairKey]*pairCounts
	others    int // "other" series in pairs
	hosts     map[netip.Addr]string
	now       int64
	lastSweep int64
	folded    uint64
	expired   uint64

	descs    [numDirections][3]*prometheus.Desc
	pairsD   *prometheus.Desc
	foldedD  *prometheus.Desc
	expiredD *prometheus.Desc

	users userTable
}

var pairLabels = []string{"source_as", "source_as_name", "destination_as", "destination_as_name", "hostname"}

// NewTable returns an empty table; cfg must be valid.
func NewTable(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Table{
		cfg:   cfg,
		pairs: make(map[pairKey]*pairCounts),
		hosts: make(map[netip.Addr]string),
		pairsD: prometheus.NewDesc("flowexport_pairs",
			"AS-pair series currently exported, the \"other\" series included.", nil, nil),
		foldedD: prometheus.NewDesc("flowexport_pairs_folded_total",
			"Records counted in the \"other\" series because the table was full (--max-pairs).", nil, nil),
		expiredD: prometheus.NewDesc("flowexport_pairs_expired_total",
			"AS-pair series dropped after --pair-ttl without traffic.", nil, nil),
	}
	families := [numDirections]struct{ name, what string }{
		Receive:  {"flow_receive", "received by the monitored AS (destination_as is --asn)"},
		Transmit: {"flow_transmit", "transmitted by the monitored AS (source_as is --asn)"},
		Pair:     {"flow", "between any two ASes (--all-pairs)"},
	}
	t.users.init()
	for d, f := range families {
		for u, unit := range []string{"bytes", "packets", "flows"} {
			help := fmt.Sprintf("%s%s %s, multiplied by the sampling rate.", strings.ToUpper(unit[:1]), unit[1:], f.what)
			if unit == "flows" {
				help = fmt.Sprintf("Flow records %s.", f.what)
			}
			t.descs[d][u] = prometheus.NewDesc(f.name+"_"+unit+"_total", help, pairLabels, nil)
		}
	}
	return t, nil
}

// begin locks the table for a batch of records seen at now.
func (t *Table) begin(now time.Time) {
	t.mu.Lock()
	t.now = now.UnixNano()
	if t.now-t.lastSweep >= int64(t.cfg.PairTTL)/4 {
		t.expireLocked()
	}
}

func (t *Table) end() { t.mu.Unlock() }

// addLocked counts r in the families it belongs to and says whether
// there was one.
func (t *Table) addLocked(r *Record) bool {
	if r.SrcAS == 0 {
		r.SrcAS = t.cfg.DefaultAS
	}
	if r.DstAS == 0 {
		r.DstAS = t.cfg.DefaultAS
	}
	b, p := r.Bytes, r.Packets
	if !t.cfg.NoSamplingMultiply {
		b, p = scaled(b, r.SamplingRate), scaled(p, r.SamplingRate)
	}
	key := pairKey{src: r.SrcAS, dst: r.DstAS, host: t.hostLocked(r)}
	// flow-exporter's rule: a flow from the monitored AS is transmitted,
	// even when it also goes to it.
	counted := false
	switch asn := t.cfg.ASN; {
	case asn == 0:
	case r.SrcAS == asn:
		key.dir = Transmit
		t.bumpLocked(key, r, b, p)
		counted = true
	case r.DstAS == asn:
		key.dir = Receive
		t.bumpLocked(key, r, b, p)
		counted = true
	}
	if t.cfg.AllPairs {
		key.dir = Pair
		t.bumpLocked(key, r, b, p)
		counted = true
	}
	if t.cfg.Users && t.addUsersLocked(r, key.host, b, p) {
		counted = true
	}
	return counted
}

// hostLocked is flow-exporter's hostname: pmacct's label, else the
// sampler's address. The returned string may alias r.Label: it is only
// used for lookups and copied before it is stored.
func (t *Table) hostLocked(r *Record) string {
	if len(r.Label) > 0 {
		return unsafeString(r.Label)
	}
	if !r.Sampler.IsValid() {
		return ""
	}
	if h, ok := t.hosts[r.Sampler]; ok {
		return h
	}
	if len(t.hosts) >= maxHosts {
		clear(t.hosts)
	}
	h := r.Sampler.String()
	t.hosts[r.Sampler] = h
	return h
}

func (t *Table) bumpLocked(key pairKey, r *Record, b, p uint64) {
	c, ok := t.pairs[key]
	if !ok {
		c = t.insertLocked(&key, r)
	} else if c.srcName == "" && len(r.SrcASName) > 0 || c.dstName == "" && len(r.DstASName) > 0 {
		c.srcName, c.dstName = t.names(c.srcName, c.dstName, r)
	}
	c.bytes += b
	c.packets += p
	c.flows += r.Flows
	c.lastSeen = t.now
}

// insertLocked adds the series for key, or returns the "other" series of
// its family when the table is full. key is modified.
func (t *Table) insertLocked(key *pairKey, r *Record) *pairCounts {
	if len(t.pairs)-t.others >= t.cfg.MaxPairs {
		t.folded++
		*key = pairKey{dir: key.dir, other: true}
		if c, ok := t.pairs[*key]; ok {
			return c
		}
		t.others++
		c := &pairCounts{srcName: OtherLabel, dstName: OtherLabel}
		t.pairs[*key] = c
		return c
	}
	key.host = strings.ToValidUTF8(strings.Clone(key.host), "\uFFFD")
	c := &pairCounts{}
	c.srcName, c.dstName = t.names("", "", r)
	t.pairs[*key] = c
	return c
}

// names fills the empty names from the record's enrichment, else from
// the AS names table.
func (t *Table) names(src, dst string, r *Record) (string, string) {
	name := func(have string, enriched []byte, as uint32) string {
		switch {
		case have != "":
			return have
		case len(enriched) > 0:
			return strings.ToValidUTF8(string(enriched), "\uFFFD")
		}
		return t.cfg.ASNames[as]
	}
	return name(src, r.SrcASName, r.SrcAS), name(dst, r.DstASName, r.DstAS)
}

func (t *Table) expireLocked() {
	t.lastSweep = t.now
	deadline := t.now - int64(t.cfg.PairTTL)
	for k, c := range t.pairs {
		if c.lastSeen < deadline {
			delete(t.pairs, k)
			t.expired++
			if k.other {
				t.others--
			}
		}
	}
	t.expireUsersLocked(deadline)
}

// SetASNames replaces the AS names table (LoadASNames), as a reload of
// the database does. Series named already keep their names until they
// expire; new series, and those whose names were empty, take the new ones.
func (t *Table) SetASNames(names map[uint32]string) {
	t.mu.Lock()
	t.cfg.ASNames = names
	t.mu.Unlock()
}

// Expire drops the series idle for longer than the TTL at now.
func (t *Table) Expire(now time.Time) {
	t.mu.Lock()
	t.now = now.UnixNano()
	t.expireLocked()
	t.mu.Unlock()
}

// Len is the number of AS-pair series, the "other" ones included.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pairs)
}

// Describe sends the descriptors of every metric the table exports.
func (t *Table) Describe(ch chan<- *prometheus.Desc) {
	for _, ds := range t.descs {
		for _, d := range ds {
			ch <- d
		}
	}
	ch <- t.pairsD
	ch <- t.foldedD
	ch <- t.expiredD
	if t.cfg.Users {
		t.users.describe(ch)
	}
}

type snapshot struct {
	key pairKey
	pairCounts
}

// Collect expires idle series, then sends one counter per series and
// unit, built from a copy taken under the lock.
func (t *Table) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	t.now = time.Now().UnixNano()
	t.expireLocked()
	snap := make([]snapshot, 0, len(t.pairs))
	for k, c := range t.pairs {
		snap = append(snap, snapshot{k, *c})
	}
	folded, expired := t.folded, t.expired
	var users userSnapshot
	if t.cfg.Users {
		users = t.users.snapshotLocked()
	}
	t.mu.Unlock()
	if t.cfg.Users {
		t.users.collect(ch, users)
	}

	ch <- prometheus.MustNewConstMetric(t.pairsD, prometheus.GaugeValue, float64(len(snap)))
	ch <- prometheus.MustNewConstMetric(t.foldedD, prometheus.CounterValue, float64(folded))
	ch <- prometheus.MustNewConstMetric(t.expiredD, prometheus.CounterValue, float64(expired))
	for _, s := range snap {
		src, dst, host := OtherLabel, OtherLabel, OtherLabel
		if !s.key.other {
			src, dst, host = strconv.FormatUint(uint64(s.key.src), 10), strconv.FormatUint(uint64(s.key.dst), 10), s.key.host
		}
		labels := []string{src, s.srcName, dst, s.dstName, host}
		for u, v := range [3]uint64{s.bytes, s.packets, s.flows} {
			ch <- prometheus.MustNewConstMetric(t.descs[s.key.dir][u], prometheus.CounterValue, float64(v), labels...)
		}
	}
}
