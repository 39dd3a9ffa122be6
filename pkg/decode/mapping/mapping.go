// Package mapping reads the YAML mapping file that puts further NetFlow v9
// and IPFIX information elements into custom fields of the flow record, as
// goflow2's -mapping does:
//
//	ipfix:
//	  mapping:
//	    - field: 82                 # interfaceName
//	      destination: in_if_name   # JSON name
//	      protobuf: 1200            # custom protobuf field number
//	      type: string              # uint | hex | ip | string
//	    - field: 123
//	      penprovided: true
//	      pen: 2636
//	      destination: juniper_x
//	      protobuf: 1201
//	      type: uint
//	netflowv9:
//	  mapping: [...]
//
// Mapped values are appended to the record's unknown fields (a varint for
// uint, length-delimited bytes otherwise), which the bin stream carries as
// they are and the JSON writer renders through CustomFields.
package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// MinProtobuf is the lowest custom field number: below it lie flow.proto's
// fields and the ranges reserved for enrichment.
const MinProtobuf = 1200

// Kind is how a mapped value is carried and rendered.
type Kind uint8

const (
	KindUint   Kind = iota // big-endian unsigned integer, up to 8 bytes, as a varint
	KindHex                // bytes, rendered as hex
	KindIP                 // 4 or 16 bytes, rendered as an address
	KindString             // bytes, rendered as a string
)

// Entry maps one information element.
type Entry struct {
	Field       uint16 `yaml:"field"`
	PENProvided bool   `yaml:"penprovided"`
	PEN         uint32 `yaml:"pen"`
	Destination string `yaml:"destination"`
	Protobuf    uint32 `yaml:"protobuf"`
	Type        string `yaml:"type"`
	Kind        Kind   `yaml:"-"`
}

// Mapping is a loaded, validated mapping file.
type Mapping struct {
	IPFIX     []Entry
	NetFlowV9 []Entry
}

type file struct {
	IPFIX struct {
		Mapping []Entry `yaml:"mapping"`
	} `yaml:"ipfix"`
	NetFlowV9 struct {
		Mapping []Entry `yaml:"mapping"`
	} `yaml:"netflowv9"`
}

// LoadFile reads and validates a mapping file.
func LoadFile(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	defer f.Close()
	return Load(f)
}

// Load reads and validates a mapping. Unknown keys, unknown types, field
// numbers below MinProtobuf or used by flow.proto, and one number given
// two destinations are errors that name the entry.
func Load(r io.Reader) (*Mapping, error) {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("mapping: %w", err)
	}
	m := &Mapping{IPFIX: f.IPFIX.Mapping, NetFlowV9: f.NetFlowV9.Mapping}
	used := map[uint32]string{}
	var errs []error
	check := func(section string, es []Entry) {
		for i := range es {
			e := &es[i]
			where := fmt.Sprintf("%s entry %d (field %d, destination %q)", section, i+1, e.Field, e.Destination)
			switch e.Type {
			case "", "uint":
				e.Kind = KindUint
			case "hex", "bytes":
				e.Kind = KindHex
			case "ip", "addr":
				e.Kind = KindIP
			case "string":
				e.Kind = KindString
			default:
				errs = append(errs, fmt.Errorf("mapping: %s: unknown type %q (uint, hex, ip, string)", where, e.Type))
			}
			if !e.PENProvided {
				e.PEN = 0
			}
			if e.Destination == "" {
				errs = append(errs, fmt.Errorf("mapping: %s: destination is empty", where))
			}
			switch {
			case e.Protobuf == 0:
				errs = append(errs, fmt.Errorf("mapping: %s: protobuf field number missing", where))
			case e.Protobuf < MinProtobuf || e.Protobuf > uint32(protowire.MaxValidNumber):
				errs = append(errs, fmt.Errorf("mapping: %s: protobuf %d outside %d-%d (lower numbers belong to flow.proto and enrichment)", where, e.Protobuf, MinProtobuf, protowire.MaxValidNumber))
			case protoField(e.Protobuf) != "":
				errs = append(errs, fmt.Errorf("mapping: %s: protobuf %d is flow.proto's %s", where, e.Protobuf, protoField(e.Protobuf)))
			}
			if prev, ok := used[e.Protobuf]; ok && prev != e.Destination {
				errs = append(errs, fmt.Errorf("mapping: %s: protobuf %d already carries %q", where, e.Protobuf, prev))
			}
			used[e.Protobuf] = e.Destination
		}
	}
	check("ipfix", m.IPFIX)
	check("netflowv9", m.NetFlowV9)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

func protoField(n uint32) string {
	fd := (&flowpb.FlowMessage{}).ProtoReflect().Descriptor().Fields().ByNumber(protowire.Number(n))
	if fd == nil {
		return ""
	}
	return string(fd.Name())
}

// Lookup returns the index of the entry for an element of a protocol
// version (9 or 10), -1 when unmapped. It is meant for template
// compilation, not for the per-record path.
func (m *Mapping) Lookup(version uint16, pen uint32, field uint16) int {
	if m == nil {
		return -1
	}
	for i, e := range m.entries(version) {
		if e.Field == field && e.PEN == pen {
			return i
		}
	}
	return -1
}

func (m *Mapping) entries(version uint16) []Entry {
	if version == 9 {
		return m.NetFlowV9
	}
	return m.IPFIX
}

// Entry returns entry i of a protocol version's mapping.
func (m *Mapping) Entry(version uint16, i int) *Entry { return &m.entries(version)[i] }

// Append appends the value v of entry e to dst in protobuf wire form. It
// does not allocate beyond growing dst.
func (e *Entry) Append(dst []byte, v []byte) []byte {
	dst = protowire.AppendTag(dst, protowire.Number(e.Protobuf), e.wireType())
	if e.Kind == KindUint {
		var u uint64
		if len(v) > 8 {
			v = v[len(v)-8:]
		}
		for _, c := range v {
			u = u<<8 | uint64(c)
		}
		return protowire.AppendVarint(dst, u)
	}
	return protowire.AppendBytes(dst, v)
}

func (e *Entry) wireType() protowire.Type {
	if e.Kind == KindUint {
		return protowire.VarintType
	}
	return protowire.BytesType
}

// CustomFields lists the mapped destinations for the JSON writer, each
// protobuf number once, in file order.
func (m *Mapping) CustomFields() []framing.CustomField {
	if m == nil {
		return nil
	}
	var out []framing.CustomField
	seen := map[uint32]bool{}
	for _, es := range [][]Entry{m.IPFIX, m.NetFlowV9} {
		for _, e := range es {
			if seen[e.Protobuf] {
				continue
			}
			seen[e.Protobuf] = true
			r := framing.RenderUint
			switch e.Kind {
			case KindHex:
				r = framing.RenderHex
			case KindIP:
				r = framing.RenderIP
			case KindString:
				r = framing.RenderString
			}
			out = append(out, framing.CustomField{Name: e.Destination, Number: protowire.Number(e.Protobuf), Render: r})
		}
	}
	return out
}
