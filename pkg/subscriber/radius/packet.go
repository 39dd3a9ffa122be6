// Package radius is a RADIUS accounting server (RFC 2866) for session
// sources: it parses Accounting-Request packets, checks them against the
// shared secret, turns them into subscriber.Record values and answers
// Accounting-Response.
//
// A NAS can send it copies of its accounting (as a second accounting
// server), or FreeRADIUS can through its replicate module. Packets from
// outside the allowed networks, with another code, or whose Request
// Authenticator (or Message-Authenticator, when present) does not match
// the secret are dropped without an answer and counted by reason.
package radius

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // RFC 2866 defines the authenticators with MD5
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// Packet codes (RFC 2865, 2866).
const (
	CodeAccountingRequest  = 4
	CodeAccountingResponse = 5
)

// Sizes of RFC 2865 section 3.
const (
	HeaderLen    = 20
	MaxPacketLen = 4096
	authLen      = 16
)

// Attribute types this package reads.
const (
	attrUserName             = 1
	attrNASIPAddress         = 4
	attrFramedIPAddress      = 8
	attrVendorSpecific       = 26
	attrCallingStationID     = 31
	attrNASIdentifier        = 32
	attrAcctStatusType       = 40
	attrAcctDelayTime        = 41
	attrAcctSessionID        = 44
	attrAcctSessionTime      = 46
	attrEventTimestamp       = 55
	attrMessageAuthenticator = 80
	attrNASIPv6Address       = 95
	attrFramedIPv6Prefix     = 97
	attrDelegatedIPv6Prefix  = 123
	attrFramedIPv6Address    = 168
)

// Packet is a parsed RADIUS packet. Its slices alias the bytes it was
// parsed from.
type Packet struct {
	Code, ID      byte
	Authenticator [authLen]byte
	// Attributes are the raw attributes, checked to be well framed.
	Attributes []byte
	raw        []byte // the packet up to its Length field
}

// Errors of Parse.
var (
	ErrShort     = errors.New("radius: packet shorter than its header")
	ErrLength    = errors.New("radius: Length field beyond the datagram or out of range")
	ErrAttribute = errors.New("radius: attribute with a bad length")
)

// Parse reads a packet: the header and the framing of every attribute.
// Bytes after the Length field are padding and ignored (RFC 2865 3).
func Parse(b []byte) (Packet, error) {
	if len(b) < HeaderLen {
		return Packet{}, ErrShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < HeaderLen || n > MaxPacketLen || n > len(b) {
		return Packet{}, ErrLength
	}
	p := Packet{Code: b[0], ID: b[1], Attributes: b[HeaderLen:n], raw: b[:n]}
	copy(p.Authenticator[:], b[4:HeaderLen])
	for a := p.Attributes; len(a) > 0; {
		if len(a) < 2 || a[1] < 2 || int(a[1]) > len(a) {
			return Packet{}, fmt.Errorf("%w at byte %d", ErrAttribute, n-len(a))
		}
		a = a[a[1]:]
	}
	return p, nil
}

// Each calls fn for each attribute, in order. Vendor-Specific attributes
// come as they are (type 26, vendor id first).
func (p Packet) Each(fn func(typ byte, value []byte)) {
	for a := p.Attributes; len(a) >= 2; a = a[a[1]:] {
		fn(a[0], a[2:a[1]])
	}
}

// VerifyRequest checks the Request Authenticator of an
// Accounting-Request: MD5(Code, Identifier, Length, 16 zero octets,
// attributes, secret), RFC 2866 section 3.
func (p Packet) VerifyRequest(secret []byte) bool {
	h := md5.New() //nolint:gosec
	h.Write(p.raw[:4])
	h.Write(make([]byte, authLen))
	h.Write(p.Attributes)
	h.Write(secret)
	var sum [authLen]byte
	return subtle.ConstantTimeCompare(h.Sum(sum[:0]), p.Authenticator[:]) == 1
}

// VerifyMessageAuthenticator checks a Message-Authenticator (RFC 3579
// 3.2), if the packet has one: HMAC-MD5 keyed with the secret over the
// packet with the attribute's value zeroed and, for an
// Accounting-Request, the authenticator too (as FreeRADIUS signs them).
func (p Packet) VerifyMessageAuthenticator(secret []byte) (present, ok bool) {
	off := -1
	for a, i := p.Attributes, HeaderLen; len(a) >= 2; i, a = i+int(a[1]), a[a[1]:] {
		if a[0] == attrMessageAuthenticator {
			if a[1] != 2+authLen {
				return true, false
			}
			off = i + 2
			break
		}
	}
	if off < 0 {
		return false, true
	}
	b := append([]byte(nil), p.raw...)
	got := append([]byte(nil), b[off:off+authLen]...)
	clear(b[off : off+authLen])
	if p.Code == CodeAccountingRequest {
		clear(b[4:HeaderLen])
	}
	m := hmac.New(md5.New, secret)
	m.Write(b)
	return true, hmac.Equal(m.Sum(nil), got)
}

// AppendResponse appends the Accounting-Response to request p: no
// attributes, Response Authenticator MD5(Code, Identifier, Length,
// Request Authenticator, secret), RFC 2866 section 3.
func AppendResponse(b []byte, p Packet, secret []byte) []byte {
	start := len(b)
	b = append(b, CodeAccountingResponse, p.ID, 0, HeaderLen)
	b = append(b, p.Authenticator[:]...)
	h := md5.New() //nolint:gosec
	h.Write(b[start:])
	h.Write(secret)
	var sum [authLen]byte
	copy(b[start+4:], h.Sum(sum[:0]))
	return b
}

// Decode fills r from the attributes of an Accounting-Request: the
// attributes a session needs, the others skipped (Vendor-Specific ones
// included). An attribute whose value has the wrong size for its type is
// skipped, as FreeRADIUS would keep it as raw octets; ignored counts them.
// Strings in r alias p. received is the record's own time (its arrival).
func Decode(p Packet, r *subscriber.Record, received time.Time) (ignored int) {
	r.Reset()
	r.Source = subscriber.SourceRADIUS
	r.RecordTime = received.UnixNano()
	p.Each(func(typ byte, v []byte) {
		if !decodeAttr(typ, v, r) {
			ignored++
		}
	})
	return ignored
}

func decodeAttr(typ byte, v []byte, r *subscriber.Record) bool {
	u32 := func() (uint32, bool) {
		if len(v) != 4 {
			return 0, false
		}
		return binary.BigEndian.Uint32(v), true
	}
	str := func(dst *string) bool {
		if len(v) == 0 { // RFC 2865: strings are at least one octet
			return false
		}
		*dst = alias(v)
		return true
	}
	switch typ {
	case attrUserName:
		return str(&r.User)
	case attrAcctSessionID:
		return str(&r.SessionID)
	case attrCallingStationID:
		return str(&r.CallingStationID)
	case attrNASIdentifier:
		return str(&r.NASIdentifier)
	case attrNASIPAddress:
		if len(v) != 4 {
			return false
		}
		r.NASIP = netip.AddrFrom4([4]byte(v))
	case attrNASIPv6Address:
		if len(v) != 16 {
			return false
		}
		r.NASIPv6 = netip.AddrFrom16([16]byte(v))
	case attrFramedIPAddress:
		if len(v) != 4 {
			return false
		}
		r.SetFramedIP(netip.AddrFrom4([4]byte(v)))
	case attrFramedIPv6Address:
		if len(v) != 16 {
			return false
		}
		r.AddPrefix(netip.PrefixFrom(netip.AddrFrom16([16]byte(v)), 128))
	case attrFramedIPv6Prefix, attrDelegatedIPv6Prefix:
		// Reserved, Prefix-Length, then as many prefix octets as needed
		// (RFC 3162 2.3, RFC 4818).
		if len(v) < 2 || v[1] > 128 || len(v)-2 > 16 || (int(v[1])+7)/8 > len(v)-2 {
			return false
		}
		var a [16]byte
		copy(a[:], v[2:])
		r.AddPrefix(netip.PrefixFrom(netip.AddrFrom16(a), int(v[1])))
	case attrAcctStatusType:
		n, ok := u32()
		r.Status = n
		return ok
	case attrAcctDelayTime:
		n, ok := u32()
		r.DelayTime = n
		return ok
	case attrAcctSessionTime:
		n, ok := u32()
		r.SessionTime, r.HasSessionTime = n, ok
		return ok
	case attrEventTimestamp:
		n, ok := u32()
		if ok && n != 0 {
			r.EventTime = int64(n) * int64(time.Second)
		}
		return ok
	}
	return true
}

// alias views b as a string without copying; Table.Apply copies what it
// keeps before the packet buffer is reused.
func alias(b []byte) string { return unsafe.String(&b[0], len(b)) }
