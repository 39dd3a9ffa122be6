package subscriber

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// day is the date of every time in the scripts below.
var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// at reads "08:00:00" or "08:00:00.5" as a time on day, in Unix ns.
func at(tb testing.TB, s string) int64 {
	tb.Helper()
	d, err := time.Parse("15:04:05.999999999", s)
	if err != nil {
		tb.Fatalf("time %q: %v", s, err)
	}
	return day.Add(time.Duration(d.Hour())*time.Hour + time.Duration(d.Minute())*time.Minute +
		time.Duration(d.Second())*time.Second + time.Duration(d.Nanosecond())).UnixNano()
}

var scriptAttrs = map[string]string{
	"nas": "NAS-IP-Address", "nas6": "NAS-IPv6-Address", "nasid": "NAS-Identifier",
	"id": "Acct-Session-Id", "user": "User-Name", "csid": "Calling-Station-Id",
	"ip": "Framed-IP-Address", "pfx": "Framed-IPv6-Prefix", "dpfx": "Delegated-IPv6-Prefix", "ip6": "Framed-IPv6-Address",
	"st": "Acct-Session-Time", "delay": "Acct-Delay-Time",
}

// record builds a record from "Status key=value ...": the keys above, at=
// (Event-Timestamp, HH:MM:SS on day), ts= (the record's own time,
// HH:MM:SS). nas defaults to 192.0.2.1.
func record(tb testing.TB, line string) *Record {
	tb.Helper()
	f := strings.Fields(line)
	r := &Record{}
	if err := r.SetAttr("Acct-Status-Type", f[0]); err != nil {
		tb.Fatal(err)
	}
	nas := false
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "at":
			r.EventTime = at(tb, v)
		case "ts":
			r.RecordTime = at(tb, v)
		case "src":
			r.Source = map[string]Source{"detail": SourceDetail, "radius": SourceRADIUS, "kafka": SourceKafka}[v]
		default:
			name, ok := scriptAttrs[k]
			if !ok {
				tb.Fatalf("unknown key %q in %q", k, line)
			}
			nas = nas || strings.HasPrefix(k, "nas")
			if err := r.SetAttr(name, v); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if !nas {
		r.NASIP = netip.MustParseAddr("192.0.2.1")
	}
	return r
}

// describe is what a lookup found: "-", "user", or "user#id#csid" with
// detail.
func describe(s *Session, v Via, detail bool) string {
	if s == nil {
		return "-"
	}
	out := s.User()
	if detail {
		out += "#" + s.SessionID() + "#" + s.CallingStationID()
	}
	if v == ViaNAT {
		out += " via nat"
	}
	return out
}

// runScript applies the lines of a script to t: records, "? ADDR TIME ->
// WANT" lookups (WANT "-" for none, "user" or "user#id#csid"), "? ADDR
// PORT TIME -> WANT" lookups through NAT, "nat 16|17 PRIV PUB LO-HI TIME"
// NAT events, and "prune".
func runScript(t *testing.T, tbl *Table, script string) {
	t.Helper()
	for n, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("line %d %q", n+1, line)
		switch {
		case line == "prune":
			tbl.Prune()
		case strings.HasPrefix(line, "nat "):
			f := strings.Fields(line)
			var ev NATEvent
			fmt.Sscan(f[1], &ev.Event)
			ev.Private, ev.Public = netip.MustParseAddr(f[2]), netip.MustParseAddr(f[3])
			fmt.Sscanf(f[4], "%d-%d", &ev.PortLow, &ev.PortHigh)
			ev.Time = at(t, f[5])
			if err := tbl.ApplyNAT(ev); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		case strings.HasPrefix(line, "?"):
			q, want, _ := strings.Cut(strings.TrimPrefix(line, "?"), "->")
			f := strings.Fields(q)
			want = strings.TrimSpace(want)
			var s *Session
			var via Via
			if len(f) == 3 {
				var port uint16
				fmt.Sscan(f[1], &port)
				s, via = tbl.Attribute(netip.MustParseAddr(f[0]), port, 6, at(t, f[2]))
			} else {
				s, via = tbl.Attribute(netip.MustParseAddr(f[0]), 0, 0, at(t, f[1]))
			}
			if got := describe(s, via, strings.Contains(want, "#")); got != want {
				t.Errorf("%s: got %q", where, got)
			}
		default:
			if err := tbl.Apply(record(t, line)); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
}

// TestTimeRules checks the session rules of the package doc, one script
// per rule, at the edges of each interval.
func TestTimeRules(t *testing.T) {
	for _, tc := range []struct{ name, script string }{
		{"start and stop: [start, stop)", `
			Start id=s1 user=alice ip=100.64.0.1 csid=00-11-22-33-44-55 at=08:00:00
			? 100.64.0.1 07:59:59.999 -> -
			? 100.64.0.1 08:00:00 -> alice#s1#00-11-22-33-44-55
			Stop id=s1 user=alice ip=100.64.0.1 st=3600 at=09:00:00
			? 100.64.0.1 08:59:59.999999999 -> alice
			? 100.64.0.1 09:00:00 -> -
			? 100.64.0.2 08:30:00 -> -`},
		{"reassignment: late flows keep the old holder", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Stop id=s1 user=alice ip=100.64.0.1 at=09:00:00
			Start id=s2 user=bob ip=100.64.0.1 at=09:05:00
			? 100.64.0.1 08:59:00 -> alice
			? 100.64.0.1 09:02:00 -> -
			? 100.64.0.1 09:05:00 -> bob
			Interim-Update id=s2 user=bob ip=100.64.0.1 st=1800 at=09:35:00
			? 100.64.0.1 08:30:00 -> alice
			? 100.64.0.1 10:00:00 -> bob`},
		{"a new session on the address closes the old (lost Stop)", `
			Start id=s1 user=alice ip=100.64.0.1 ip6=2001:db8::1 at=08:00:00
			Start id=s2 user=bob ip=100.64.0.1 at=09:00:00
			? 100.64.0.1 08:59:59 -> alice
			? 100.64.0.1 09:00:00 -> bob
			# the whole session ended, its other addresses too
			? 2001:db8::1 08:59:59 -> alice
			? 2001:db8::1 09:00:00 -> -`},
		{"records out of order: the newer session still closes the older", `
			Start id=s2 user=bob ip=100.64.0.1 at=09:00:00
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			? 100.64.0.1 08:30:00 -> alice
			? 100.64.0.1 09:00:00 -> bob
			Stop id=s1 user=alice ip=100.64.0.1 at=09:30:00
			? 100.64.0.1 09:10:00 -> bob`},
		{"Interim-Update without Start opens at event time minus Acct-Session-Time", `
			Interim-Update id=s1 user=alice ip=100.64.0.1 st=3600 at=09:00:00
			? 100.64.0.1 07:59:59 -> -
			? 100.64.0.1 08:00:00 -> alice
			? 100.64.0.1 12:00:00 -> alice`},
		{"Interim-Update without Acct-Session-Time opens at its time; a later one moves the start back", `
			Interim-Update id=s1 user=alice ip=100.64.0.1 at=09:00:00
			? 100.64.0.1 08:30:00 -> -
			? 100.64.0.1 09:00:00 -> alice
			Interim-Update id=s1 user=alice ip=100.64.0.1 st=7200 at=10:00:00
			? 100.64.0.1 08:30:00 -> alice`},
		{"Stop without Start", `
			Stop id=s1 user=alice ip=100.64.0.1 st=1800 at=09:00:00
			? 100.64.0.1 08:29:59 -> -
			? 100.64.0.1 08:30:00 -> alice
			? 100.64.0.1 09:00:00 -> -`},
		{"a Start after the Interim-Update that opened the session is authoritative", `
			Interim-Update id=s1 user=alice ip=100.64.0.1 st=600 at=09:00:00
			Start id=s1 user=alice ip=100.64.0.1 at=08:49:58
			? 100.64.0.1 08:49:58 -> alice
			? 100.64.0.1 08:49:57 -> -`},
		{"Accounting-Off closes the NAS's sessions, not another NAS's", `
			Start nas=192.0.2.1 id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Start nas=192.0.2.1 id=s2 user=bob ip=100.64.0.2 at=08:10:00
			Start nas=192.0.2.2 id=s1 user=carol ip=100.64.1.1 at=08:00:00
			Accounting-Off nas=192.0.2.1 at=10:00:00
			? 100.64.0.1 09:59:59 -> alice
			? 100.64.0.1 10:00:00 -> -
			? 100.64.0.2 10:00:00 -> -
			? 100.64.1.1 11:00:00 -> carol`},
		{"Accounting-On spares sessions that began after it (records out of order)", `
			Start nas=192.0.2.1 id=s9 user=dave ip=100.64.0.9 at=10:00:05
			Start nas=192.0.2.1 id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Accounting-On nas=192.0.2.1 at=10:00:00
			? 100.64.0.1 10:00:00 -> -
			? 100.64.0.9 10:00:05 -> dave`},
		{"the NAS is NAS-IP-Address, else NAS-IPv6-Address, else NAS-Identifier", `
			Start nas=192.0.2.1 id=x user=alice ip=100.64.0.1 at=08:00:00
			Start nas6=2001:db8::a id=x user=bob ip=100.64.0.2 at=08:00:00
			Start nasid=bng-3 id=x user=carol ip=100.64.0.3 at=08:00:00
			Stop nasid=bng-3 id=x user=carol ip=100.64.0.3 at=09:00:00
			Accounting-Off nas6=2001:db8::a at=08:30:00
			? 100.64.0.1 09:30:00 -> alice
			? 100.64.0.2 08:30:00 -> -
			? 100.64.0.3 09:00:00 -> -`},
		{"IPv6: Framed-IPv6-Prefix, Delegated-IPv6-Prefix, Framed-IPv6-Address, longest prefix", `
			Start id=s1 user=alice pfx=2001:db8:1::/64 dpfx=2001:db8:100::/56 at=08:00:00
			Start id=s2 user=bob ip6=2001:db8:100:7::1 at=08:00:00
			? 2001:db8:1::1234 08:00:00 -> alice
			? 2001:db8:100:ff::1 08:00:00 -> alice
			? 2001:db8:100:7::1 08:00:00 -> bob
			? 2001:db8:100:7::2 08:00:00 -> alice
			? 2001:db8:2::1 08:00:00 -> -
			Stop id=s2 user=bob at=09:00:00
			# the /128 is free after bob's Stop: the /56 covering it answers
			? 2001:db8:100:7::1 09:30:00 -> alice
			? 2001:db8:100:7::1 08:30:00 -> bob`},
		{"IPv6 prefix reassigned", `
			Start id=s1 user=alice dpfx=2001:db8:100::/56 at=08:00:00
			Stop id=s1 user=alice dpfx=2001:db8:100::/56 at=09:00:00
			Start id=s2 user=bob dpfx=2001:db8:100::/56 at=09:10:00
			? 2001:db8:100::1 08:59:59 -> alice
			? 2001:db8:100::1 09:05:00 -> -
			? 2001:db8:100::1 09:10:00 -> bob`},
		{"history: stopped sessions kept until the newest event time minus the history", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Stop id=s1 user=alice ip=100.64.0.1 at=09:00:00
			Start id=s9 user=zed ip=100.64.9.9 at=10:59:59
			prune
			? 100.64.0.1 08:30:00 -> alice
			Interim-Update id=s9 user=zed ip=100.64.9.9 at=11:00:00
			prune
			? 100.64.0.1 08:30:00 -> -
			# open sessions are never pruned
			? 100.64.9.9 11:00:00 -> zed`},
		{"event time: Event-Timestamp, else the record's time minus Acct-Delay-Time", `
			Start id=s1 user=alice ip=100.64.0.1 ts=08:00:10 delay=10
			? 100.64.0.1 07:59:59 -> -
			? 100.64.0.1 08:00:00 -> alice
			Stop id=s1 user=alice ip=100.64.0.1 at=09:00:00 ts=09:00:30 delay=30
			? 100.64.0.1 08:59:59 -> alice
			? 100.64.0.1 09:00:00 -> -`},
		{"duplicates through several sources change nothing, even after the Stop", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00 src=detail
			Stop id=s1 user=alice ip=100.64.0.1 st=0 at=08:00:00 src=detail
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00 src=radius
			Stop id=s1 user=alice ip=100.64.0.1 st=0 at=08:00:00 src=kafka
			? 100.64.0.1 08:00:00 -> -
			Start id=s2 user=bob ip=100.64.0.1 at=08:10:00
			Start id=s2 user=bob ip=100.64.0.1 at=08:10:00 src=radius
			Interim-Update id=s2 user=bob ip=100.64.0.1 st=600 at=08:20:00
			Interim-Update id=s2 user=bob ip=100.64.0.1 st=600 at=08:20:00 src=kafka
			? 100.64.0.1 08:10:00 -> bob
			? 100.64.0.1 08:09:59 -> -`},
		{"a session id reused after the old session ended is a new session", `
			Start id=00000001 user=alice ip=100.64.0.1 at=08:00:00
			Accounting-On at=09:00:00
			Start id=00000001 user=bob ip=100.64.0.7 at=09:01:00
			? 100.64.0.1 08:30:00 -> alice
			? 100.64.0.1 09:30:00 -> -
			? 100.64.0.7 09:30:00 -> bob
			Stop id=00000001 user=bob ip=100.64.0.7 at=10:00:00
			# reused and its Start lost: Acct-Session-Time says it began after the old one ended
			Interim-Update id=00000001 user=carol ip=100.64.0.8 st=60 at=11:00:00
			? 100.64.0.8 10:59:00 -> carol
			? 100.64.0.7 09:59:59 -> bob
			# but a record of the old session with a time before its end changes nothing
			Interim-Update id=00000001 user=bob ip=100.64.0.7 st=3000 at=09:51:00
			? 100.64.0.7 09:59:59 -> bob
			? 100.64.0.8 10:59:00 -> carol
			# the late Start of a session older than the id's newest goes into the history
			Start id=00000001 user=erin ip=100.64.0.5 at=07:00:00
			Start id=00000001 user=erin ip=100.64.0.5 at=07:00:00
			? 100.64.0.5 07:00:00 -> erin
			? 100.64.0.5 10:59:00 -> -
			? 100.64.0.8 10:59:00 -> carol`},
		{"a late Interim-Update of an ended session changes nothing", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Stop id=s1 user=alice ip=100.64.0.1 st=3600 at=09:00:00
			Interim-Update id=s1 user=alice ip=100.64.0.1 st=4000 at=09:06:40
			? 100.64.0.1 09:00:00 -> -`},
		{"attributes filled in later apply to the whole session", `
			Start id=s1 user=alice at=08:00:00
			Interim-Update id=s1 user=alice ip=100.64.0.1 csid=491701234567 st=300 at=08:05:00
			? 100.64.0.1 08:00:00 -> alice#s1#491701234567
			Interim-Update id=s1 user=alice@realm ip=100.64.0.1 st=600 at=08:10:00
			? 100.64.0.1 08:00:00 -> alice@realm#s1#491701234567
			Stop id=s1 user=alice@realm ip=100.64.0.1 st=900 at=08:15:00
			? 100.64.0.1 08:14:59 -> alice@realm`},
		{"a new Framed-IP-Address splits the session at the record's time", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Interim-Update id=s1 user=alice ip=100.64.0.2 st=600 at=08:10:00
			? 100.64.0.1 08:09:59 -> alice
			? 100.64.0.1 08:10:00 -> -
			? 100.64.0.2 08:09:59 -> -
			? 100.64.0.2 08:10:00 -> alice
			Stop id=s1 user=alice ip=100.64.0.2 st=1200 at=08:20:00
			? 100.64.0.2 08:20:00 -> -
			? 100.64.0.2 08:19:59 -> alice`},
		{"the records' clock, not the wall clock: 2019 works as today", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			? 100.64.0.1 08:00:00 -> alice`},
		{"NAT: public address and port to the private address, then its session", `
			Start id=s1 user=alice ip=100.64.0.1 at=08:00:00
			Start id=s2 user=bob ip=100.64.0.2 at=08:00:00
			nat 16 100.64.0.1 198.51.100.1 1024-1535 08:00:01
			nat 16 100.64.0.2 198.51.100.1 1536-2047 08:00:02
			? 198.51.100.1 1024 08:00:01 -> alice via nat
			? 198.51.100.1 1535 08:30:00 -> alice via nat
			? 198.51.100.1 1536 08:30:00 -> bob via nat
			? 198.51.100.1 1024 08:00:00.999 -> -
			? 198.51.100.1 2048 08:30:00 -> -
			? 198.51.100.2 1024 08:30:00 -> -
			nat 17 100.64.0.1 198.51.100.1 1024-1535 09:00:00
			? 198.51.100.1 1100 08:59:59 -> alice via nat
			? 198.51.100.1 1100 09:00:00 -> -
			# the block goes to bob, alice's late flows still find her
			nat 16 100.64.0.2 198.51.100.1 1024-1535 09:10:00
			? 198.51.100.1 1100 09:10:00 -> bob via nat
			? 198.51.100.1 1100 08:10:00 -> alice via nat
			# a lost de-allocation: the next allocation of those ports ends the block
			nat 16 100.64.0.1 198.51.100.1 1024-1279 10:00:00
			? 198.51.100.1 1100 10:00:00 -> alice via nat
			? 198.51.100.1 1400 10:00:00 -> -
			? 198.51.100.1 1400 09:59:59 -> bob via nat
			# a session on the public address itself wins
			Start id=s3 user=carol ip=198.51.100.1 at=11:00:00
			? 198.51.100.1 1100 11:00:00 -> carol`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.name, "2019") {
				day = time.Date(2019, 3, 31, 0, 0, 0, 0, time.UTC)
				defer func() { day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }()
			}
			tbl := New(Config{History: 2 * time.Hour})
			runScript(t, tbl, tc.script)
			checkInvariants(t, tbl)
		})
	}
}

// checkInvariants checks that the counters match the sessions held and
// that each address's chain is ordered and without overlaps.
func checkInvariants(t *testing.T, tbl *Table) {
	t.Helper()
	tbl.mu.Lock()
	defer tbl.mu.Unlock()
	var active, stopped [NumSources]int64
	seen := map[*Session]bool{}
	count := func(s *Session) {
		if seen[s] {
			return
		}
		seen[s] = true
		if s.end.Load() == open {
			active[s.source]++
		} else {
			stopped[s.source]++
		}
	}
	tbl.ids.all(count)
	tbl.v4.all(func(k uint32, head *Session) {
		var prev *Session
		for s := head; s != nil; s = s.olderV4.Load() {
			if s.flags.Load()&flagGone != 0 {
				t.Errorf("%v: gone session %q in chain", addrFromU32(k), s.SessionID())
			}
			if prev != nil && (s.start.Load() > prev.start.Load() || s.end.Load() > prev.start.Load()) {
				t.Errorf("%v: %q [%d,%d) overlaps or follows %q [%d,%d)", addrFromU32(k), s.SessionID(),
					s.start.Load(), s.end.Load(), prev.SessionID(), prev.start.Load(), prev.end.Load())
			}
			count(s)
			prev = s
		}
	})
	for _, s := range tbl.closed {
		if s.flags.Load()&flagGone == 0 {
			count(s)
		}
	}
	a, st := tbl.Counts()
	if a != active || st != stopped {
		t.Errorf("counts: active %v stopped %v, held %v and %v", a, st, active, stopped)
	}
}

// TestSessionLayout checks what the inline strings rely on: a Session is
// 48 bytes, and each wrapper's buffer starts right after it, in a struct
// the size of an allocator size class.
func TestSessionLayout(t *testing.T) {
	if sessionSize != 48 {
		t.Errorf("Session is %d bytes, want 48", sessionSize)
	}
	for _, c := range []struct {
		off, size uintptr
	}{
		{unsafe.Offsetof(session16{}.b), unsafe.Sizeof(session16{})},
		{unsafe.Offsetof(session64{}.b), unsafe.Sizeof(session64{})},
		{unsafe.Offsetof(session848{}.b), unsafe.Sizeof(session848{})},
	} {
		if c.off != sessionSize {
			t.Errorf("buffer at %d, want %d", c.off, sessionSize)
		}
	}
	for _, n := range []int{0, 1, 16, 17, 53, 112, 113, 759} {
		u := strings.Repeat("u", n/3)
		id := strings.Repeat("i", n/3)
		c := strings.Repeat("c", n-2*(n/3))
		s := newSession(u, id, c)
		if s.User() != u || s.SessionID() != id || s.CallingStationID() != c {
			t.Errorf("%d bytes: got %q %q %q", n, s.User(), s.SessionID(), s.CallingStationID())
		}
	}
}

// TestTableConcurrentChurn applies random accounting (Starts, Interim-
// Updates and Stops in any order, reused ids and addresses, IPv6 prefixes,
// Accounting-On, NAT blocks) from two writers while two readers look up
// and attribute without pause (run with -race), then checks the
// invariants: counters match the sessions held, chains are ordered
// without overlaps.
func TestTableConcurrentChurn(t *testing.T) {
	tbl := New(Config{History: time.Hour})
	t0 := day.UnixNano()
	var stop atomic.Bool
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for !stop.Load() {
				a := netip.AddrFrom4([4]byte{100, 64, 0, byte(rng.IntN(64))})
				at := t0 + int64(rng.IntN(10_000))*int64(time.Second)
				if s := tbl.Lookup(a, at); s != nil && (s.User() == "" || s.Start() > at) {
					t.Errorf("lookup %v at %d: %q from %d", a, at, s.User(), s.Start())
					return
				}
				tbl.Attribute(netip.AddrFrom4([4]byte{198, 51, 100, 1}), uint16(1024+rng.IntN(2048)), 6, at)
				tbl.Lookup(netip.MustParseAddr("2001:db8::1"), at)
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range 5_000 {
				var r Record
				r.Status = []uint32{StatusStart, StatusStart, StatusInterim, StatusStop, StatusStop, StatusOn}[rng.IntN(6)]
				r.NASIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + rng.IntN(3))})
				id := rng.IntN(200)
				r.SessionID = fmt.Sprint("s", id)
				r.User = fmt.Sprint("user", id%50)
				r.SetFramedIP(netip.AddrFrom4([4]byte{100, 64, 0, byte(rng.IntN(64))}))
				if rng.IntN(3) == 0 {
					r.AddPrefix(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.IntN(8))}), 48+8*rng.IntN(3)))
				}
				if rng.IntN(2) == 0 {
					r.SessionTime, r.HasSessionTime = uint32(rng.IntN(5000)), true
				}
				r.EventTime = t0 + int64(rng.IntN(10_000))*int64(time.Second)
				_ = tbl.Apply(&r)
				if rng.IntN(10) == 0 {
					lo := uint16(1024 + 512*rng.IntN(4))
					_ = tbl.ApplyNAT(NATEvent{Event: uint32(16 + rng.IntN(2)), Private: r.FramedIP,
						Public: netip.AddrFrom4([4]byte{198, 51, 100, 1}), PortLow: lo, PortHigh: lo + 511, Time: r.EventTime})
				}
			}
		}()
	}
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	tbl.Prune()
	checkInvariants(t, tbl)
}
