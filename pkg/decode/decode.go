// Package decode is the vocabulary shared by the flow decoders
// (decode/netflow for NetFlow v5, v9 and IPFIX; decode/sflow) and the collector that
// drives them: the packet handed in, the callback flows come out through,
// the error classes, and the events metrics are built from.
//
// Decoders do no I/O, never log and know nothing of Prometheus.
package decode

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// Protocol is an export protocol.
type Protocol uint8

const (
	ProtocolUnknown Protocol = iota
	NetFlowV5
	NetFlowV9
	IPFIX
	SFlowV5
)

// String is the protocol's label value in metrics and logs.
func (p Protocol) String() string {
	switch p {
	case NetFlowV5:
		return "netflow_v5"
	case NetFlowV9:
		return "netflow_v9"
	case IPFIX:
		return "ipfix"
	case SFlowV5:
		return "sflow_v5"
	}
	return "unknown"
}

// Packet is one export datagram and where it came from.
type Packet struct {
	Data       []byte
	Exporter   netip.AddrPort // UDP source; templates are keyed by its address only
	ReceivedNs uint64         // wall clock, Unix nanoseconds
}

// Emit receives each decoded flow. The message belongs to the decoder and
// is reused for the next flow: marshal or copy it before returning.
type Emit func(*flowpb.FlowMessage)

// Decoder decodes one protocol family.
//
// Decode emits every good record of p; a malformed part (a set, a sample)
// is skipped and decoding goes on with the next one where the framing
// allows. The returned error describes what was skipped (several problems
// are joined with errors.Join); it never means the good records were lost.
// Decoders are not safe for concurrent use: run one per worker, or guard.
type Decoder interface {
	Decode(p Packet, emit Emit) error
}

// Appender is a Decoder that can also write its records straight into
// the bin stream, without a FlowMessage in between: flowcollect's default
// output takes this path.
type Appender interface {
	Decoder
	// AppendRecords decodes p as Decode does and appends each record Decode
	// would emit to dst as a frame of the bin stream: a varint length, then
	// the bytes flowpb's AppendDelimited writes for the message. It returns
	// dst and the number of records.
	AppendRecords(dst []byte, p Packet) ([]byte, int, error)
}

// Error classes. Decoders wrap them (usually in an *Error) so that callers
// can count errors by reason with Reason.
var (
	ErrTruncated       = errors.New("truncated")
	ErrVersion         = errors.New("unsupported version")
	ErrTemplateMissing = errors.New("template missing")
	ErrMalformed       = errors.New("malformed")
	ErrLimit           = errors.New("limit exceeded")
)

// Reason maps an error to a bounded label value for metrics.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTruncated):
		return "truncated"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrTemplateMissing):
		return "template_missing"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrLimit):
		return "limit"
	}
	return "other"
}

// Reasons lists the reasons of every error joined in err, so that a packet
// with two bad sets counts twice.
func Reasons(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, Reasons(e)...)
		}
		return out
	}
	return []string{Reason(err)}
}

// Error gives a decoding error its coordinates.
type Error struct {
	Protocol Protocol
	Exporter netip.AddrPort
	Domain   uint32 // observation domain (IPFIX), source id (v9), sub-agent (sFlow)
	SetID    uint16 // set / flowset / template id, 0 when not applicable
	Err      error
}

func (e *Error) Error() string {
	if e.SetID != 0 {
		return fmt.Sprintf("%s: exporter %s domain %d set %d: %v", e.Protocol, e.Exporter, e.Domain, e.SetID, e.Err)
	}
	return fmt.Sprintf("%s: exporter %s domain %d: %v", e.Protocol, e.Exporter, e.Domain, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Observer receives the events the collector's metrics are made of.
// Methods are called on the decoding goroutine: they must be cheap and must
// not block. A nil Observer in a decoder's config means NopObserver.
type Observer interface {
	// SequenceGap reports export packets (v5, v9, sFlow) or records
	// (IPFIX) that the sequence numbers say were lost on the way.
	SequenceGap(p Protocol, exporter netip.Addr, domain uint32, missed uint64)
	// SequenceReset reports a sequence number going backwards (an exporter
	// restart), which is not counted as loss.
	SequenceReset(p Protocol, exporter netip.Addr, domain uint32)
}

// NopObserver ignores every event.
type NopObserver struct{}

func (NopObserver) SequenceGap(Protocol, netip.Addr, uint32, uint64) {}
func (NopObserver) SequenceReset(Protocol, netip.Addr, uint32)       {}
