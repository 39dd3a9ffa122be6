package subscriber

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// MaxPrefixes is how many IPv6 prefixes a record keeps; more are ignored.
const MaxPrefixes = 4

// MaxStringLen is the longest User-Name, Acct-Session-Id or
// Calling-Station-Id accepted: the longest a RADIUS attribute can carry.
const MaxStringLen = 253

// Record is one accounting record, whatever its source. Parsers fill it
// (SetAttr for FreeRADIUS's text forms, the radius package for packets);
// Table.Apply reads it. Strings may alias the parser's buffer: Apply copies
// what it keeps.
type Record struct {
	Source Source
	// Status is the Acct-Status-Type value (StatusStart...); 0 if absent.
	Status uint32
	// The NAS: NAS-IP-Address, NAS-IPv6-Address, NAS-Identifier.
	NASIP, NASIPv6 netip.Addr
	NASIdentifier  string

	SessionID        string // Acct-Session-Id
	User             string // User-Name
	CallingStationID string // Calling-Station-Id

	FramedIP netip.Addr // Framed-IP-Address
	// Prefixes are the Framed-IPv6-Prefix, Delegated-IPv6-Prefix and
	// Framed-IPv6-Address (as a /128) values, NumPrefixes of them.
	Prefixes    [MaxPrefixes]netip.Prefix
	NumPrefixes int

	EventTime  int64 // Event-Timestamp, Unix nanoseconds; 0 if absent
	RecordTime int64 // the record's own time (see Time), Unix nanoseconds; 0 if unknown
	DelayTime  uint32
	// SessionTime is Acct-Session-Time (seconds) when HasSessionTime.
	SessionTime    uint32
	HasSessionTime bool
}

// Reset clears r for reuse.
func (r *Record) Reset() { *r = Record{} }

// Time is the record's event time: its Event-Timestamp, else its own time
// minus Acct-Delay-Time; 0 if it has neither.
func (r *Record) Time() int64 {
	if r.EventTime != 0 {
		return r.EventTime
	}
	if r.RecordTime != 0 {
		return r.RecordTime - int64(r.DelayTime)*int64(time.Second)
	}
	return 0
}

// AddPrefix adds an IPv6 prefix the session holds; an invalid prefix, a
// non-IPv6 one, a duplicate or one beyond MaxPrefixes is ignored.
func (r *Record) AddPrefix(p netip.Prefix) {
	if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || r.NumPrefixes >= MaxPrefixes {
		return
	}
	p = p.Masked()
	for _, q := range r.Prefixes[:r.NumPrefixes] {
		if q == p {
			return
		}
	}
	r.Prefixes[r.NumPrefixes] = p
	r.NumPrefixes++
}

// SetFramedIP sets Framed-IP-Address. 0.0.0.0 and the values that only
// tell a NAS how to choose (255.255.255.254 and 255.255.255.255, RFC 2865
// 5.8) are not addresses and are ignored.
func (r *Record) SetFramedIP(a netip.Addr) {
	a = a.Unmap()
	if !a.Is4() {
		return
	}
	if b := a.As4(); a.IsUnspecified() || b == [4]byte{255, 255, 255, 254} || b == [4]byte{255, 255, 255, 255} {
		return
	}
	r.FramedIP = a
}

// statusNames are Acct-Status-Type values as FreeRADIUS's dictionary
// names them.
var statusNames = map[string]uint32{
	"Start": 1, "Stop": 2, "Interim-Update": 3, "Alive": 3, "Accounting-On": 7, "Accounting-Off": 8,
	"Failed": 15, "Tunnel-Start": 9, "Tunnel-Stop": 10, "Tunnel-Reject": 11,
	"Tunnel-Link-Start": 12, "Tunnel-Link-Stop": 13, "Tunnel-Link-Reject": 14,
}

// SetAttr sets the attribute called name from its value as FreeRADIUS
// prints it (in detail files and json_encode output): strings unquoted,
// addresses and prefixes in their usual text form, Acct-Status-Type by
// name or number, Event-Timestamp as FreeRADIUS prints a date ("Jan  1
// 2026 08:00:00 UTC"), as Unix seconds or as RFC 3339. The detail file's
// own Timestamp (Unix seconds) sets RecordTime. Attributes that say
// nothing about sessions are ignored. A malformed value is an error; the
// record is then not to be applied.
func (r *Record) SetAttr(name, value string) error {
	switch name {
	case "Acct-Status-Type":
		if v, ok := statusNames[value]; ok {
			r.Status = v
			return nil
		}
		v, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return attrError(name, value, errors.New("unknown status"))
		}
		r.Status = uint32(v)
	case "User-Name":
		return setString(&r.User, name, value)
	case "Acct-Session-Id":
		return setString(&r.SessionID, name, value)
	case "Calling-Station-Id":
		return setString(&r.CallingStationID, name, value)
	case "NAS-Identifier":
		return setString(&r.NASIdentifier, name, value)
	case "NAS-IP-Address", "NAS-IPv6-Address":
		a, err := netip.ParseAddr(value)
		if err != nil {
			return attrError(name, value, err)
		}
		if a.Unmap().Is4() {
			r.NASIP = a.Unmap()
		} else {
			r.NASIPv6 = a
		}
	case "Framed-IP-Address":
		a, err := netip.ParseAddr(value)
		if err != nil || !a.Unmap().Is4() {
			return attrError(name, value, errors.New("not an IPv4 address"))
		}
		r.SetFramedIP(a)
	case "Framed-IPv6-Prefix", "Delegated-IPv6-Prefix":
		p, err := parsePrefix(value)
		if err != nil {
			return attrError(name, value, err)
		}
		r.AddPrefix(p)
	case "Framed-IPv6-Address":
		a, err := netip.ParseAddr(value)
		if err != nil || !a.Is6() {
			return attrError(name, value, errors.New("not an IPv6 address"))
		}
		r.AddPrefix(netip.PrefixFrom(a, 128))
	case "Event-Timestamp":
		t, err := ParseTime(value)
		if err != nil {
			return attrError(name, value, err)
		}
		r.EventTime = t
	case "Timestamp":
		s, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return attrError(name, value, err)
		}
		r.RecordTime = s * int64(time.Second)
	case "Acct-Session-Time":
		v, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return attrError(name, value, err)
		}
		r.SessionTime, r.HasSessionTime = uint32(v), true
	case "Acct-Delay-Time":
		v, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return attrError(name, value, err)
		}
		r.DelayTime = uint32(v)
	}
	return nil
}

// parsePrefix reads an IPv6 prefix. A backslash before the slash is
// tolerated: FreeRADIUS 3.2's json_encode escapes "/" once more than JSON
// needs when its output goes through an attribute ("2001:db8::\/64").
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, `\/`) {
		s = strings.ReplaceAll(s, `\/`, "/")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if !p.Addr().Is6() {
		return netip.Prefix{}, errors.New("not an IPv6 prefix")
	}
	return p, nil
}

func setString(dst *string, name, value string) error {
	if len(value) > MaxStringLen {
		return attrError(name, value[:32]+"...", fmt.Errorf("%d bytes, longer than a RADIUS attribute can be", len(value)))
	}
	*dst = value
	return nil
}

func attrError(name, value string, err error) error {
	return fmt.Errorf("%s = %q: %w", name, value, err)
}

// freeradiusDate is how FreeRADIUS prints a date attribute: the day padded
// with a space, the zone abbreviation of its local time.
const freeradiusDate = "Jan _2 2006 15:04:05 MST"

// ParseTime reads an Event-Timestamp: Unix seconds, FreeRADIUS's printed
// form ("Jan  1 2026 08:00:00 UTC"), or RFC 3339. FreeRADIUS prints dates
// in its local zone: a zone abbreviation other than UTC or GMT must be one
// of this process's local zone (run both with the same TZ), since an
// abbreviation alone does not say its offset.
func ParseTime(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty time")
	}
	if s[0] >= '0' && s[0] <= '9' && !strings.ContainsAny(s, " -:") {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		return v * int64(time.Second), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixNano(), nil
	}
	t, err := time.ParseInLocation(freeradiusDate, s, time.Local)
	if err != nil {
		return 0, err
	}
	// An abbreviation unknown to the local zone parses with a made-up
	// location and a zero offset: reject it rather than be off by hours.
	if zone, _ := t.Zone(); t.Location() != time.Local && zone != "UTC" && zone != "GMT" {
		return 0, fmt.Errorf("time zone %q is not UTC, GMT or this process's local zone (set TZ as FreeRADIUS's)", zone)
	}
	return t.UnixNano(), nil
}
