// Package subscriber knows which subscriber held an address at a given
// time, from RADIUS accounting (RFC 2866), so that flow records can carry
// the user, session and calling station of each side.
//
// A Table holds the sessions. Accounting records (Record) are applied to
// it from any number of sources (FreeRADIUS detail files, a RADIUS
// accounting listener, a Kafka topic: see the detail, radius, topic and
// feed packages); Lookup answers "whose was this address at this time".
//
// # Session rules
//
//   - A session is identified by its NAS and its Acct-Session-Id. The NAS is
//     the record's NAS-IP-Address, else its NAS-IPv6-Address, else its
//     NAS-Identifier: never the address a packet came from, since copies
//     arrive through proxies, detail files and Kafka.
//   - Start, Interim-Update and Stop open, refresh and close it. The
//     addresses it holds are its Framed-IP-Address (exact match) and its
//     Framed-IPv6-Prefix, Delegated-IPv6-Prefix and Framed-IPv6-Address
//     (longest prefix match); an address first reported by a later record
//     is taken as held since the session's start.
//   - The event time of a record is its Event-Timestamp, else its own time
//     (a detail file's Timestamp, a packet's arrival, a Kafka record's
//     timestamp) minus Acct-Delay-Time.
//   - An Interim-Update or a Stop for a session never started opens it at
//     the event time minus Acct-Session-Time (at the event time if absent).
//   - Accounting-On and Accounting-Off close every session of their NAS
//     that started before the event.
//   - A session that starts on an address closes the session that held it
//     before (its Stop was lost); a session stays open until then, or until
//     its Stop or its NAS's Accounting-On/Off.
//   - A session holds its addresses over [start, end): a flow that starts
//     exactly at a Stop's event time is no longer the stopped session's.
//   - A Start for a session already known is a duplicate (the same record
//     through another source, or a retransmission) unless it comes at or
//     after that session's end: then the NAS reused the session id, and a
//     new session begins.
//   - Stopped sessions are kept for the history (Config.History) so that
//     late flows, which exporters flush up to 30 minutes after they began,
//     still find them. History is measured on the records' own clock, the
//     newest event time seen, never the wall clock: replaying last month's
//     accounting with last month's flows attributes them as live did.
//
// Lookup takes no lock: readers follow atomic pointers while one writer at
// a time applies records, so accounting can be absorbed at tens of
// thousands of records per second without slowing the flows.
//
// # NAT
//
// Flows seen outside a carrier-grade NAT carry the public address and
// port. The NAT device's port-block allocation events (RFC 8158 natEvent 16
// and 17, with portRangeStart and portRangeEnd), applied with ApplyNAT, say
// which private address held which ports of a public address, and when;
// LookupNAT goes from the public address and port to the private address and
// from there to its session. See ApplyNAT for the rule.
package subscriber

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Source is where a record or a session came from; it labels metrics.
type Source uint8

// Sources.
const (
	SourceDetail Source = iota // FreeRADIUS detail file
	SourceRADIUS               // RADIUS accounting listener
	SourceKafka                // Kafka topic of JSON records
	NumSources
)

// SourceNames are the metric label values of the sources, by index.
var SourceNames = [NumSources]string{"detail", "radius", "kafka"}

func (s Source) String() string {
	if s < NumSources {
		return SourceNames[s]
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Acct-Status-Type values (RFC 2866 section 5.1) that change sessions.
const (
	StatusStart   = 1
	StatusStop    = 2
	StatusInterim = 3 // Interim-Update (also called Alive)
	StatusOn      = 7 // Accounting-On
	StatusOff     = 8 // Accounting-Off
)

// Reason is why a record was not applied; it labels metrics.
type Reason uint8

// Reasons a record is rejected. The first ones apply to every source; the
// packet ones only to the RADIUS listener, bad_json to Kafka.
const (
	ReasonMalformed        Reason = iota // unparsable record or attribute value
	ReasonNoStatus                       // no Acct-Status-Type
	ReasonUnusedStatus                   // a status that says nothing about sessions (Failed, Tunnel-*)
	ReasonNoSessionID                    // Start, Interim-Update or Stop without Acct-Session-Id
	ReasonNoTime                         // neither Event-Timestamp nor a record time
	ReasonNotAllowed                     // packet from an address outside --radius-allow
	ReasonNotAccounting                  // packet code other than Accounting-Request
	ReasonBadAuthenticator               // Request Authenticator does not match the secret
	ReasonBadMessageAuth                 // Message-Authenticator does not match the secret
	ReasonBadJSON                        // Kafka record that is not a JSON object
	NumReasons
)

// ReasonNames are the metric label values of the reasons, by index.
var ReasonNames = [NumReasons]string{
	"malformed", "no_status_type", "unused_status_type", "no_session_id", "no_time",
	"not_allowed", "not_accounting_request", "bad_authenticator", "bad_message_authenticator", "bad_json",
}

func (r Reason) String() string {
	if r < NumReasons {
		return ReasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// RejectError says why a record was not applied.
type RejectError struct {
	Reason Reason
	Err    error // details, may be nil
}

func (e *RejectError) Error() string {
	if e.Err == nil {
		return "subscriber: record rejected: " + e.Reason.String()
	}
	return fmt.Sprintf("subscriber: record rejected: %s: %v", e.Reason, e.Err)
}

func (e *RejectError) Unwrap() error { return e.Err }

// ReasonOf classifies err: the Reason of a RejectError in its chain, else
// ReasonMalformed.
func ReasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ReasonMalformed
}

func reject(r Reason, err error) error { return &RejectError{Reason: r, Err: err} }

// Counts are the accounting records read and rejected, by source. Sources
// add to them concurrently; metrics read them.
type Counts struct {
	Read     [NumSources]atomic.Int64
	Rejected [NumSources][NumReasons]atomic.Int64
}

// Reject counts a record of source rejected for the reason err carries.
func (c *Counts) Reject(source Source, err error) Reason {
	r := ReasonOf(err)
	c.Rejected[source][r].Add(1)
	return r
}
