package enrich

import (
	"fmt"
	"net/netip"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// Sides of a flow, as used in Stats.Subscribers and metric labels.
const (
	SideSrc = iota
	SideDst
	numSides
)

// SideNames are the label values of the sides, by index.
var SideNames = [numSides]string{"src", "dst"}

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

// read keeps field f's encoded value if attribution needs it.
func (f *subscriberFields) read(p *flowpb.FlowMessage, fl wire.Field, frame []byte) error {
	i := -1
	switch fl.Num {
	case flowpb.FieldPostNatSrcAddr:
		b, err := bytesValue(fl, frame)
		if err != nil {
			return err
		}
		p.PostNatSrcAddr = b
		return nil
	case flowpb.FieldTimeFlowStartNs:
		i = rawTimeFlowStart
	case flowpb.FieldTimeReceivedNs:
		i = rawTimeReceived
	case flowpb.FieldProto:
		i = rawProto
	case flowpb.FieldSrcPort:
		i = rawSrcPort
	case flowpb.FieldDstPort:
		i = rawDstPort
	case flowpb.FieldNatEvent:
		i = rawNatEvent
	case flowpb.FieldNatPortRangeStart:
		i = rawNatPortStart
	case flowpb.FieldNatPortRangeEnd:
		i = rawNatPortEnd
	default:
		return nil
	}
	if fl.Type != protowire.VarintType {
		return fmt.Errorf("field %d: wire type %d, want varint", fl.Num, fl.Type)
	}
	f.raw[i] = frame[fl.Value:fl.End]
	return nil
}

// decode sets in p the fields attribute uses: the flow's time, and the
// NAT fields and ports when they can matter.
func (f *subscriberFields) decode(p *flowpb.FlowMessage, tbl *subscriber.Table) {
	p.TimeFlowStartNs = wire.Varint(f.raw[rawTimeFlowStart])
	if p.TimeFlowStartNs == 0 {
		p.TimeReceivedNs = wire.Varint(f.raw[rawTimeReceived])
	}
	if p.NatEvent = uint32(wire.Varint(f.raw[rawNatEvent])); p.NatEvent != 0 {
		p.NatPortRangeStart = uint32(wire.Varint(f.raw[rawNatPortStart]))
		p.NatPortRangeEnd = uint32(wire.Varint(f.raw[rawNatPortEnd]))
	}
	if tbl.HasNAT() {
		p.Proto = uint32(wire.Varint(f.raw[rawProto]))
		p.SrcPort = uint32(wire.Varint(f.raw[rawSrcPort]))
		p.DstPort = uint32(wire.Varint(f.raw[rawDstPort]))
	}
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
	b = wire.AppendStringField(b, flowpb.FieldSrcUser, p.SrcUser)
	b = wire.AppendStringField(b, flowpb.FieldDstUser, p.DstUser)
	b = wire.AppendStringField(b, flowpb.FieldSrcSessionId, p.SrcSessionId)
	b = wire.AppendStringField(b, flowpb.FieldDstSessionId, p.DstSessionId)
	b = wire.AppendStringField(b, flowpb.FieldSrcCallingStationId, p.SrcCallingStationId)
	return wire.AppendStringField(b, flowpb.FieldDstCallingStationId, p.DstCallingStationId)
}
