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
// The hot fields come first and the strings, then the IPv6 prefixes, are
// stored inline, right after the struct in the same allocation (see
// newSession): a lookup that hits touches the index slot and this one
// object, and the strings' address does not depend on a pointer loaded
// from it, so both of its cache lines are fetched at once. start and end
// change under the Table's writer lock and are read atomically, as are
// flags and the links to older holders; everything else is set before the
// session is published and never changes (a change of identity, of IPv4
// address or a new IPv6 prefix publishes a new Session in its place).
type Session struct {
	start, end atomic.Int64            // Unix ns; [start, end) is held, end == open while open
	olderV4    atomic.Pointer[Session] // the previous holder of v4, older start
	older6     atomic.Pointer[v6Older] // the previous holders of the IPv6 prefixes, if any
	v4         uint32                  // Framed-IP-Address, 0 if none
	nas        uint32                  // index of the NAS in the Table
	userLen    uint8
	idLen      uint8
	csidLen    uint8
	source     Source
	flags      atomic.Uint32 // changed by the writer, read by state saving; the prefix count in v6Shift
}

// sessionSize is where a Session's strings begin, from its address.
const sessionSize = unsafe.Sizeof(Session{})

const (
	flagStartKnown = 1 << iota // start is a Start record's time, not derived
	flagStopped                // ended by its own Stop (not closed by another event)
	flagGone                   // replaced or pruned: no longer in the indexes

	// The number of inline IPv6 prefixes, set by newSession, is kept in
	// the flags' high bits: the struct has no byte to spare.
	v6Shift = 24
	v6Mask  = 0xff << v6Shift
)

// setFlags sets the flags, keeping the prefix count.
func (s *Session) setFlags(f uint32) { s.flags.Store(f&^v6Mask | s.flags.Load()&v6Mask) }

// v6Bytes is the inline encoding of the session's prefixes (v6Key).
func (s *Session) v6Bytes() []byte {
	n := int(s.flags.Load() >> v6Shift)
	if n == 0 {
		return nil
	}
	p := unsafe.Add(unsafe.Pointer(s), sessionSize+uintptr(s.userLen)+uintptr(s.idLen)+uintptr(s.csidLen))
	size := 0
	for range n {
		size += 9
		if *(*byte)(unsafe.Add(p, size-9)) > 64 {
			size += 8
		}
	}
	return unsafe.Slice((*byte)(p), size)
}

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
	var buf [MaxPrefixes]v6Key
	keys := s.v6Keys(&buf)
	if len(keys) == 0 {
		return nil
	}
	ps := make([]netip.Prefix, len(keys))
	for i, k := range keys {
		ps[i] = k.prefix()
	}
	return ps
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

// newSession allocates a Session with room for its strings and prefixes
// inline and copies them in. Each string must be at most MaxStringLen
// bytes, and there must be at most MaxPrefixes keys.
func newSession(user, id, csid string, keys []v6Key) *Session {
	var s *Session
	var buf []byte
	n := len(user) + len(id) + len(csid)
	for _, k := range keys {
		n += k.encodedLen()
	}
	switch {
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
	b := append(append(append(buf[:0], user...), id...), csid...)
	for _, k := range keys {
		b = k.appendTo(b)
	}
	s.userLen, s.idLen, s.csidLen = uint8(len(user)), uint8(len(id)), uint8(len(csid))
	s.flags.Store(uint32(len(keys)) << v6Shift)
	return s
}

func addrFromU32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func u32FromAddr(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
