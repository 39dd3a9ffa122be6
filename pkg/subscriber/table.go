package subscriber

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHistory is how long stopped sessions are kept by default.
const DefaultHistory = 2 * time.Hour

// pruneEvery is how often, in event time, stopped sessions older than the
// history are dropped.
const pruneEvery = int64(time.Minute)

// Config configures a Table.
type Config struct {
	// History is how long a stopped session is kept after its end, on the
	// records' clock (the newest event time seen), for late flows.
	// 0 means DefaultHistory.
	History time.Duration
}

// Table holds the sessions and the NAT port blocks. Apply, ApplyNAT and
// the state functions may be called from any goroutine (one writer at a
// time, serialised inside); Lookup, LookupNAT and Attribute take no lock.
type Table struct {
	history int64

	mu     sync.Mutex // serialises writers of sessions
	v4     addrIndex[Session]
	v6     v6Index
	ids    idIndex
	nasIdx map[nasKey]uint32
	nases  []nasKey
	closed []*Session // sessions with an end, pruned once older than the history
	clock  atomic.Int64
	pruned int64 // clock at the last prune

	counts [NumSources][2]atomic.Int64 // active, stopped

	nat natTable
}

// nasKey is a NAS's identity: its address, else its NAS-Identifier.
type nasKey struct {
	addr netip.Addr
	id   string
}

func (k nasKey) String() string {
	if k.addr.IsValid() {
		return k.addr.String()
	}
	return k.id
}

// New returns an empty Table.
func New(cfg Config) *Table {
	h := cfg.History
	if h <= 0 {
		h = DefaultHistory
	}
	t := &Table{history: int64(h), ids: newIDIndex(), nasIdx: make(map[nasKey]uint32)}
	return t
}

// History is how long stopped sessions are kept.
func (t *Table) History() time.Duration { return time.Duration(t.history) }

// Clock is the newest event time seen (Unix ns), 0 before any.
func (t *Table) Clock() int64 { return t.clock.Load() }

// Counts are the sessions held, open (active) and stopped, by source.
func (t *Table) Counts() (active, stopped [NumSources]int64) {
	for i := range t.counts {
		active[i], stopped[i] = t.counts[i][0].Load(), t.counts[i][1].Load()
	}
	return
}

// Len is the number of sessions held, open and stopped.
func (t *Table) Len() int {
	n := int64(0)
	for i := range t.counts {
		n += t.counts[i][0].Load() + t.counts[i][1].Load()
	}
	return int(n)
}

// Apply applies one accounting record. A record that cannot be applied
// returns a *RejectError saying why; the table is then unchanged.
func (t *Table) Apply(r *Record) error {
	switch r.Status {
	case 0:
		return reject(ReasonNoStatus, nil)
	case StatusStart, StatusStop, StatusInterim:
		if r.SessionID == "" {
			return reject(ReasonNoSessionID, nil)
		}
	case StatusOn, StatusOff:
	default:
		return reject(ReasonUnusedStatus, fmt.Errorf("Acct-Status-Type %d", r.Status))
	}
	at := r.Time()
	if at <= 0 {
		return reject(ReasonNoTime, nil)
	}
	if len(r.User) > MaxStringLen || len(r.SessionID) > MaxStringLen || len(r.CallingStationID) > MaxStringLen {
		return reject(ReasonMalformed, errors.New("string longer than a RADIUS attribute can be"))
	}
	if r.NumPrefixes < 0 || r.NumPrefixes > MaxPrefixes {
		return reject(ReasonMalformed, errors.New("bad prefix count"))
	}
	for i, p := range r.Prefixes[:r.NumPrefixes] {
		if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() {
			return reject(ReasonMalformed, fmt.Errorf("%v is not an IPv6 prefix", p))
		}
		r.Prefixes[i] = p.Masked()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance(at)
	nas := t.nasOf(r)
	switch r.Status {
	case StatusOn, StatusOff:
		t.closeNAS(nas, at)
	case StatusStart:
		t.start(nas, r, at)
	default:
		t.update(nas, r, at, r.Status == StatusStop)
	}
	t.maybePrune()
	return nil
}

// framedV4 is the record's Framed-IP-Address as a key, 0 if it has none
// (or one that is not an IPv4 address).
func framedV4(r *Record) uint32 {
	a := r.FramedIP.Unmap()
	if !a.Is4() || a.IsUnspecified() {
		return 0
	}
	return u32FromAddr(a)
}

func (t *Table) advance(at int64) {
	if at > t.clock.Load() {
		t.clock.Store(at)
	}
}

func (t *Table) nasOf(r *Record) uint32 {
	k := nasKey{addr: r.NASIP}
	switch {
	case r.NASIP.IsValid():
	case r.NASIPv6.IsValid():
		k.addr = r.NASIPv6
	default:
		k.id = r.NASIdentifier
	}
	if i, ok := t.nasIdx[k]; ok {
		return i
	}
	k.id = string([]byte(k.id)) // the record's strings may alias a parser's buffer
	i := uint32(len(t.nases))
	t.nases = append(t.nases, k)
	t.nasIdx[k] = i
	return i
}

// start applies a Start.
func (t *Table) start(nas uint32, r *Record, at int64) {
	s := t.ids.get(nas, r.SessionID)
	if s != nil && at < s.start.Load() && (s.flags.Load()&flagStartKnown != 0 || !sameUser(r, s)) {
		// The Start of an older session with the same id, late (the id's
		// session has a Start of its own, or another user): a duplicate
		// if that session is known on its address, else it goes into the
		// history without taking the id over.
		if v4 := framedV4(r); v4 != 0 {
			for o := t.v4.get(v4); o != nil; o = o.olderV4.Load() {
				if o.nas == nas && o.start.Load() == at && o.SessionID() == r.SessionID {
					return
				}
			}
		}
		// It ended before the session that reused its id began.
		t.setEnd(t.open(nas, r, at, open, flagStartKnown, false), s.start.Load())
		return
	}
	if s != nil && (at < s.end.Load() || at == s.start.Load()) {
		// The same session: a duplicate (even of a session that lasted
		// under a second), or its Start after an Interim-Update or a Stop
		// opened it.
		if s.flags.Load()&flagStartKnown == 0 {
			s.flags.Or(flagStartKnown)
			if at != s.start.Load() {
				t.moveStart(s, at)
			}
		}
		t.refresh(s, r, at)
		return
	}
	t.open(nas, r, at, open, flagStartKnown, true)
}

// update applies an Interim-Update or a Stop.
func (t *Table) update(nas uint32, r *Record, at int64, stop bool) {
	began := at
	if r.HasSessionTime {
		began = at - int64(r.SessionTime)*int64(time.Second)
	}
	if s := t.ids.get(nas, r.SessionID); s != nil {
		end := s.end.Load()
		if at < s.start.Load() {
			// Before the session began: an earlier record of it (only
			// when its start is a guess and the user agrees), else a
			// late record of an older session with the same id.
			if r.HasSessionTime && began < s.start.Load() && s.flags.Load()&flagStartKnown == 0 && sameUser(r, s) {
				t.moveStart(s, began)
			}
			return
		}
		if at < end {
			if began < s.start.Load() && s.flags.Load()&flagStartKnown == 0 {
				t.moveStart(s, began)
			}
			s = t.refresh(s, r, at)
			if stop {
				t.setEnd(s, at)
				s.flags.Or(flagStopped)
			}
			return
		}
		if !r.HasSessionTime || began < end {
			return // a late record of a session already ended
		}
		// The id was reused by a session whose Start was lost.
	}
	end := int64(open)
	if stop {
		end = at
	}
	s := t.open(nas, r, began, end, 0, true)
	if stop {
		s.flags.Or(flagStopped)
	}
}

// sameUser says whether r may be about s's user: a record without
// User-Name may.
func sameUser(r *Record, s *Session) bool { return r.User == "" || r.User == s.User() }

// open creates a session from r over [start, end) and links it on its
// addresses; byID also makes it the session of its id.
func (t *Table) open(nas uint32, r *Record, start, end int64, flags uint32, byID bool) *Session {
	s := newSession(r.User, r.SessionID, r.CallingStationID)
	s.nas, s.source = nas, r.Source
	s.flags.Store(flags)
	s.v4 = framedV4(r)
	s.start.Store(start)
	s.end.Store(open)
	t.counts[s.source][0].Add(1)
	if end != open {
		t.setEnd(s, end)
	}
	if byID {
		t.ids.put(s)
	}
	if s.v4 != 0 {
		t.linkV4(s)
	}
	if r.NumPrefixes > 0 {
		b := &v6Binding{links: make([]*v6Link, 0, r.NumPrefixes)}
		for _, p := range r.Prefixes[:r.NumPrefixes] {
			b.links = append(b.links, t.linkV6(s, p))
		}
		s.v6.Store(b)
	}
	return s
}

// refresh brings s up to date with what r says about it: a new IPv4
// address splits it (the old one is closed at the record's time and a new
// session holds the new address from then on), a new or filled-in
// identity or a first IPv4 address replaces it, new IPv6 prefixes are
// added. It returns the session now in force.
func (t *Table) refresh(s *Session, r *Record, at int64) *Session {
	v4 := framedV4(r)
	user, csid := s.User(), s.CallingStationID()
	if r.User != "" {
		user = r.User
	}
	if r.CallingStationID != "" {
		csid = r.CallingStationID
	}
	switch {
	case v4 != 0 && s.v4 != 0 && v4 != s.v4:
		end := s.end.Load()
		t.setEnd(s, at)
		ns := t.clone(s, user, csid, v4)
		ns.start.Store(at)
		ns.end.Store(open)
		ns.flags.Store(flagStartKnown)
		t.counts[ns.source][0].Add(1)
		if end != open {
			t.setEnd(ns, end)
		}
		t.ids.put(ns)
		t.linkV4(ns)
		if b := s.v6.Load(); b != nil {
			nb := &v6Binding{links: make([]*v6Link, 0, len(b.links))}
			for _, l := range b.links {
				nb.links = append(nb.links, t.linkV6(ns, l.prefix))
			}
			ns.v6.Store(nb)
		}
		s = ns
	case user != s.User() || csid != s.CallingStationID() || (v4 != 0 && s.v4 == 0):
		if s.v4 != 0 {
			v4 = s.v4
		}
		s = t.replace(s, t.clone(s, user, csid, v4))
	}
	t.addPrefixes(s, r)
	return s
}

// clone is a copy of s with another identity or address, not yet indexed.
func (t *Table) clone(s *Session, user, csid string, v4 uint32) *Session {
	ns := newSession(user, s.SessionID(), csid)
	ns.nas, ns.source, ns.v4 = s.nas, s.source, v4
	ns.flags.Store(s.flags.Load())
	ns.start.Store(s.start.Load())
	ns.end.Store(s.end.Load())
	return ns
}

// replace puts ns, a clone of s over the same time, in s's place in every
// index and chain. An IPv4 address ns has and s had not is linked.
func (t *Table) replace(s, ns *Session) *Session {
	if s.v4 != 0 {
		ns.olderV4.Store(s.olderV4.Load())
		if head := t.v4.get(s.v4); head == s {
			t.v4.set(s.v4, ns)
		} else {
			for n := head; n != nil; n = n.olderV4.Load() {
				if n.olderV4.Load() == s {
					n.olderV4.Store(ns)
					break
				}
			}
		}
	} else if ns.v4 != 0 {
		t.linkV4(ns)
	}
	if b := s.v6.Load(); b != nil {
		for _, l := range b.links {
			l.s.Store(ns)
		}
		ns.v6.Store(b)
	}
	t.ids.put(ns)
	s.flags.Or(flagGone)
	if s.end.Load() != open {
		// s was in the closed list (now skipped as gone); ns takes its
		// place. An ns that linkV4 just closed was added by setEnd.
		t.closed = append(t.closed, ns)
	}
	return ns
}

// addPrefixes links the IPv6 prefixes of r that s does not hold yet.
func (t *Table) addPrefixes(s *Session, r *Record) {
	if r.NumPrefixes == 0 {
		return
	}
	var nb *v6Binding
	for _, p := range r.Prefixes[:r.NumPrefixes] {
		if s.holdsPrefix(p) || (nb != nil && nb.has(p)) {
			continue
		}
		if nb == nil {
			nb = &v6Binding{}
			if old := s.v6.Load(); old != nil {
				nb.links = append(nb.links, old.links...)
			}
		}
		nb.links = append(nb.links, t.linkV6(s, p))
	}
	if nb != nil {
		s.v6.Store(nb)
	}
}

func (b *v6Binding) has(p netip.Prefix) bool {
	for _, l := range b.links {
		if l.prefix == p {
			return true
		}
	}
	return false
}

// setEnd ends s at e if that is earlier than its end now.
func (t *Table) setEnd(s *Session, e int64) {
	e = max(e, s.start.Load())
	cur := s.end.Load()
	if e >= cur {
		return
	}
	if cur == open {
		t.counts[s.source][0].Add(-1)
		t.counts[s.source][1].Add(1)
		t.closed = append(t.closed, s)
	}
	s.end.Store(e)
}

// linkV4 inserts s in the chain of its IPv4 address, by start time. The
// session that held the address before s began ends when s begins; s ends
// no later than the next session on the address begins.
func (t *Table) linkV4(s *Session) {
	start := s.start.Load()
	var newer *Session
	n := t.v4.get(s.v4)
	for n != nil && n.start.Load() > start {
		newer, n = n, n.olderV4.Load()
	}
	if newer != nil {
		t.setEnd(s, newer.start.Load())
	}
	s.olderV4.Store(n)
	// Publish s before closing n: a reader then sees either n still open
	// before start, or s.
	if newer == nil {
		t.v4.set(s.v4, s)
	} else {
		newer.olderV4.Store(s)
	}
	if n != nil {
		t.setEnd(n, start)
	}
}

// unlinkV4 removes s from the chain of its IPv4 address.
func (t *Table) unlinkV4(s *Session) {
	head := t.v4.get(s.v4)
	if head == s {
		t.v4.set(s.v4, s.olderV4.Load())
		return
	}
	for n := head; n != nil; n = n.olderV4.Load() {
		if n.olderV4.Load() == s {
			n.olderV4.Store(s.olderV4.Load())
			return
		}
	}
}

// linkV6 inserts s in the chain of prefix p, as linkV4 does.
func (t *Table) linkV6(s *Session, p netip.Prefix) *v6Link {
	h := t.v6.head(p)
	start := s.start.Load()
	var newer *v6Link
	n := h.head.Load()
	for n != nil && n.s.Load().start.Load() > start {
		newer, n = n, n.older.Load()
	}
	if newer != nil {
		t.setEnd(s, newer.s.Load().start.Load())
	}
	l := &v6Link{prefix: p}
	l.s.Store(s)
	l.older.Store(n)
	if newer == nil {
		h.head.Store(l)
	} else {
		newer.older.Store(l)
	}
	if n != nil {
		t.setEnd(n.s.Load(), start)
	}
	return l
}

// unlinkV6 removes link l from the chain of its prefix, and the prefix
// from the index once its chain is empty.
func (t *Table) unlinkV6(l *v6Link) {
	p := l.prefix
	h, ok := t.v6.get(p)
	if !ok {
		return
	}
	if h.head.Load() == l {
		h.head.Store(l.older.Load())
	} else {
		for n := h.head.Load(); n != nil; n = n.older.Load() {
			if n.older.Load() == l {
				n.older.Store(l.older.Load())
				break
			}
		}
	}
	if h.head.Load() == nil {
		t.v6.remove(p)
	}
}

// moveStart changes when s began, moving it in its chains.
func (t *Table) moveStart(s *Session, start int64) {
	if s.v4 != 0 {
		t.unlinkV4(s)
	}
	b := s.v6.Load()
	if b != nil {
		for _, l := range b.links {
			t.unlinkV6(l)
		}
	}
	s.start.Store(start)
	if e := s.end.Load(); e < start {
		s.end.Store(start)
	}
	if s.v4 != 0 {
		t.linkV4(s)
	}
	if b != nil {
		nb := &v6Binding{links: make([]*v6Link, 0, len(b.links))}
		for _, l := range b.links {
			nb.links = append(nb.links, t.linkV6(s, l.prefix))
		}
		s.v6.Store(nb)
	}
}

// closeNAS ends every session of nas that began before at and is open at
// at: Accounting-On and Accounting-Off.
func (t *Table) closeNAS(nas uint32, at int64) {
	t.ids.all(func(s *Session) {
		if s.nas == nas && s.start.Load() < at {
			t.setEnd(s, at)
		}
	})
}

func (t *Table) maybePrune() {
	if c := t.clock.Load(); c-t.pruned >= pruneEvery {
		t.prune(c - t.history)
		t.pruned = c
	}
}

// Prune drops the stopped sessions that ended at or before the newest
// event time minus the history. Apply does it every minute of event time;
// calling it is only needed after loading a state.
func (t *Table) Prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(t.clock.Load() - t.history)
	t.pruned = t.clock.Load()
	t.nat.mu.Lock()
	defer t.nat.mu.Unlock()
	t.nat.prune(t.clock.Load() - t.history)
}

func (t *Table) prune(cutoff int64) {
	keep := t.closed[:0]
	for _, s := range t.closed {
		if s.flags.Load()&flagGone != 0 {
			continue
		}
		if s.end.Load() > cutoff {
			keep = append(keep, s)
			continue
		}
		if s.v4 != 0 {
			t.unlinkV4(s)
		}
		if b := s.v6.Load(); b != nil {
			for _, l := range b.links {
				t.unlinkV6(l)
			}
		}
		if t.ids.get(s.nas, s.SessionID()) == s {
			t.ids.remove(s)
		}
		s.flags.Or(flagGone)
		t.counts[s.source][1].Add(-1)
	}
	clear(t.closed[len(keep):])
	t.closed = keep
}

// Lookup returns the session that held a at time at (Unix ns), or nil. An
// IPv4 address matches a Framed-IP-Address; an IPv6 address the longest
// prefix held at that time. It takes no lock and does not allocate.
func (t *Table) Lookup(a netip.Addr, at int64) *Session {
	if a.Is4() {
		return t.lookupV4(u32FromAddr(a), at)
	}
	if a.Is4In6() {
		return t.lookupV4(u32FromAddr(a.Unmap()), at)
	}
	return t.lookupV6(a, at)
}

func (t *Table) lookupV4(a uint32, at int64) *Session {
	for s := t.v4.get(a); s != nil; s = s.olderV4.Load() {
		if at >= s.start.Load() {
			if at < s.end.Load() {
				return s
			}
			return nil
		}
	}
	return nil
}

func (t *Table) lookupV6(a netip.Addr, at int64) *Session { return t.v6.lookup(a, at) }

// MemoryBytes estimates the memory of the indexes (not of the sessions
// themselves), for tests and benchmarks.
func (t *Table) MemoryBytes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.v4.bytes() + t.ids.bytes() + cap(t.closed)*8
}
