package subscriber

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// natEvent values (RFC 8158 section 4.1, IANA "NAT Event Type") that
// ApplyNAT uses.
const (
	NATPortBlockAllocation   = 16
	NATPortBlockDeallocation = 17
)

// NATEvent is a NAT device's port-block event, as flowcollect decodes it
// into a flow record: nat_event, src_addr (the private address),
// post_nat_src_addr (the public one), nat_port_range_start/end, and the
// record's time (time_flow_start_ns, else time_received_ns).
type NATEvent struct {
	Event             uint32
	Private, Public   netip.Addr
	PortLow, PortHigh uint16
	Time              int64 // Unix ns
}

// Via says how a side of a flow was attributed.
type Via uint8

// Attribution results.
const (
	ViaNone    Via = iota // no session held the address
	ViaSession            // a session held the address itself
	ViaNAT                // the address and port were a NAT port block of a private address that a session held
	NumVia
)

// ViaNames are the metric label values, by index.
var ViaNames = [NumVia]string{"none", "session", "nat"}

// natTable holds port blocks by public IPv4 address. Like the session
// indexes, it is read without a lock; writers (ApplyNAT, from the flow
// stream itself) serialise on mu, which the session writers do not take.
type natTable struct {
	mu     sync.Mutex
	idx    addrIndex[natAddr]
	pruned int64
	blocks [2]atomic.Int64 // open, closed
	any    atomic.Bool     // a block was ever held: lookups skip NAT until then

	allocs, deallocs, unmatched, ignored atomic.Int64
}

// natAddr is the port blocks of one public address, sorted by low port
// then newest first; replaced, never modified, except for a block's end.
type natAddr struct {
	blocks  []*natBlock
	maxSpan uint16 // the widest block, to bound the search
}

type natBlock struct {
	lo, hi  uint16
	private netip.Addr
	from    int64
	to      atomic.Int64 // open while allocated
}

// NATStats counts port blocks and events.
type NATStats struct {
	Open, Closed               int64 // port blocks held
	Allocations, Deallocations int64
	// Unmatched are de-allocations of blocks never seen allocated; Ignored
	// are events without the fields the rule needs or of other types.
	Unmatched, Ignored int64
}

// NATStats returns the NAT counters.
func (t *Table) NATStats() NATStats {
	n := &t.nat
	return NATStats{Open: n.blocks[0].Load(), Closed: n.blocks[1].Load(),
		Allocations: n.allocs.Load(), Deallocations: n.deallocs.Load(),
		Unmatched: n.unmatched.Load(), Ignored: n.ignored.Load()}
}

var errNATEvent = errors.New("subscriber: not a port-block event with an IPv4 public address, a private address, a port range and a time")

// ApplyNAT applies a NAT port-block event.
//
// The rule: an allocation (natEvent 16) gives ports PortLow..PortHigh of
// the public address to the private address from the event's time on; it
// ends an overlapping block of that public address still open (its
// de-allocation was lost), and ends itself where a later block already
// known begins. A de-allocation (natEvent 17) ends the open block with the
// same ports and private address at its time. Ended blocks are kept for
// the history, like stopped sessions. Only IPv4 public addresses are
// indexed (NAT44, NAT64). Other events (sessions, bindings, quota) are
// counted as ignored and change nothing.
func (t *Table) ApplyNAT(ev NATEvent) error {
	n := &t.nat
	pub := ev.Public.Unmap()
	if (ev.Event != NATPortBlockAllocation && ev.Event != NATPortBlockDeallocation) ||
		!pub.Is4() || !ev.Private.IsValid() || ev.Time <= 0 || ev.PortLow > ev.PortHigh {
		n.ignored.Add(1)
		return errNATEvent
	}
	t.advanceAtomic(ev.Time)
	key := u32FromAddr(pub)
	priv := ev.Private.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	cur := n.idx.get(key)
	if ev.Event == NATPortBlockDeallocation {
		n.deallocs.Add(1)
		if cur != nil {
			for _, b := range cur.blocks {
				if b.lo == ev.PortLow && b.hi == ev.PortHigh && b.private == priv && b.from <= ev.Time && ev.Time < b.to.Load() {
					n.end(b, ev.Time)
					return nil
				}
			}
		}
		n.unmatched.Add(1)
		return nil
	}
	n.allocs.Add(1)
	nb := &natBlock{lo: ev.PortLow, hi: ev.PortHigh, private: priv, from: ev.Time}
	nb.to.Store(open)
	next := &natAddr{maxSpan: ev.PortHigh - ev.PortLow}
	if cur != nil {
		for _, b := range cur.blocks {
			if b.lo == nb.lo && b.hi == nb.hi && b.private == priv && b.from == nb.from {
				return nil // the same event again
			}
		}
		next.blocks = make([]*natBlock, 0, len(cur.blocks)+1)
		next.blocks = append(next.blocks, cur.blocks...)
		next.maxSpan = max(next.maxSpan, cur.maxSpan)
		for _, b := range cur.blocks {
			if b.lo > nb.hi || b.hi < nb.lo {
				continue
			}
			if b.from < nb.from {
				n.end(b, nb.from)
			} else if b.from < nb.to.Load() {
				nb.to.Store(b.from) // a later allocation already known
			}
		}
	}
	if nb.to.Load() == open {
		n.blocks[0].Add(1)
	} else {
		n.blocks[1].Add(1)
	}
	next.blocks = append(next.blocks, nb)
	slices.SortFunc(next.blocks, func(a, b *natBlock) int {
		if a.lo != b.lo {
			return int(a.lo) - int(b.lo)
		}
		switch {
		case a.from > b.from:
			return -1
		case a.from < b.from:
			return 1
		}
		return 0
	})
	n.idx.set(key, next)
	n.any.Store(true)
	if c := t.clock.Load(); c-n.pruned >= pruneEvery {
		n.prune(c - t.history)
		n.pruned = c
	}
	return nil
}

// end ends block b at e if that is earlier than its end now.
func (n *natTable) end(b *natBlock, e int64) {
	e = max(e, b.from)
	cur := b.to.Load()
	if e >= cur {
		return
	}
	if cur == open {
		n.blocks[0].Add(-1)
		n.blocks[1].Add(1)
	}
	b.to.Store(e)
}

// prune drops the blocks that ended at or before cutoff. The caller holds
// n.mu.
func (n *natTable) prune(cutoff int64) {
	type change struct {
		key uint32
		a   *natAddr
	}
	var changes []change
	n.idx.all(func(k uint32, a *natAddr) {
		drop := 0
		for _, b := range a.blocks {
			if b.to.Load() <= cutoff {
				drop++
			}
		}
		if drop == 0 {
			return
		}
		next := &natAddr{}
		for _, b := range a.blocks {
			if b.to.Load() <= cutoff {
				continue
			}
			next.blocks = append(next.blocks, b)
			next.maxSpan = max(next.maxSpan, b.hi-b.lo)
		}
		n.blocks[1].Add(-int64(drop))
		if len(next.blocks) == 0 {
			next = nil
		}
		changes = append(changes, change{k, next})
	})
	for _, c := range changes {
		n.idx.set(c.key, c.a)
	}
}

// lookup returns the private address that held port of public address pub
// at time at.
func (n *natTable) lookup(pub uint32, port uint16, at int64) (netip.Addr, bool) {
	a := n.idx.get(pub)
	if a == nil {
		return netip.Addr{}, false
	}
	bs := a.blocks
	// The last block with lo <= port, then back over those that may still
	// reach port.
	lo, hi := 0, len(bs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bs[m].lo <= port {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := lo - 1; i >= 0 && port-bs[i].lo <= a.maxSpan; i-- {
		b := bs[i]
		if port <= b.hi && at >= b.from && at < b.to.Load() {
			return b.private, true
		}
	}
	return netip.Addr{}, false
}

// advanceAtomic moves the clock forward without the writer lock.
func (t *Table) advanceAtomic(at int64) {
	for {
		c := t.clock.Load()
		if at <= c || t.clock.CompareAndSwap(c, at) {
			return
		}
	}
}

// HasNAT says whether any NAT port block was ever applied: until then a
// flow's ports and protocol play no part in attribution.
func (t *Table) HasNAT() bool { return t.nat.any.Load() }

// natProtocol says whether a flow's ports are NAPT-translated ports: TCP,
// UDP, DCCP and SCTP. ICMP identifiers are not exported as ports by flows.
func natProtocol(proto uint8) bool { return proto == 6 || proto == 17 || proto == 33 || proto == 132 }

// Attribute returns the session that held address a at time at, and how
// it was found: the session holding a itself; or, when none did, a is
// IPv4, proto is TCP, UDP, DCCP or SCTP and a NAT port block of a held
// port at that time, the session that held the block's private address
// then. It takes no lock and does not allocate.
func (t *Table) Attribute(a netip.Addr, port uint16, proto uint8, at int64) (*Session, Via) {
	a = a.Unmap()
	var k uint32
	if a.Is4() {
		// Most addresses of a flow's far side are in no subscriber pool:
		// the /16 bitmap answers them without a call.
		k = u32FromAddr(a)
		if t.v4.mayHold(k) {
			if s := t.lookupV4(k, at); s != nil {
				return s, ViaSession
			}
		}
	} else if s := t.lookupV6(a, at); s != nil {
		return s, ViaSession
	}
	if !a.Is4() || !t.nat.any.Load() || !natProtocol(proto) || !t.nat.idx.mayHold(k) {
		return nil, ViaNone
	}
	priv, ok := t.nat.lookup(k, port, at)
	if !ok {
		return nil, ViaNone
	}
	if s := t.Lookup(priv, at); s != nil {
		return s, ViaNAT
	}
	return nil, ViaNone
}

// LookupNAT returns the private address that held port of the public IPv4
// address pub at time at, from the port blocks.
func (t *Table) LookupNAT(pub netip.Addr, port uint16, at int64) (netip.Addr, bool) {
	pub = pub.Unmap()
	if !pub.Is4() {
		return netip.Addr{}, false
	}
	return t.nat.lookup(u32FromAddr(pub), port, at)
}
