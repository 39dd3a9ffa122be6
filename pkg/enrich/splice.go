package enrich

import (
	"fmt"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// splicer enriches an encoded record without decoding it whole: it reads
// the few fields enrichment depends on, copies every other field's bytes
// as they are (unknown fields included), drops the fields enrichment owns
// and appends their new values. For the bin-to-bin stage this replaces a
// full decode and encode, which cost more than the lookups themselves.
//
// The output differs from a decode/encode round trip only in field order
// (the enrichment fields come last), which protobuf readers ignore. The
// fields it stops at are declared below (spliceRead, spliceOwned, ...); a
// field added to flow.proto is carried without a change here.
type splicer struct {
	sub   subscriberFields
	part  flowpb.FlowMessage
	found []wire.Field // the fields the scan stopped at
	out   []byte
}

// The fields the splicer reads or owns, declared once; the scan stops at
// these only and copies every other field's bytes as they are.
var (
	// spliceRead are read and kept: what the lookups need.
	spliceRead = []protowire.Number{flowpb.FieldSrcAddr, flowpb.FieldDstAddr}
	// spliceOwned are the fields enrichment writes: their old values are
	// dropped, after read keeps what enrichment may keep (an exporter's
	// AS, an earlier stage's country or AS name).
	spliceOwned = []protowire.Number{flowpb.FieldSrcAs, flowpb.FieldDstAs,
		flowpb.FieldSrcCountry, flowpb.FieldDstCountry, flowpb.FieldSrcAsName, flowpb.FieldDstAsName}
	// spliceOwnedNets are owned too when a networks file is loaded: the
	// CIDR context, always rewritten.
	spliceOwnedNets = []protowire.Number{fieldSrcNetName, fieldDstNetName, fieldSrcNetLabels,
		fieldDstNetLabels, fieldSrcNetPrefix, fieldDstNetPrefix, flowpb.FieldFlowDirection}
	// spliceReadSubs are read too when subscribers are attributed: the
	// flow's time, ports and NAT port block (see subscriberFields).
	spliceReadSubs = []protowire.Number{flowpb.FieldProto, flowpb.FieldSrcPort, flowpb.FieldDstPort,
		flowpb.FieldTimeReceivedNs, flowpb.FieldTimeFlowStartNs, flowpb.FieldPostNatSrcAddr,
		flowpb.FieldNatEvent, flowpb.FieldNatPortRangeStart, flowpb.FieldNatPortRangeEnd}
	// spliceOwnedSubs are owned then: the subscriber fields.
	spliceOwnedSubs = []protowire.Number{flowpb.FieldSrcUser, flowpb.FieldDstUser, flowpb.FieldSrcSessionId,
		flowpb.FieldDstSessionId, flowpb.FieldSrcCallingStationId, flowpb.FieldDstCallingStationId}
)

// spliceSets are the declarations above as sets, by what is loaded: a
// networks file (nets), a session table (subs).
type spliceSets struct{ stop, owned *wire.FieldSet }

var spliceSetsBy = [2][2]spliceSets{
	{newSpliceSets(false, false), newSpliceSets(false, true)},
	{newSpliceSets(true, false), newSpliceSets(true, true)},
}

func newSpliceSets(nets, subs bool) spliceSets {
	owned := wire.NewFieldSet(spliceOwned...)
	read := wire.NewFieldSet(spliceRead...)
	if nets {
		owned = owned.Union(wire.NewFieldSet(spliceOwnedNets...))
	}
	if subs {
		owned = owned.Union(wire.NewFieldSet(spliceOwnedSubs...))
		read = read.Union(wire.NewFieldSet(spliceReadSubs...))
	}
	return spliceSets{stop: owned.Union(read), owned: owned}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The CIDR-context fields, as networks.go pre-encodes them.
const (
	fieldSrcNetName   = flowpb.FieldSrcNetName
	fieldDstNetName   = flowpb.FieldDstNetName
	fieldSrcNetLabels = flowpb.FieldSrcNetLabels
	fieldDstNetLabels = flowpb.FieldDstNetLabels
	fieldSrcNetPrefix = flowpb.FieldSrcNetPrefix
	fieldDstNetPrefix = flowpb.FieldDstNetPrefix
)

// enrich returns the enriched encoding of frame, valid until the next call.
// Strings read from frame alias it: frame must stay untouched until the
// result has been written.
func (sp *splicer) enrich(e *Enricher, frame []byte, st *Stats) ([]byte, error) {
	snap := e.cur.Load()
	subs := e.cfg.Sessions != nil
	sets := spliceSetsBy[b2i(snap.nets != nil)][b2i(subs)]
	p := &sp.part
	// Only the fields read below and set by enrichWith are ever set in p:
	// clearing those beats zeroing the whole (large) message per record.
	p.SrcAddr, p.DstAddr, p.SrcAs, p.DstAs = nil, nil, 0, 0
	p.SrcCountry, p.DstCountry, p.SrcAsName, p.DstAsName = "", "", "", ""
	p.SrcNetName, p.DstNetName, p.SrcNetPrefix, p.DstNetPrefix = "", "", "", ""
	p.SrcNetLabels, p.DstNetLabels, p.FlowDirection = nil, nil, 0
	if subs {
		clearSubscriberFields(p)
		sp.sub.clear()
	}
	out := sp.out[:0]
	run := 0 // start of the bytes still to copy
	found, err := wire.AppendFields(sp.found[:0], frame, sets.stop)
	sp.found = found
	if err != nil {
		return nil, err
	}
	for _, f := range found {
		if !sets.owned.Has(f.Num) { // read: an address, or what attribution needs
			if f.Num != flowpb.FieldSrcAddr && f.Num != flowpb.FieldDstAddr {
				if err := sp.sub.read(p, f, frame); err != nil {
					return nil, err
				}
				continue
			}
			b, err := bytesValue(f, frame)
			if err != nil {
				return nil, err
			}
			if f.Num == flowpb.FieldSrcAddr {
				p.SrcAddr = b
			} else {
				p.DstAddr = b
			}
			if subs {
				e.cfg.Sessions.PrefetchSlot(b) // in cache by the time it is looked up
			}
			continue
		}
		out = append(out, frame[run:f.Start]...)
		run = f.End
		if err := sp.read(f, frame); err != nil {
			return nil, err
		}
	}
	out = append(out, frame[run:]...)
	if subs {
		sp.sub.decode(p, e.cfg.Sessions)
	}
	sn, dn := e.enrichWith(snap, p, st)
	out = appendOwned(out, p, sn, dn)
	sp.out = out
	return out, nil
}

// appendOwned encodes the fields enrichment owns, as p and the CIDR
// context found hold them. Only these few fields can be set in p, so this
// replaces a full AppendMarshal, which would test every field of the
// message; the CIDR context is copied pre-encoded (see netEntry).
func appendOwned(b []byte, p *flowpb.FlowMessage, sn, dn *netEntry) []byte {
	b = wire.AppendVarintField(b, flowpb.FieldSrcAs, uint64(p.SrcAs))
	b = wire.AppendVarintField(b, flowpb.FieldDstAs, uint64(p.DstAs))
	b = wire.AppendStringField(b, flowpb.FieldSrcCountry, p.SrcCountry)
	b = wire.AppendStringField(b, flowpb.FieldDstCountry, p.DstCountry)
	b = wire.AppendStringField(b, flowpb.FieldSrcAsName, p.SrcAsName)
	b = wire.AppendStringField(b, flowpb.FieldDstAsName, p.DstAsName)
	b = appendSubscriberFields(b, p)
	if sn != nil {
		b = append(b, sn.encSrc...)
	}
	if dn != nil {
		b = append(b, dn.encDst...)
	}
	return wire.AppendVarintField(b, flowpb.FieldFlowDirection, uint64(p.FlowDirection))
}

// read keeps the old value of an owned field that enrichment may keep
// (an exporter's AS, an earlier stage's country).
func (sp *splicer) read(f wire.Field, frame []byte) error {
	p := &sp.part
	switch f.Num {
	case flowpb.FieldSrcAs, flowpb.FieldDstAs:
		if f.Type != protowire.VarintType {
			return fmt.Errorf("field %d: wire type %d, want varint", f.Num, f.Type)
		}
		v := wire.Varint(frame[f.Value:f.End])
		if f.Num == flowpb.FieldSrcAs {
			p.SrcAs = uint32(v)
		} else {
			p.DstAs = uint32(v)
		}
	case flowpb.FieldSrcCountry, flowpb.FieldDstCountry, flowpb.FieldSrcAsName, flowpb.FieldDstAsName:
		b, err := bytesValue(f, frame)
		if err != nil {
			return err
		}
		s := aliasString(b)
		switch f.Num {
		case flowpb.FieldSrcCountry:
			p.SrcCountry = s
		case flowpb.FieldDstCountry:
			p.DstCountry = s
		case flowpb.FieldSrcAsName:
			p.SrcAsName = s
		default:
			p.DstAsName = s
		}
	}
	// The CIDR-context fields are always rewritten: their old values are
	// not needed.
	return nil
}

func bytesValue(f wire.Field, frame []byte) ([]byte, error) {
	if f.Type != protowire.BytesType {
		return nil, fmt.Errorf("field %d: wire type %d, want bytes", f.Num, f.Type)
	}
	return frame[f.Value:f.End:f.End], nil
}

// aliasString views b as a string without copying; b must outlive every
// use of the string, which lasts until the record is written.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
