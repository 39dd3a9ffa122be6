package enrich

import (
	"fmt"
	"net/netip"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// Sides of a flow, as used in Stats.Subscribers and metric labels.
const (
	SideSrc = iota
	SideDst
	numSides
)

// SideNames are the label values of the sides, by index.
var SideNames = [numSides]string{"src", "dst"}

// Field numbers of subscriber attribution: those the enrichment reads and
// the user fields it owns (1130-1135).
const (
	fieldProto             = 20
	fieldSrcPort           = 21
	fieldDstPort           = 22
	fieldTimeReceivedNs    = 110
	fieldTimeFlowStartNs   = 111
	fieldUserFirst         = 1130 // src_user ... dst_calling_station_id
	fieldUserLast          = 1135
	fieldSrcUser           = 1130
	fieldDstUser           = 1131
	fieldSrcSessionID      = 1132
	fieldDstSessionID      = 1133
	fieldSrcCallingStation = 1134
	fieldDstCallingStation = 1135
	fieldPostNatSrcAddr    = 1140
	fieldNatEvent          = 1144
	fieldNatPortRangeStart = 1145
	fieldNatPortRangeEnd   = 1146
)

// attribute sets the subscriber fields of m: each side gets the session
// that held its address at the flow's start (time_flow_start_ns, else
// time_received_ns), directly or through a NAT port block (see
// subscriber.Table.Attribute). A record that is itself a NAT port-block
// event (nat_event set) is applied to the table first. The fields are
// owned: a side without a session has them cleared.
func (e *Enricher) attribute(m *flowpb.FlowMessage, src netip.Addr, srcOK bool, dst netip.Addr, dstOK bool, st *Stats) {
	tbl := e.cfg.Sessions
	at := int64(m.TimeFlowStartNs)
	if at == 0 {
		at = int64(m.TimeReceivedNs)
	}
	if m.NatEvent != 0 {
		applyNAT(tbl, m, src, srcOK, at)
	}
	proto := uint8(m.Proto)
	var ss, ds *subscriber.Session
	var sv, dv subscriber.Via
	if srcOK {
		ss, sv = tbl.Attribute(src, uint16(m.SrcPort), proto, at)
	}
	if dstOK {
		ds, dv = tbl.Attribute(dst, uint16(m.DstPort), proto, at)
	}
	st.Subscribers[SideSrc][sv]++
	st.Subscribers[SideDst][dv]++
	setSubscriber(ss, &m.SrcUser, &m.SrcSessionId, &m.SrcCallingStationId)
	setSubscriber(ds, &m.DstUser, &m.DstSessionId, &m.DstCallingStationId)
}

// applyNAT feeds a NAT event record to the table: src_addr is the private
// address, post_nat_src_addr the public one.
func applyNAT(tbl *subscriber.Table, m *flowpb.FlowMessage, src netip.Addr, srcOK bool, at int64) {
	ev := subscriber.NATEvent{Event: m.NatEvent, Time: at}
	pub, pubOK := addrFrom(m.PostNatSrcAddr)
	if srcOK && pubOK && m.NatPortRangeStart <= 0xffff && m.NatPortRangeEnd <= 0xffff {
		ev.Private, ev.Public = src, pub
		ev.PortLow, ev.PortHigh = uint16(m.NatPortRangeStart), uint16(m.NatPortRangeEnd)
	}
	_ = tbl.ApplyNAT(ev) // counted by the table when not applicable
}

// setSubscriber sets one side's fields; the strings are the session's own
// (immutable), shared, not copied.
func setSubscriber(s *subscriber.Session, user, id, csid *string) {
	if s == nil {
		*user, *id, *csid = "", "", ""
		return
	}
	*user, *id, *csid = s.User(), s.SessionID(), s.CallingStationID()
}

// subscriberReads says whether the splicer must read field num below
// 1000 for attribution.
func subscriberReads(num protowire.Number) bool {
	return num == fieldProto || num == fieldSrcPort || num == fieldDstPort ||
		num == fieldTimeReceivedNs || num == fieldTimeFlowStartNs
}

// subscriberFields are the encoded values of the fields attribution reads,
// as the splicer finds them; decode turns only those needed into values:
// a record's two times are 9-byte varints, and its ports matter only
// when NAT port blocks are held.
type subscriberFields struct {
	raw [numRaw][]byte // varint bytes, nil when absent
}

const (
	rawTimeFlowStart = iota
	rawTimeReceived
	rawProto
	rawSrcPort
	rawDstPort
	rawNatEvent
	rawNatPortStart
	rawNatPortEnd
	numRaw
)

// clear forgets the previous record's fields.
func (f *subscriberFields) clear() { f.raw = [numRaw][]byte{} }

// read keeps field num's encoded value if attribution needs it; val is
// the value and what follows it in the record.
func (f *subscriberFields) read(p *flowpb.FlowMessage, num protowire.Number, typ protowire.Type, val []byte) error {
	i := -1
	switch num {
	case fieldPostNatSrcAddr:
		b, err := bytesValue(num, typ, val)
		if err != nil {
			return err
		}
		p.PostNatSrcAddr = b
		return nil
	case fieldTimeFlowStartNs:
		i = rawTimeFlowStart
	case fieldTimeReceivedNs:
		i = rawTimeReceived
	case fieldProto:
		i = rawProto
	case fieldSrcPort:
		i = rawSrcPort
	case fieldDstPort:
		i = rawDstPort
	case fieldNatEvent:
		i = rawNatEvent
	case fieldNatPortRangeStart:
		i = rawNatPortStart
	case fieldNatPortRangeEnd:
		i = rawNatPortEnd
	default:
		return nil
	}
	if typ != protowire.VarintType {
		return fmt.Errorf("field %d: wire type %d, want varint", num, typ)
	}
	f.raw[i] = val
	return nil
}

// decode sets in p the fields attribute uses: the flow's time, and the
// NAT fields and ports when they can matter.
func (f *subscriberFields) decode(p *flowpb.FlowMessage, tbl *subscriber.Table) {
	p.TimeFlowStartNs = uvarint(f.raw[rawTimeFlowStart])
	if p.TimeFlowStartNs == 0 {
		p.TimeReceivedNs = uvarint(f.raw[rawTimeReceived])
	}
	if p.NatEvent = uint32(uvarint(f.raw[rawNatEvent])); p.NatEvent != 0 {
		p.NatPortRangeStart = uint32(uvarint(f.raw[rawNatPortStart]))
		p.NatPortRangeEnd = uint32(uvarint(f.raw[rawNatPortEnd]))
	}
	if tbl.HasNAT() {
		p.Proto = uint32(uvarint(f.raw[rawProto]))
		p.SrcPort = uint32(uvarint(f.raw[rawSrcPort]))
		p.DstPort = uint32(uvarint(f.raw[rawDstPort]))
	}
}

// uvarint decodes a varint the splicer has checked to be whole; nil is 0.
func uvarint(b []byte) uint64 {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c < 0x80 || i == binaryMaxVarintLen-1 {
			break
		}
	}
	return v
}

// clearSubscriberFields clears the fields of p that decode and attribute
// set.
func clearSubscriberFields(p *flowpb.FlowMessage) {
	p.Proto, p.SrcPort, p.DstPort, p.TimeReceivedNs, p.TimeFlowStartNs = 0, 0, 0, 0, 0
	p.PostNatSrcAddr, p.NatEvent, p.NatPortRangeStart, p.NatPortRangeEnd = nil, 0, 0, 0
	p.SrcUser, p.DstUser, p.SrcSessionId, p.DstSessionId, p.SrcCallingStationId, p.DstCallingStationId = "", "", "", "", "", ""
}

// appendSubscriberFields encodes the user fields of p.
func appendSubscriberFields(b []byte, p *flowpb.FlowMessage) []byte {
	b = appendStringField(b, fieldSrcUser, p.SrcUser)
	b = appendStringField(b, fieldDstUser, p.DstUser)
	b = appendStringField(b, fieldSrcSessionID, p.SrcSessionId)
	b = appendStringField(b, fieldDstSessionID, p.DstSessionId)
	b = appendStringField(b, fieldSrcCallingStation, p.SrcCallingStationId)
	return appendStringField(b, fieldDstCallingStation, p.DstCallingStationId)
}
