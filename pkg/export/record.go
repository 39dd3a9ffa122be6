package export

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/wire"
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
	// Fields holds the values of the fields named to Parser.ReadFields, in
	// their order; zero values where the record lacks one.
	Fields []Value
}

// Value is one field's value in a Record: an integer (numbers, enums,
// bools) in Uint, the content of a string or bytes field in Bytes.
type Value struct {
	Uint  uint64
	Bytes []byte
}

// Parser turns Kafka record values into Records without allocating once
// warmed up. A Parser is not safe for concurrent use.
type Parser struct {
	msg     flowpb.FlowMessage // reused by framing.ParseJSON
	scratch []byte             // unescaped JSON strings
	js      wire.JSONScanner
	jsonOpt *framing.JSONOptions

	// ReadFields' fields: their descriptions, values and, with the
	// counted fields, the fields parseProto stops at.
	fields []flowpb.Field
	values []Value
	stop   *wire.FieldSet
	found  []wire.Field // parseProto's scratch
}

// countedFields are the fields parseProto reads for every record.
var countedFields = wire.NewFieldSet(flowpb.FieldSamplingRate, flowpb.FieldBytes, flowpb.FieldPackets,
	flowpb.FieldSamplerAddress, flowpb.FieldSrcAs, flowpb.FieldDstAs, flowpb.FieldSrcAsName, flowpb.FieldDstAsName)

// ReadFields makes Parse also read the named fields of flow.proto (any
// singular one, by its name, as FieldByName knows it) into Record.Fields,
// in the order given, from protobuf and flowpipe/goflow2 JSON records;
// pmacct's records, whose keys differ, leave them zero. Grouping by one
// more field is a name in this list: no parser change.
func (p *Parser) ReadFields(names ...string) error {
	var fields []flowpb.Field
	stop := countedFields.Union(wire.NewFieldSet())
	for _, name := range names {
		f, ok := flowpb.FieldByName(name)
		if !ok {
			return fmt.Errorf("export: unknown field %q", name)
		}
		if !f.Singular() {
			return fmt.Errorf("export: field %q holds a list, not one value", name)
		}
		fields = append(fields, f)
		stop.Add(f.Number)
	}
	p.fields, p.values, p.stop = fields, make([]Value, len(fields)), stop
	return nil
}

// Parse detects the value's format and fills r. The protobuf form is tried
// as a varint-framed message when the prefix equals the remaining length,
// then as a bare message; a value starting with '{' is JSON, pmacct's or
// flowpipe/goflow2's as its keys say, unless it only parses as a framed
// message whose length prefix happens to be '{'.
func (p *Parser) Parse(value []byte, r *Record) error {
	*r = Record{Flows: 1}
	clear(p.values)
	i := skipSpace(value, 0)
	if i == len(value) {
		return ErrEmpty
	}
	if value[i] == '{' {
		err := p.parseJSON(value, r)
		if err == nil {
			return p.done(r)
		}
		// A framed message of 123 bytes starts with its prefix 0x7b, '{':
		// binary never parses as JSON, so it is tried as protobuf next.
		if body, ok := wholeFrame(value); ok {
			*r = Record{Flows: 1, Format: FormatBin}
			clear(p.values)
			if p.parseProto(body, r) == nil {
				return p.done(r)
			}
		}
		*r = Record{Flows: 1}
		return err
	}
	r.Format = FormatBin
	if body, ok := wholeFrame(value); ok {
		if err := p.parseProto(body, r); err == nil {
			return p.done(r)
		}
		*r = Record{Flows: 1, Format: FormatBin}
		clear(p.values)
	}
	if err := p.parseProto(value, r); err != nil {
		return err
	}
	return p.done(r)
}

// wholeFrame reports whether value is exactly one frame: a length prefix
// equal to the length of what follows, or of what follows but a last
// newline (a record of goflow2's bin file output, -transport.file.sep's
// default, carried as it is).
func wholeFrame(value []byte) ([]byte, bool) {
	body, end, _, _ := wire.NextFrame(value, 0, len(value))
	return body, end > 0 && (end == len(value) || end == len(value)-1 && value[end] == '\n')
}

func (p *Parser) done(r *Record) error {
	if len(p.values) > 0 {
		r.Fields = p.values
	}
	return nil
}

// parseProto reads only the fields flowexport needs and skips the others,
// checking the wire format of the whole message. It accepts whatever the
// protobuf runtime (proto.Unmarshal) accepts, with the same values: like
// it, a known field with an unexpected wire type is kept as unknown.
func parseProto(b []byte, r *Record) error {
	var p Parser
	return p.parseProto(b, r)
}

func (p *Parser) parseProto(b []byte, r *Record) error {
	stop := p.stop
	if stop == nil {
		stop = countedFields
	}
	found, err := wire.AppendFields(p.found[:0], b, stop)
	p.found = found
	if err != nil {
		return fmt.Errorf("export: %w: %v", ErrBadProto, err)
	}
	for _, f := range found {
		val := b[f.Value:f.End:f.End]
		varint, bytes := f.Type == protowire.VarintType, f.Type == protowire.BytesType
		switch f.Num {
		case flowpb.FieldSamplingRate:
			if varint {
				r.SamplingRate = wire.Varint(val)
			}
		case flowpb.FieldBytes:
			if varint {
				r.Bytes = wire.Varint(val)
			}
		case flowpb.FieldPackets:
			if varint {
				r.Packets = wire.Varint(val)
			}
		case flowpb.FieldSrcAs:
			if varint {
				r.SrcAS = uint32(wire.Varint(val)) // proto's truncation of an oversized uint32
			}
		case flowpb.FieldDstAs:
			if varint {
				r.DstAS = uint32(wire.Varint(val))
			}
		case flowpb.FieldSamplerAddress:
			if bytes {
				r.Sampler = addrFromBytes(val)
			}
		case flowpb.FieldSrcAsName:
			if bytes {
				r.SrcASName = val
			}
		case flowpb.FieldDstAsName:
			if bytes {
				r.DstASName = val
			}
		}
		if len(p.fields) > 0 {
			p.readField(f, val)
		}
	}
	return nil
}

// readField keeps f's value if ReadFields named it.
func (p *Parser) readField(f wire.Field, val []byte) {
	for i, fd := range p.fields {
		if fd.Number != f.Num {
			continue
		}
		switch {
		case f.Type == protowire.VarintType && fd.Numeric():
			p.values[i] = Value{Uint: wire.Varint(val)}
		case f.Type == protowire.BytesType && !fd.Numeric():
			p.values[i] = Value{Bytes: val}
		}
	}
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
	for i, f := range p.fields {
		u, b, _ := m.Scalar(f.Number)
		p.values[i] = Value{Uint: u, Bytes: b}
	}
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
