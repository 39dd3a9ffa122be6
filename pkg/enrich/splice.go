package enrich

import (
	"fmt"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// splicer enriches an encoded record without decoding it whole: it reads
// the few fields enrichment depends on, copies every other field's bytes
// as they are (unknown fields included), drops the fields enrichment owns
// and appends their new values. For the bin-to-bin stage this replaces a
// full decode and encode, which cost more than the lookups themselves.
//
// The output differs from a decode/encode round trip only in field order
// (the enrichment fields come last), which protobuf readers ignore.
type splicer struct {
	nets bool // the CIDR-context fields (1102-1108) are rewritten this record
	subs bool // the subscriber fields (1130-1135) too
	sub  subscriberFields
	part flowpb.FlowMessage
	out  []byte
}

// Field numbers the splicer reads or owns.
const (
	fieldSrcAddr    = 6
	fieldDstAddr    = 7
	fieldSrcAs      = 14
	fieldDstAs      = 15
	fieldSrcCountry = 1000
	fieldDstCountry = 1001
	fieldSrcAsName  = 1100
	fieldDstAsName  = 1101
	fieldNetFirst   = 1102 // src_net_name ... flow_direction
	fieldNetLast    = 1108

	fieldSrcNetName    = 1102
	fieldDstNetName    = 1103
	fieldSrcNetLabels  = 1104
	fieldDstNetLabels  = 1105
	fieldSrcNetPrefix  = 1106
	fieldDstNetPrefix  = 1107
	fieldFlowDirection = 1108
)

// owns says whether the enrichment writes field num, so that its old
// value must not be copied.
func (sp *splicer) owns(num protowire.Number) bool {
	switch num {
	case fieldSrcAs, fieldDstAs, fieldSrcCountry, fieldDstCountry, fieldSrcAsName, fieldDstAsName:
		return true
	}
	return sp.nets && num >= fieldNetFirst && num <= fieldNetLast ||
		sp.subs && num >= fieldUserFirst && num <= fieldUserLast
}

// enrich returns the enriched encoding of frame, valid until the next call.
// Strings read from frame alias it: frame must stay untouched until the
// result has been written.
func (sp *splicer) enrich(e *Enricher, frame []byte, st *Stats) ([]byte, error) {
	snap := e.cur.Load()
	sp.nets = snap.nets != nil
	sp.subs = e.cfg.Sessions != nil
	p := &sp.part
	// Only the fields read below and set by enrichWith are ever set in p:
	// clearing those beats zeroing the whole (large) message per record.
	p.SrcAddr, p.DstAddr, p.SrcAs, p.DstAs = nil, nil, 0, 0
	p.SrcCountry, p.DstCountry, p.SrcAsName, p.DstAsName = "", "", "", ""
	p.SrcNetName, p.DstNetName, p.SrcNetPrefix, p.DstNetPrefix = "", "", "", ""
	p.SrcNetLabels, p.DstNetLabels, p.FlowDirection = nil, nil, 0
	if sp.subs {
		clearSubscriberFields(p)
		sp.sub.clear()
	}
	out := sp.out[:0]
	run := 0 // start of the bytes still to copy
	// The scan is the splicer's own hot loop: the common shapes (one- or
	// two-byte tags, varints, short bytes fields) are decoded inline on
	// indexes; anything else goes through protowire.
	for i := 0; i < len(frame); {
		var num protowire.Number
		var typ protowire.Type
		n := 0
		if b := frame[i]; b < 0x80 && b >= 0x08 {
			num, typ, n = protowire.Number(b>>3), protowire.Type(b&7), 1
		} else if i+1 < len(frame) && b >= 0x80 && frame[i+1] < 0x80 && frame[i+1] != 0 {
			v := uint32(b&0x7f) | uint32(frame[i+1])<<7
			num, typ, n = protowire.Number(v>>3), protowire.Type(v&7), 2
		} else if num, typ, n = protowire.ConsumeTag(frame[i:]); n < 0 {
			return nil, fmt.Errorf("field at byte %d: %w", i, protowire.ParseError(n))
		}
		j := i + n // the value
		end := -1
		switch typ {
		case protowire.VarintType:
			for k := j; k < len(frame) && k < j+binaryMaxVarintLen-1; k++ {
				if frame[k] < 0x80 {
					end = k + 1
					break
				}
			}
		case protowire.BytesType:
			if j < len(frame) && frame[j] < 0x80 {
				if e := j + 1 + int(frame[j]); e <= len(frame) {
					end = e
				}
			}
		}
		if end < 0 { // long, unusual or malformed: the careful way
			m := protowire.ConsumeFieldValue(num, typ, frame[j:])
			if m < 0 {
				return nil, fmt.Errorf("field %d at byte %d: %w", num, i, protowire.ParseError(m))
			}
			end = j + m
		}
		if num != fieldSrcAddr && num != fieldDstAddr && num != fieldSrcAs && num != fieldDstAs && num < fieldSrcCountry &&
			!(sp.subs && subscriberReads(num)) {
			i = end // most fields: copied as they are
			continue
		}
		val := frame[j:]
		switch {
		case num == fieldSrcAddr || num == fieldDstAddr:
			b, err := bytesValue(num, typ, val)
			if err != nil {
				return nil, err
			}
			if num == fieldSrcAddr {
				p.SrcAddr = b
			} else {
				p.DstAddr = b
			}
			if sp.subs {
				e.cfg.Sessions.PrefetchSlot(b) // in cache by the end of the scan
			}
		case sp.owns(num):
			out = append(out, frame[run:i]...)
			run = end
			if err := sp.read(num, typ, val); err != nil {
				return nil, err
			}
		case sp.subs:
			if err := sp.sub.read(p, num, typ, val); err != nil {
				return nil, err
			}
		}
		i = end
	}
	out = append(out, frame[run:]...)
	if sp.subs {
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
	b = appendVarintField(b, fieldSrcAs, uint64(p.SrcAs))
	b = appendVarintField(b, fieldDstAs, uint64(p.DstAs))
	b = appendStringField(b, fieldSrcCountry, p.SrcCountry)
	b = appendStringField(b, fieldDstCountry, p.DstCountry)
	b = appendStringField(b, fieldSrcAsName, p.SrcAsName)
	b = appendStringField(b, fieldDstAsName, p.DstAsName)
	b = appendSubscriberFields(b, p)
	if sn != nil {
		b = append(b, sn.encSrc...)
	}
	if dn != nil {
		b = append(b, dn.encDst...)
	}
	return appendVarintField(b, fieldFlowDirection, uint64(p.FlowDirection))
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendStringField(b []byte, num protowire.Number, v string) []byte {
	if v == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), v)
}

// read keeps the old value of an owned field that enrichment may keep
// (an exporter's AS, an earlier stage's country).
func (sp *splicer) read(num protowire.Number, typ protowire.Type, val []byte) error {
	p := &sp.part
	switch num {
	case fieldSrcAs, fieldDstAs:
		if typ != protowire.VarintType {
			return fmt.Errorf("field %d: wire type %d, want varint", num, typ)
		}
		v, _ := protowire.ConsumeVarint(val)
		if num == fieldSrcAs {
			p.SrcAs = uint32(v)
		} else {
			p.DstAs = uint32(v)
		}
	case fieldSrcCountry, fieldDstCountry, fieldSrcAsName, fieldDstAsName:
		b, err := bytesValue(num, typ, val)
		if err != nil {
			return err
		}
		s := aliasString(b)
		switch num {
		case fieldSrcCountry:
			p.SrcCountry = s
		case fieldDstCountry:
			p.DstCountry = s
		case fieldSrcAsName:
			p.SrcAsName = s
		default:
			p.DstAsName = s
		}
	}
	// The CIDR-context fields are always rewritten: their old values are
	// not needed.
	return nil
}

func bytesValue(num protowire.Number, typ protowire.Type, val []byte) ([]byte, error) {
	if typ != protowire.BytesType {
		return nil, fmt.Errorf("field %d: wire type %d, want bytes", num, typ)
	}
	b, _ := protowire.ConsumeBytes(val)
	return b[:len(b):len(b)], nil
}

// aliasString views b as a string without copying; b must outlive every
// use of the string, which lasts until the record is written.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

const binaryMaxVarintLen = 10
