package subscriber

import (
	"math"
	"net/netip"
	"sync/atomic"
	"unsafe"
)

// open is the end time of a session still open.
const open = math.MaxInt64

// Session is one accounting session. Lookup returns it; its strings are
// immutable and stay valid as long as the caller holds the Session.
//
// The hot fields come first and the strings are stored inline, right after
// the struct in the same allocation (see newSession): a lookup that hits
// touches the index slot and this one object, and the strings' address
// does not depend on a pointer loaded from it, so both of its cache lines
// are fetched at once. start and end change under the Table's writer lock
// and are read atomically, as are flags; everything else is set before the
// session is published and never changes (a change of identity or of IPv4
// address publishes a new Session in its place).
type Session struct {
	start, end atomic.Int64            // Unix ns; [start, end) is held, end == open while open
	olderV4    atomic.Pointer[Session] // the previous holder of v4, older start
	v6         atomic.Pointer[v6Binding]
	v4         uint32 // Framed-IP-Address, 0 if none
	nas        uint32 // index of the NAS in the Table
	userLen    uint8
	idLen      uint8
	csidLen    uint8
	source     Source
	flags      atomic.Uint32 // changed by the writer, read by state saving
}

// sessionSize is where a Session's strings begin, from its address.
const sessionSize = unsafe.Sizeof(Session{})

const (
	flagStartKnown = 1 << iota // start is a Start record's time, not derived
	flagStopped                // ended by its own Stop (not closed by another event)
	flagGone                   // replaced or pruned: no longer in the indexes
)

// User is the session's User-Name.
func (s *Session) User() string { return s.str(0, s.userLen) }

// SessionID is the session's Acct-Session-Id.
func (s *Session) SessionID() string { return s.str(uintptr(s.userLen), s.idLen) }

// CallingStationID is the session's Calling-Station-Id.
func (s *Session) CallingStationID() string {
	return s.str(uintptr(s.userLen)+uintptr(s.idLen), s.csidLen)
}

// str is n bytes of the inline strings from off. Every Session is the
// first field of one of the sessionN structs below, so the bytes after it
// are that struct's buffer.
func (s *Session) str(off uintptr, n uint8) string {
	if n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(s), sessionSize+off)), int(n))
}

// Start is when the session began, in Unix nanoseconds.
func (s *Session) Start() int64 { return s.start.Load() }

// End is when the session ended, in Unix nanoseconds; ok is false while it
// is open.
func (s *Session) End() (end int64, ok bool) {
	e := s.end.Load()
	return e, e != open
}

// Source is the source of the record that created the session.
func (s *Session) Source() Source { return s.source }

// FramedIP is the session's IPv4 address, if any.
func (s *Session) FramedIP() (netip.Addr, bool) {
	if s.v4 == 0 {
		return netip.Addr{}, false
	}
	return addrFromU32(s.v4), true
}

// Prefixes are the session's IPv6 prefixes.
func (s *Session) Prefixes() []netip.Prefix {
	b := s.v6.Load()
	if b == nil {
		return nil
	}
	ps := make([]netip.Prefix, len(b.links))
	for i, l := range b.links {
		ps[i] = l.prefix
	}
	return ps
}

// holdsPrefix reports whether s holds p.
func (s *Session) holdsPrefix(p netip.Prefix) bool {
	if b := s.v6.Load(); b != nil {
		for _, l := range b.links {
			if l.prefix == p {
				return true
			}
		}
	}
	return false
}

// Inline buffer sizes: a Session (48 bytes) plus its strings, each struct
// exactly one of the Go allocator's size classes, so that the three
// strings cost their bytes and a little padding. A typical session (a
// 20-byte user name, a 16-byte id, a 17-byte MAC) takes 112 bytes.
type (
	session16 struct {
		Session
		b [16]byte
	}
	session32 struct {
		Session
		b [32]byte
	}
	session48 struct {
		Session
		b [48]byte
	}
	session64 struct {
		Session
		b [64]byte
	}
	session80 struct {
		Session
		b [80]byte
	}
	session112 struct {
		Session
		b [112]byte
	}
	session160 struct {
		Session
		b [160]byte
	}
	session208 struct {
		Session
		b [208]byte
	}
	session272 struct {
		Session
		b [272]byte
	}
	session464 struct {
		Session
		b [464]byte
	}
	session848 struct {
		Session
		b [848]byte
	}
)

// newSession allocates a Session with room for its strings inline and
// copies them in. Each string must be at most MaxStringLen bytes.
func newSession(user, id, csid string) *Session {
	var s *Session
	var buf []byte
	switch n := len(user) + len(id) + len(csid); {
	case n <= 16:
		x := new(session16)
		s, buf = &x.Session, x.b[:]
	case n <= 32:
		x := new(session32)
		s, buf = &x.Session, x.b[:]
	case n <= 48:
		x := new(session48)
		s, buf = &x.Session, x.b[:]
	case n <= 64:
		x := new(session64)
		s, buf = &x.Session, x.b[:]
	case n <= 80:
		x := new(session80)
		s, buf = &x.Session, x.b[:]
	case n <= 112:
		x := new(session112)
		s, buf = &x.Session, x.b[:]
	case n <= 160:
		x := new(session160)
		s, buf = &x.Session, x.b[:]
	case n <= 208:
		x := new(session208)
		s, buf = &x.Session, x.b[:]
	case n <= 272:
		x := new(session272)
		s, buf = &x.Session, x.b[:]
	case n <= 464:
		x := new(session464)
		s, buf = &x.Session, x.b[:]
	default:
		x := new(session848)
		s, buf = &x.Session, x.b[:]
	}
	copy(buf, user)
	copy(buf[len(user):], id)
	copy(buf[len(user)+len(id):], csid)
	s.userLen, s.idLen, s.csidLen = uint8(len(user)), uint8(len(id)), uint8(len(csid))
	return s
}

// v6Binding is a session's place in the chain of each IPv6 prefix it
// holds. It is replaced, never modified, once published.
type v6Binding struct{ links []*v6Link }

// v6Link is one session's place in the chain of sessions that held an
// IPv6 prefix, newest first.
type v6Link struct {
	s      atomic.Pointer[Session]
	older  atomic.Pointer[v6Link]
	prefix netip.Prefix
}

func addrFromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func u32FromAddr(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
