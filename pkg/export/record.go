package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"unsafe"

	"github.com/planetscale/vtprotobuf/protohelpers"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// Format is the encoding a Kafka record value was found in.
type Format uint8

const (
	// FormatBin is a flowpb.FlowMessage, varint-framed (as goflow2 and
	// flowpublish write it) or bare.
	FormatBin Format = iota
	// FormatJSON is one flowpipe/goflow2 JSON object.
	FormatJSON
	// FormatPmacct is one object of pmacct's kafka plugin JSON.
	FormatPmacct
	numFormats
)

func (f Format) String() string {
	switch f {
	case FormatBin:
		return "bin"
	case FormatJSON:
		return "json"
	case FormatPmacct:
		return "pmacct"
	}
	return "unknown"
}

// Errors returned by Parser.Parse, wrapped with details.
var (
	ErrEmpty     = errors.New("empty record")
	ErrBadProto  = errors.New("not a flow protobuf")
	ErrBadJSON   = errors.New("not flow JSON")
	ErrNoCounter = errors.New("no bytes, packets or flows field")
)

// Record is the part of a flow that flowexport counts. Its byte slices
// point into the parsed value or the Parser's scratch space: they are
// valid until the next Parse.
type Record struct {
	Format       Format
	SrcAS, DstAS uint32
	Bytes        uint64
	Packets      uint64
	Flows        uint64 // 1 unless the record says otherwise (pmacct "flows")
	SamplingRate uint64 // 0 when unknown
	// Sampler is the exporter's address (sampler_address, pmacct peer_ip_src).
	Sampler netip.Addr
	// Label is pmacct's "label", flow-exporter's hostname; empty otherwise.
	Label []byte
	// SrcASName and DstASName come from enriched records (fields 1100/1101).
	SrcASName, DstASName []byte
}

// Parser turns Kafka record values into Records without allocating once
// warmed up. A Parser is not safe for concurrent use.
type Parser struct {
	msg     flowpb.FlowMessage // reused by framing.ParseJSON
	scratch []byte             // unescaped JSON strings
	sc      scanner
	jsonOpt *framing.JSONOptions
}

// Parse detects the value's format and fills r. The protobuf form is tried
// as a varint-framed message when the prefix equals the remaining length,
// then as a bare message; a value starting with '{' is JSON, pmacct's or
// flowpipe/goflow2's as its keys say, unless it only parses as a framed
// message whose length prefix happens to be '{'.
func (p *Parser) Parse(value []byte, r *Record) error {
	*r = Record{Flows: 1}
	i := skipSpace(value, 0)
	if i == len(value) {
		return ErrEmpty
	}
	if value[i] == '{' {
		err := p.parseJSON(value, r)
		if err == nil {
			return nil
		}
		// A framed message of 123 bytes starts with its prefix 0x7b, '{':
		// binary never parses as JSON, so it is tried as protobuf next.
		if n, k := binary.Uvarint(value); k > 0 && n == uint64(len(value)-k) {
			*r = Record{Flows: 1, Format: FormatBin}
			if parseProto(value[k:], r) == nil {
				return nil
			}
		}
		*r = Record{Flows: 1}
		return err
	}
	r.Format = FormatBin
	if n, k := binary.Uvarint(value); k > 0 && n == uint64(len(value)-k) {
		if err := parseProto(value[k:], r); err == nil {
			return nil
		}
		*r = Record{Flows: 1, Format: FormatBin}
	}
	return parseProto(value, r)
}

// parseProto reads only the fields flowexport needs and skips the others,
// checking the wire format of the whole message. It accepts whatever the
// protobuf runtime (proto.Unmarshal) accepts, with the same values: like
// it, a known field with an unexpected wire type is kept as unknown. Where
// the runtime is stricter (group numbers, tags, UTF-8) it follows the
// generated UnmarshalVT, which is more lenient.
func parseProto(b []byte, r *Record) error {
	for len(b) > 0 {
		field := b
		tag, n := consumeVarint(b)
		if n < 0 {
			return fmt.Errorf("export: %w: bad tag", ErrBadProto)
		}
		num, typ := int32(tag>>3), protowire.Type(tag&7) // int32 as UnmarshalVT reads it
		if num <= 0 {
			return fmt.Errorf("export: %w: field number %d", ErrBadProto, num)
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == 3 || num == 9 || num == 10 || num == 14 || num == 15):
			v, n := consumeVarint(b)
			if n < 0 {
				return fmt.Errorf("export: %w: field %d: bad varint", ErrBadProto, num)
			}
			b = b[n:]
			switch num {
			case 3:
				r.SamplingRate = v
			case 9:
				r.Bytes = v
			case 10:
				r.Packets = v
			case 14:
				r.SrcAS = uint32(v) // proto's truncation of an oversized uint32
			case 15:
				r.DstAS = uint32(v)
			}
		case typ == protowire.BytesType && (num == 11 || num == 1100 || num == 1101):
			l, n := consumeVarint(b)
			if n < 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("export: %w: field %d: bad length", ErrBadProto, num)
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			switch num {
			case 11:
				r.Sampler = addrFromBytes(v)
			case 1100:
				r.SrcASName = v
			default:
				r.DstASName = v
			}
		default:
			n, err := protohelpers.Skip(field)
			if err != nil || n < len(field)-len(b) || n > len(field) {
				return fmt.Errorf("export: %w: field %d: malformed (%v)", ErrBadProto, num, err)
			}
			b = field[n:]
		}
	}
	return nil
}

// consumeVarint reads a varint as the generated UnmarshalVT does: up to
// ten bytes, bits past the 64th dropped. It returns n < 0 on error.
func consumeVarint(b []byte) (uint64, int) {
	var v uint64
	for i, shift := 0, uint(0); shift < 64; i, shift = i+1, shift+7 {
		if i >= len(b) {
			return 0, -1
		}
		c := b[i]
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

func addrFromBytes(b []byte) netip.Addr {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b))
	case 16:
		return netip.AddrFrom16([16]byte(b)).Unmap()
	}
	return netip.Addr{}
}

// parseJSON decides between pmacct's keys and flowpipe/goflow2's from the
// first key that only one of them uses, then parses the whole object.
func (p *Parser) parseJSON(value []byte, r *Record) error {
	pmacct, err := p.isPmacct(value)
	if err != nil {
		return err
	}
	if pmacct {
		r.Format = FormatPmacct
		return p.parsePmacct(value, r)
	}
	r.Format = FormatJSON
	m := &p.msg
	if err := framing.ParseJSON(value, m, p.jsonOpt); err != nil {
		return fmt.Errorf("export: %w: %v", ErrBadJSON, err)
	}
	r.SrcAS, r.DstAS = m.SrcAs, m.DstAs
	r.Bytes, r.Packets, r.SamplingRate = m.Bytes, m.Packets, m.SamplingRate
	r.Sampler = addrFromBytes(m.SamplerAddress)
	r.SrcASName = unsafeBytes(m.SrcAsName)
	r.DstASName = unsafeBytes(m.DstAsName)
	return nil
}

// dialect knows the keys that tell the two JSON dialects apart.
func dialect(key []byte) (pmacct, decided bool) {
	switch string(key) {
	case "as_src", "as_dst", "label", "peer_ip_src", "event_type", "ip_src", "ip_dst",
		"stamp_inserted", "stamp_updated", "writer_id", "flows", "peer_as_src", "peer_as_dst":
		return true, true
	case "type", "src_as", "dst_as", "sampler_address", "src_addr", "dst_addr",
		"time_received_ns", "sequence_num", "time_flow_start_ns":
		return false, true
	}
	return false, false
}

func (p *Parser) isPmacct(value []byte) (bool, error) {
	pmacct := false
	err := eachField(&p.sc, value, func(key []byte, s *scanner) (bool, error) {
		pm, decided := dialect(key)
		if decided {
			pmacct = pm
			return true, nil
		}
		return false, s.skipValue(0)
	})
	return pmacct, err
}

func (p *Parser) parsePmacct(value []byte, r *Record) error {
	p.scratch = p.scratch[:0]
	var haveCounter bool
	var peer []byte
	err := eachField(&p.sc, value, func(key []byte, s *scanner) (bool, error) {
		var err error
		switch string(key) {
		case "as_src":
			r.SrcAS, err = s.uint32()
		case "as_dst":
			r.DstAS, err = s.uint32()
		case "bytes":
			r.Bytes, err = s.uint64()
			haveCounter = true
		case "packets":
			r.Packets, err = s.uint64()
			haveCounter = true
		case "flows":
			r.Flows, err = s.uint64()
			haveCounter = true
		case "sampling_rate":
			r.SamplingRate, err = s.uint64()
		case "label":
			r.Label, p.scratch, err = s.str(p.scratch)
		case "peer_ip_src":
			peer, p.scratch, err = s.str(p.scratch)
		default:
			err = s.skipValue(0)
		}
		return false, err
	})
	if err != nil {
		return err
	}
	if !haveCounter {
		return fmt.Errorf("export: %w", ErrNoCounter)
	}
	if len(peer) > 0 {
		if a, err := netip.ParseAddr(unsafeString(peer)); err == nil {
			r.Sampler = a.Unmap()
		}
	}
	return nil
}

// scaled multiplies a count by the sampling rate (0 means 1), saturating
// instead of wrapping.
func scaled(v, rate uint64) uint64 {
	if rate <= 1 {
		return v
	}
	hi, lo := bits.Mul64(v, rate)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
