// Package template is the NetFlow v9 / IPFIX template cache: templates
// keyed by exporter address (not port: a router that changes its source
// port keeps its templates), protocol version, observation domain and
// template id, with limits, expiry, persistence to a file, and a bounded
// buffer for data sets that arrive before their template.
//
// The cache stores each template's wire description (Spec) and a compiled
// form of type T built by the decoder, so that data records are decoded by
// walking a precompiled field list. Templates are immutable once stored; a
// changed template replaces the old one.
//
// Time is the caller's: every method that ages something takes "now" in
// Unix nanoseconds (the packet's receive time), which keeps tests
// deterministic. The cache is safe for concurrent use; lookups take a read
// lock, counters are atomic and Stats never blocks.
package template

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
)

// Field is one field specifier of a template.
type Field struct {
	ID     uint16 // information element id, enterprise bit cleared
	Length uint16 // 0xFFFF: variable length (IPFIX)
	PEN    uint32 // enterprise number, 0 for IANA elements
}

// VariableLength is the Length of a variable-length field.
const VariableLength = 0xFFFF

// Spec is a template as sent by the exporter.
type Spec struct {
	Options     bool    // an options template
	ScopeFields int     // options templates: how many leading fields are scope fields
	Fields      []Field // in record order
}

// MinRecordLength is the least number of bytes a record of s occupies: a
// variable-length field takes at least its one-byte length prefix.
func (s *Spec) MinRecordLength() int {
	n := 0
	for _, f := range s.Fields {
		if f.Length == VariableLength {
			n++
		} else {
			n += int(f.Length)
		}
	}
	return n
}

func (s *Spec) equal(o *Spec) bool {
	if s.Options != o.Options || s.ScopeFields != o.ScopeFields || len(s.Fields) != len(o.Fields) {
		return false
	}
	for i := range s.Fields {
		if s.Fields[i] != o.Fields[i] {
			return false
		}
	}
	return true
}

// Key identifies a template.
type Key struct {
	Exporter netip.Addr // unmapped
	Version  uint16     // 9 or 10
	Domain   uint32     // v9 source id, IPFIX observation domain id
	ID       uint16
}

func (k Key) String() string {
	return fmt.Sprintf("%s v%d domain %d template %d", k.Exporter, k.Version, k.Domain, k.ID)
}

// Template is a stored template.
type Template[T any] struct {
	Key      Key
	Spec     Spec
	Compiled T
	seenNs   uint64 // last time it was received; guarded by the cache's lock
}

// Config bounds the cache. Zero values take the defaults.
type Config struct {
	MaxPerExporter int           // templates per exporter address, default 4096
	MaxTotal       int           // templates in all, default 65536
	TTL            time.Duration // expiry after the last refresh, default 30m; negative: never
	PendingSets    int           // data sets held waiting for their template, default 1024
	PendingBytes   int           // bytes of those sets, default 4 MiB
	PendingAge     time.Duration // how long a set is held, default 10s
}

func (c Config) withDefaults() Config {
	if c.MaxPerExporter <= 0 {
		c.MaxPerExporter = 4096
	}
	if c.MaxTotal <= 0 {
		c.MaxTotal = 65536
	}
	if c.TTL == 0 {
		c.TTL = 30 * time.Minute
	}
	if c.PendingSets <= 0 {
		c.PendingSets = 1024
	}
	if c.PendingBytes <= 0 {
		c.PendingBytes = 4 << 20
	}
	if c.PendingAge <= 0 {
		c.PendingAge = 10 * time.Second
	}
	return c
}

// Held is a data set kept until its template arrives, with the packet
// context needed to decode it then.
type Held struct {
	Key        Key
	Exporter   netip.AddrPort
	Data       []byte // the set's records, owned by the cache
	ReceivedNs uint64
	ExportSecs uint32 // header export time (v9 unix secs, IPFIX export time)
	UptimeMs   uint32 // v9 sysUptime
	Sequence   uint32
}

// Stats is a snapshot of the cache's gauges and counters.
type Stats struct {
	Templates      int64  // known templates
	PendingSets    int64  // data sets waiting for a template
	PendingBytes   int64  // their size
	PendingDropped uint64 // sets dropped: buffer full, too old, or template never came
	PendingDecoded uint64 // sets decoded once their template arrived
	Expired        uint64 // templates expired by TTL
	Withdrawn      uint64 // templates withdrawn by the exporter
	LimitHits      uint64 // templates refused by a limit
	Updated        uint64 // templates replaced by a different one under the same key
}

// ErrLimit reports a template refused by MaxPerExporter or MaxTotal.
var ErrLimit = fmt.Errorf("template: %w", decode.ErrLimit)

// Cache is the template store.
type Cache[T any] struct {
	cfg     Config
	compile func(Key, *Spec) (T, error)

	mu          sync.RWMutex
	m           map[Key]*Template[T]
	perExporter map[netip.Addr]int
	pending     []Held // FIFO, oldest first
	pendingLen  int

	templates, pendingSets, pendingBytes                        atomic.Int64
	dropped, decoded, expired, withdrawn, limitHits, updatedCnt atomic.Uint64
}

// New returns an empty cache; compile turns a Spec into the decoder's
// form, and its error refuses the template.
func New[T any](cfg Config, compile func(Key, *Spec) (T, error)) *Cache[T] {
	return &Cache[T]{
		cfg:         cfg.withDefaults(),
		compile:     compile,
		m:           make(map[Key]*Template[T]),
		perExporter: make(map[netip.Addr]int),
	}
}

// Config returns the configuration in use, defaults applied.
func (c *Cache[T]) Config() Config { return c.cfg }

// Get returns the template for k, or nil when it is unknown or expired.
func (c *Cache[T]) Get(k Key, nowNs uint64) *Template[T] {
	c.mu.RLock()
	t := c.m[k]
	stale := t != nil && c.staleLocked(t, nowNs)
	c.mu.RUnlock()
	if !stale {
		return t
	}
	c.mu.Lock()
	if t2 := c.m[k]; t2 != nil && c.staleLocked(t2, nowNs) {
		c.deleteLocked(k)
		c.expired.Add(1)
	}
	c.mu.Unlock()
	return nil
}

func (c *Cache[T]) staleLocked(t *Template[T], nowNs uint64) bool {
	return c.cfg.TTL > 0 && nowNs > t.seenNs && nowNs-t.seenNs > uint64(c.cfg.TTL)
}

// Put stores (or refreshes) a template received at nowNs. It returns the
// stored template and whether it is new or changed (so that held data can
// be decoded). A template over a limit is refused with ErrLimit.
func (c *Cache[T]) Put(k Key, s Spec, nowNs uint64) (*Template[T], bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[k]; old != nil && old.Spec.equal(&s) {
		old.seenNs = max(old.seenNs, nowNs)
		return old, false, nil
	}
	return c.putLocked(k, s, nowNs)
}

// putLocked stores a new or changed template. It is apart from Put so
// that only this path moves s to the heap: exporters resend unchanged
// templates every few seconds, and the refresh must not allocate.
func (c *Cache[T]) putLocked(k Key, s Spec, nowNs uint64) (*Template[T], bool, error) {
	compiled, err := c.compile(k, &s)
	if err != nil {
		return nil, false, err
	}
	s.Fields = append([]Field(nil), s.Fields...)
	t := &Template[T]{Key: k, Spec: s, Compiled: compiled, seenNs: nowNs}
	if old := c.m[k]; old != nil {
		c.m[k] = t
		c.updatedCnt.Add(1)
		return t, true, nil
	}
	if c.perExporter[k.Exporter] >= c.cfg.MaxPerExporter || len(c.m) >= c.cfg.MaxTotal {
		c.limitHits.Add(1)
		return nil, false, fmt.Errorf("%w: %s", ErrLimit, k)
	}
	c.m[k] = t
	c.perExporter[k.Exporter]++
	c.templates.Add(1)
	return t, true, nil
}

func (c *Cache[T]) deleteLocked(k Key) {
	delete(c.m, k)
	if n := c.perExporter[k.Exporter] - 1; n > 0 {
		c.perExporter[k.Exporter] = n
	} else {
		delete(c.perExporter, k.Exporter)
	}
	c.templates.Add(-1)
}

// Withdraw removes one template; it reports whether it existed.
func (c *Cache[T]) Withdraw(k Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok {
		return false
	}
	c.deleteLocked(k)
	c.withdrawn.Add(1)
	return true
}

// WithdrawAll removes every data template (options false) or every
// options template (options true) of an exporter's domain, as an IPFIX
// all-templates withdrawal asks. It returns how many went.
func (c *Cache[T]) WithdrawAll(exporter netip.Addr, version uint16, domain uint32, options bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, t := range c.m {
		if k.Exporter == exporter && k.Version == version && k.Domain == domain && t.Spec.Options == options {
			c.deleteLocked(k)
			n++
		}
	}
	c.withdrawn.Add(uint64(n))
	return n
}

// Expire drops templates not refreshed within the TTL and held sets older
// than PendingAge. Get and Hold expire lazily; call Expire periodically to
// keep gauges accurate for exporters that went silent.
func (c *Cache[T]) Expire(nowNs uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.m {
		if c.staleLocked(t, nowNs) {
			c.deleteLocked(k)
			c.expired.Add(1)
		}
	}
	c.agePendingLocked(nowNs)
}

// Hold keeps a copy of a data set until its template arrives. The oldest
// held sets are dropped (and counted) to stay within the limits; a set
// larger than the whole buffer is refused with an error.
func (c *Cache[T]) Hold(h Held, nowNs uint64) error {
	if len(h.Data) > c.cfg.PendingBytes {
		c.dropped.Add(1)
		return fmt.Errorf("template: %w: data set of %d bytes exceeds the pending buffer", decode.ErrLimit, len(h.Data))
	}
	h.Data = append([]byte(nil), h.Data...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.agePendingLocked(nowNs)
	for len(c.pending) > 0 && (len(c.pending) >= c.cfg.PendingSets || c.pendingLen+len(h.Data) > c.cfg.PendingBytes) {
		c.dropOldestLocked()
	}
	c.pending = append(c.pending, h)
	c.pendingLen += len(h.Data)
	c.pendingSets.Store(int64(len(c.pending)))
	c.pendingBytes.Store(int64(c.pendingLen))
	return nil
}

func (c *Cache[T]) dropOldestLocked() {
	c.pendingLen -= len(c.pending[0].Data)
	c.pending[0] = Held{}
	c.pending = c.pending[1:]
	c.dropped.Add(1)
}

func (c *Cache[T]) agePendingLocked(nowNs uint64) {
	for len(c.pending) > 0 && nowNs > c.pending[0].ReceivedNs && nowNs-c.pending[0].ReceivedNs > uint64(c.cfg.PendingAge) {
		c.dropOldestLocked()
	}
	if len(c.pending) == 0 {
		c.pending = nil // let the backing array go
	}
	c.pendingSets.Store(int64(len(c.pending)))
	c.pendingBytes.Store(int64(c.pendingLen))
}

// Release removes and returns the held sets for k, oldest first; the
// caller decodes them and they count as decoded.
func (c *Cache[T]) Release(k Key, nowNs uint64) []Held {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.agePendingLocked(nowNs)
	var out []Held
	kept := c.pending[:0]
	for _, h := range c.pending {
		if h.Key == k {
			out = append(out, h)
			c.pendingLen -= len(h.Data)
		} else {
			kept = append(kept, h)
		}
	}
	for i := len(kept); i < len(c.pending); i++ {
		c.pending[i] = Held{}
	}
	c.pending = kept
	c.decoded.Add(uint64(len(out)))
	c.pendingSets.Store(int64(len(c.pending)))
	c.pendingBytes.Store(int64(c.pendingLen))
	return out
}

// HasPending reports, without locking, whether any set is held.
func (c *Cache[T]) HasPending() bool { return c.pendingSets.Load() > 0 }

// Stats returns the current gauges and counters without blocking.
func (c *Cache[T]) Stats() Stats {
	return Stats{
		Templates:      c.templates.Load(),
		PendingSets:    c.pendingSets.Load(),
		PendingBytes:   c.pendingBytes.Load(),
		PendingDropped: c.dropped.Load(),
		PendingDecoded: c.decoded.Load(),
		Expired:        c.expired.Load(),
		Withdrawn:      c.withdrawn.Load(),
		LimitHits:      c.limitHits.Load(),
		Updated:        c.updatedCnt.Load(),
	}
}

var errBadFile = errors.New("template: bad template file")
