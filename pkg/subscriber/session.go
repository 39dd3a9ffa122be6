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
// The hot fields come first and the strings are stored inline, in the same
// allocation: a lookup that hits touches the index slot and this one
// object. start and end change under the Table's writer lock and are read
// atomically, as are flags; everything else is set before the session is
// published and never changes (a change of identity or of IPv4 address
// publishes a new Session in its place).
type Session struct {
	start, end atomic.Int64            // Unix ns; [start, end) is held, end == open while open
	olderV4    atomic.Pointer[Session] // the previous holder of v4, older start
	data       *byte                   // user, then session id, then calling station id (inline)
	v6         atomic.Pointer[v6Binding]
	v4         uint32 // Framed-IP-Address, 0 if none
	nas        uint32 // index of the NAS in the Table
	userLen    uint8
	idLen      uint8
	csidLen    uint8
	source     Source
	flags      atomic.Uint32 // changed by the writer, read by state saving
}

const (
	flagStartKnown = 1 << iota // start is a Start record's time, not derived
	flagStopped                // ended by its own Stop (not closed by another event)
	flagGone                   // replaced or pruned: no longer in the indexes
)

// User is the session's User-Name.
func (s *Session) User() string { return s.str(0, s.userLen) }

// SessionID is the session's Acct-Session-Id.
func (s *Session) SessionID() string { return s.str(int(s.userLen), s.idLen) }

// CallingStationID is the session's Calling-Station-Id.
func (s *Session) CallingStationID() string {
	return s.str(int(s.userLen)+int(s.idLen), s.csidLen)
}

func (s *Session) str(off int, n uint8) string {
	if n == 0 {
		return ""
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(s.data), off)), int(n))
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
	if b := s.v6.Load(); b != nil {
		return b.prefixes
	}
	return nil
}

// holds reports whether s held its addresses at t.
func (s *Session) holds(t int64) bool { return t >= s.start.Load() && t < s.end.Load() }

// Inline buffer sizes: a Session (56 bytes) plus its strings rounded to the
// Go allocator's size classes, so that the three strings cost no more than
// their bytes and a little padding.
type (
	session24  struct{ Session; b [24]byte }
	session40  struct{ Session; b [40]byte }
	session56  struct{ Session; b [56]byte }
	session72  struct{ Session; b [72]byte }
	session88  struct{ Session; b [88]byte }
	session104 struct{ Session; b [104]byte }
	session136 struct{ Session; b [136]byte }
	session200 struct{ Session; b [200]byte }
	session264 struct{ Session; b [264]byte }
	session456 struct{ Session; b [456]byte }
	session768 struct{ Session; b [3 * MaxStringLen]byte }
)

// newSession allocates a Session with room for its strings inline and
// copies them in. Each string must be at most MaxStringLen bytes.
func newSession(user, id, csid string) *Session {
	n := len(user) + len(id) + len(csid)
	var s *Session
	var buf []byte
	switch {
	case n <= 24:
		x := new(session24)
		s, buf = &x.Session, x.b[:]
	case n <= 40:
		x := new(session40)
		s, buf = &x.Session, x.b[:]
	case n <= 56:
		x := new(session56)
		s, buf = &x.Session, x.b[:]
	case n <= 72:
		x := new(session72)
		s, buf = &x.Session, x.b[:]
	case n <= 88:
		x := new(session88)
		s, buf = &x.Session, x.b[:]
	case n <= 104:
		x := new(session104)
		s, buf = &x.Session, x.b[:]
	case n <= 136:
		x := new(session136)
		s, buf = &x.Session, x.b[:]
	case n <= 200:
		x := new(session200)
		s, buf = &x.Session, x.b[:]
	case n <= 264:
		x := new(session264)
		s, buf = &x.Session, x.b[:]
	case n <= 456:
		x := new(session456)
		s, buf = &x.Session, x.b[:]
	default:
		x := new(session768)
		s, buf = &x.Session, x.b[:]
	}
	copy(buf, user)
	copy(buf[len(user):], id)
	copy(buf[len(user)+len(id):], csid)
	s.data = &buf[0]
	s.userLen, s.idLen, s.csidLen = uint8(len(user)), uint8(len(id)), uint8(len(csid))
	return s
}

// v6Binding lists a session's IPv6 prefixes and its link in each
// prefix's chain. It is replaced, never modified, once published.
type v6Binding struct {
	prefixes []netip.Prefix
	links    []*v6Link
}

// v6Link is one session's place in the chain of sessions that held an
// IPv6 prefix, newest first.
type v6Link struct {
	s     atomic.Pointer[Session]
	older atomic.Pointer[v6Link]
}

func addrFromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func u32FromAddr(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
