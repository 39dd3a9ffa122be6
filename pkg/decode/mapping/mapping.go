// Package mapping reads goflow2's mapping file (goflow2 -mapping, the
// cmd/goflow2/mapping.yaml of goflow2 v2.2.6 loads as it is) and compiles
// it for the decoders and the JSON writer:
//
//	formatter:
//	  fields: [type, time_received_ns, sampler_address, bytes, csum]  # JSON: these, in this order
//	  key: [sampler_address]          # Kafka key fields (flowpublish --mapping)
//	  protobuf:                       # custom fields: JSON name, protobuf number, varint|string|bytes
//	    - {name: csum, index: 999, type: varint}
//	  render: {time_received_ns: datetimenano}   # none ip mac etype proto network datetime datetimenano string
//	  rename: {sampler_address: exporter}        # JSON key of a field
//	ipfix:
//	  mapping:
//	    - {field: 61, destination: flow_direction}               # into a custom field
//	    - {field: 137, penprovided: true, pen: 2636, destination: juniper_properties}
//	netflowv9:
//	  mapping:
//	    - {field: 34, destination: sampling_rate}                 # into flow.proto's field
//	sflow:
//	  ports:   [{proto: udp, dir: dst, port: 3544, parser: teredo-dst}]
//	  mapping: [{layer: udp, offset: 48, length: 16, destination: csum}]  # bits from the layer's start
//
// A destination is, in this order: a custom field of formatter.protobuf
// (its number and type), a custom field given inline in the entry
// (flowpipe's older form: protobuf: N, type: uint|hex|ip|string), or a
// field of flow.proto, by its JSON name or its goflow2 Go name
// (sampling_rate or SamplingRate), which the value then sets (numbers
// big-endian unless endianness is little; goflow2's example writes
// endian, which goflow2 ignores, and so does flowpipe, with a warning).
// A destination that is
// none of these does nothing, as in goflow2, and is named in Warnings.
//
// Custom values go into the record's unknown fields, at their numbers (a
// varint for varint/uint, length-delimited bytes otherwise); an array
// field gets one occurrence per value, any other keeps its last one. The
// bin stream carries them as they are; the JSON writer renders them under
// their names.
package mapping

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// Kind is how a custom value is carried and rendered.
type Kind uint8

const (
	KindUint   Kind = iota // big-endian (or little) unsigned integer, up to 8 bytes, as a varint
	KindHex                // bytes, rendered as hex
	KindIP                 // 4 or 16 bytes, rendered as an address
	KindString             // bytes, rendered as a string
)

// Target is where a mapped value goes.
type Target struct {
	// Standard: flow.proto's field Number; otherwise a custom field.
	Standard bool
	Number   protowire.Number
	Kind     Kind // custom fields: KindUint is a varint, the others bytes
	Little   bool // numbers are little-endian
	Array    bool // custom fields: every value kept, in order
}

// Entry maps one NetFlow v9 or IPFIX information element.
type Entry struct {
	Field       uint16 `yaml:"field"`
	PENProvided bool   `yaml:"penprovided"`
	PEN         uint32 `yaml:"pen"`
	Destination string `yaml:"destination"`
	// Endianness is goflow2's key; Endian, the one its documentation and
	// example file use, goflow2 v2.2.6 ignores, and so does flowpipe (with
	// a warning): numbers stay big-endian.
	Endianness string `yaml:"endianness"`
	Endian     string `yaml:"endian"`
	// Protobuf and Type give a custom field inline (flowpipe's older form).
	Protobuf uint32 `yaml:"protobuf"`
	Type     string `yaml:"type"`

	Target `yaml:"-"`
	active bool
}

// LayerEntry maps bits of a sampled packet's layer (sFlow, and IPFIX
// data-link frame sections): Length bits from Offset bits after the start
// of Layer's header, in the outer packet or, with Encap, in an
// encapsulated one.
type LayerEntry struct {
	Layer       string `yaml:"layer"`
	Encap       bool   `yaml:"encap"`
	Offset      int    `yaml:"offset"`
	Length      int    `yaml:"length"`
	Destination string `yaml:"destination"`
	Endianness  string `yaml:"endianness"`
	Endian      string `yaml:"endian"`

	Target `yaml:"-"`
}

// Port names the parser of what follows a UDP or TCP header with this
// port (goflow2's sflow.ports): Dir is src, dst or both.
type Port struct {
	Proto  string `yaml:"proto"`
	Dir    string `yaml:"dir"`
	Port   uint16 `yaml:"port"`
	Parser string `yaml:"parser"`
}

// ProtobufField declares a custom field (formatter.protobuf).
type ProtobufField struct {
	Name  string `yaml:"name"`
	Index int32  `yaml:"index"`
	Type  string `yaml:"type"` // varint, string or bytes
	Array bool   `yaml:"array"`
}

// Formatter is the formatter section.
type Formatter struct {
	Fields   []string          `yaml:"fields"`
	Key      []string          `yaml:"key"`
	Render   map[string]string `yaml:"render"`
	Rename   map[string]string `yaml:"rename"`
	Protobuf []ProtobufField   `yaml:"protobuf"`
}

// Mapping is a loaded, validated mapping file.
type Mapping struct {
	Formatter Formatter
	IPFIX     []Entry
	NetFlowV9 []Entry
	SFlow     []LayerEntry
	Ports     []Port
	// Warnings name what loads but does nothing, or does something other
	// than goflow2 v2.2.6 would; the tools log them.
	Warnings []string

	custom map[string]*ProtobufField // formatter.protobuf by name
}

type file struct {
	Formatter Formatter `yaml:"formatter"`
	IPFIX     struct {
		Mapping []Entry `yaml:"mapping"`
	} `yaml:"ipfix"`
	NetFlowV9 struct {
		Mapping []Entry `yaml:"mapping"`
	} `yaml:"netflowv9"`
	SFlow struct {
		Mapping []LayerEntry `yaml:"mapping"`
		Ports   []Port       `yaml:"ports"`
	} `yaml:"sflow"`
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

// Renderers are the names formatter.render accepts (goflow2's).
var Renderers = []string{"none", "ip", "mac", "etype", "proto", "network", "datetime", "datetimenano", "string"}

// Parsers are the names sflow.ports accepts (goflow2's, with their
// aliases).
var Parsers = []string{"gre", "teredo-dst", "teredo", "geneve", "vxlan"}

// layers are the layer names of sflow.mapping, as goflow2's parsers
// answer to them; a port-qualified name (udp4754) names the layer that a
// port parser starts.
var layers = []string{"ethernet", "2", "dot1q", "mpls", "ipv4", "ipv6", "ip", "3", "ipv6eh_routing", "ipv6-route",
	"ipv6eh", "ipv6eh_fragment", "ipv6-frag", "tcp", "udp", "4", "icmp", "icmpv6", "ipv6-icmp", "gre",
	"teredo-dst", "teredo", "geneve", "vxlan"}

var portLayer = regexp.MustCompile(`^(udp|tcp)[0-9]{1,5}$`)

// Load reads and validates a mapping. Unknown keys, unknown types,
// renderers and parsers, custom numbers that flow.proto uses, and one
// number given two names are errors that name the entry.
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
	m := &Mapping{Formatter: f.Formatter, IPFIX: f.IPFIX.Mapping, NetFlowV9: f.NetFlowV9.Mapping,
		SFlow: f.SFlow.Mapping, Ports: f.SFlow.Ports, custom: map[string]*ProtobufField{}}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf("mapping: "+format, a...)) }
	warn := func(format string, a ...any) { m.Warnings = append(m.Warnings, fmt.Sprintf(format, a...)) }

	// formatter.protobuf: custom fields by name.
	byNumber := map[protowire.Number]string{}
	for i := range m.Formatter.Protobuf {
		p := &m.Formatter.Protobuf[i]
		where := fmt.Sprintf("formatter.protobuf entry %d (%q)", i+1, p.Name)
		switch p.Type {
		case "varint", "string", "bytes":
		default:
			fail("%s: unknown type %q (varint, string, bytes)", where, p.Type)
		}
		n := protowire.Number(p.Index)
		switch {
		case p.Name == "":
			fail("%s: name is empty", where)
		case !n.IsValid() || n >= protowire.FirstReservedNumber && n <= protowire.LastReservedNumber:
			fail("%s: index %d is not a usable protobuf field number", where, p.Index)
		}
		if fd, ok := flowpb.FieldByNumber(n); ok && fd.Name != p.Name {
			fail("%s: index %d is flow.proto's %s", where, p.Index, fd.Name)
		}
		if prev, ok := byNumber[n]; ok && prev != p.Name {
			fail("%s: index %d already carries %q", where, p.Index, prev)
		}
		byNumber[n] = p.Name
		if fd, ok := flowpb.FieldByName(p.Name); ok && fd.Number != n {
			warn("formatter.protobuf %q at %d: a custom field of flowpipe's own field's name (%s, %d, which this JSON then leaves out); a stage reading this JSON without the mapping (flowenrich, flowexport) takes %q for flowpipe's field: rename it there (formatter.rename) or pass bin", p.Name, p.Index, fd.Name, fd.Number, p.Name)
		}
		m.custom[p.Name] = p
	}
	// formatter.render and rename, fields and key.
	for name, r := range m.Formatter.Render {
		if !slices.Contains(Renderers, r) {
			fail("formatter.render %s: unknown renderer %q (%s)", name, r, strings.Join(Renderers, ", "))
		}
	}
	for _, name := range m.Formatter.Fields {
		if !m.known(name) && m.Formatter.Render[name] == "" && name != "icmp_name" {
			fail("formatter.fields: %q is neither a flow.proto field nor in formatter.protobuf", name)
		}
	}
	for _, name := range m.Formatter.Key {
		if !m.known(name) {
			fail("formatter.key: %q is neither a flow.proto field nor in formatter.protobuf", name)
		}
	}

	// ipfix and netflowv9.
	used := map[protowire.Number]string{}
	for n, name := range byNumber {
		used[n] = name
	}
	check := func(section string, es []Entry) {
		for i := range es {
			e := &es[i]
			where := fmt.Sprintf("%s entry %d (field %d, destination %q)", section, i+1, e.Field, e.Destination)
			if !e.PENProvided {
				e.PEN = 0
			}
			little, err := endian(e.Endianness)
			if err != nil {
				fail("%s: %v", where, err)
			}
			if e.Endian != "" && e.Endianness == "" {
				warn("%s: endian: %s ignored, as goflow2 v2.2.6 ignores it: read big-endian, as IPFIX and NetFlow v9 send numbers (the key is endianness)", where, e.Endian)
			}
			if e.Destination == "" {
				fail("%s: destination is empty", where)
				continue
			}
			if e.Protobuf != 0 || e.Type != "" { // inline custom field
				if _, ok := m.custom[e.Destination]; ok {
					fail("%s: destination is in formatter.protobuf: give no protobuf/type here", where)
					continue
				}
				if err := m.inline(e, used); err != nil {
					fail("%s: %v", where, err)
					continue
				}
				e.Little, e.active = little, true
				continue
			}
			t, ok := m.target(e.Destination)
			if !ok {
				warn("%s: destination is neither in formatter.protobuf nor a flow.proto field: ignored (goflow2 ignores it too)", where)
				continue
			}
			t.Little = little
			e.Target, e.active = t, true
			switch name := flowpbName(t.Number); {
			case !t.Standard:
			case e.Destination != goName(name):
				warn("%s: sets flow.proto's %s (goflow2 v2.2.6 looks destinations up by Go field name, %s: there this entry does nothing)", where, name, goName(name))
			case t.Number == flowpb.FieldSamplingRate:
				warn("%s: sets sampling_rate (goflow2 v2.2.6 overwrites it with the options data's rate: there this entry does nothing)", where)
			}
		}
	}
	check("ipfix", m.IPFIX)
	check("netflowv9", m.NetFlowV9)

	// sflow.
	for i := range m.SFlow {
		e := &m.SFlow[i]
		e.Layer = strings.ToLower(e.Layer)
		where := fmt.Sprintf("sflow.mapping entry %d (layer %q, destination %q)", i+1, e.Layer, e.Destination)
		little, err := endian(e.Endianness)
		if err != nil {
			fail("%s: %v", where, err)
		}
		if e.Endian != "" && e.Endianness == "" {
			warn("%s: endian: %s ignored, as goflow2 v2.2.6 ignores it: read big-endian (the key is endianness)", where, e.Endian)
		}
		switch {
		case e.Offset < 0 || e.Length <= 0 || e.Offset > 1<<16 || e.Length > 1<<12:
			fail("%s: offset %d, length %d bits: want offset 0-65536, length 1-4096", where, e.Offset, e.Length)
			continue
		case !slices.Contains(layers, e.Layer) && !portLayer.MatchString(e.Layer):
			warn("%s: no parser answers to this layer (%s, or udpPORT/tcpPORT): ignored", where, strings.Join(layers, ", "))
		}
		t, ok := m.target(e.Destination)
		if !ok {
			warn("%s: destination is neither in formatter.protobuf nor a flow.proto field: ignored (goflow2 ignores it too)", where)
			e.Length = 0
			continue
		}
		t.Little = little
		e.Target = t
	}
	for i, p := range m.Ports {
		where := fmt.Sprintf("sflow.ports entry %d (%s %s %d)", i+1, p.Proto, p.Dir, p.Port)
		if p.Proto != "udp" && p.Proto != "tcp" {
			fail("%s: proto must be udp or tcp", where)
		}
		if p.Dir != "src" && p.Dir != "dst" && p.Dir != "both" {
			fail("%s: dir must be src, dst or both", where)
		}
		if !slices.Contains(Parsers, p.Parser) {
			fail("%s: unknown parser %q (%s)", where, p.Parser, strings.Join(Parsers, ", "))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// endian reads an entry's endianness. goflow2's example file and
// documentation write endian: little, a key goflow2 v2.2.6 does not read:
// it is ignored here too, so that goflow2's file read as is decodes what
// goflow2 decodes (a samplingInterval sent in network order, as every
// exporter we know sends it, read little-endian would be garbage).
func endian(a string) (little bool, err error) {
	switch a {
	case "", "big":
		return false, nil
	case "little":
		return true, nil
	}
	return false, fmt.Errorf("endianness %q (want big or little)", a)
}

// inline checks an entry in flowpipe's older form, with its custom field
// number and type in the entry itself.
func (m *Mapping) inline(e *Entry, used map[protowire.Number]string) error {
	switch e.Type {
	case "", "uint", "varint":
		e.Kind = KindUint
	case "hex", "bytes":
		e.Kind = KindHex
	case "ip", "addr":
		e.Kind = KindIP
	case "string":
		e.Kind = KindString
	default:
		return fmt.Errorf("unknown type %q (uint, hex, ip, string)", e.Type)
	}
	n := protowire.Number(e.Protobuf)
	switch {
	case e.Protobuf == 0:
		return errors.New("protobuf field number missing")
	case !n.IsValid() || n >= protowire.FirstReservedNumber && n <= protowire.LastReservedNumber:
		return fmt.Errorf("protobuf %d is not a usable field number", e.Protobuf)
	}
	if fd, ok := flowpb.FieldByNumber(n); ok {
		return fmt.Errorf("protobuf %d is flow.proto's %s", e.Protobuf, fd.Name)
	}
	if prev, ok := used[n]; ok && prev != e.Destination {
		return fmt.Errorf("protobuf %d already carries %q", e.Protobuf, prev)
	}
	used[n] = e.Destination
	e.Number = n
	return nil
}

// known says whether name is a field the formatter can show.
func (m *Mapping) known(name string) bool {
	if _, ok := m.custom[name]; ok {
		return true
	}
	_, ok := standard(name)
	return ok
}

// target resolves a destination name.
func (m *Mapping) target(name string) (Target, bool) {
	if p, ok := m.custom[name]; ok {
		t := Target{Number: protowire.Number(p.Index), Array: p.Array, Kind: KindHex}
		if p.Type == "varint" {
			t.Kind = KindUint
		} else if r := m.Formatter.Render[name]; r == "ip" {
			t.Kind = KindIP
		} else if r == "string" {
			t.Kind = KindString
		}
		return t, true
	}
	if f, ok := standard(name); ok {
		return Target{Standard: true, Number: f.Number}, true
	}
	return Target{}, false
}

// standard finds a flow.proto field by JSON name or by goflow2's Go name
// (SamplingRate).
func standard(name string) (flowpb.Field, bool) {
	if f, ok := flowpb.FieldByName(name); ok {
		return f, true
	}
	for _, f := range flowpb.Fields() {
		if goName(f.Name) == name {
			return f, true
		}
	}
	return flowpb.Field{}, false
}

// goName is protoc-gen-go's name for a field: sampling_rate is SamplingRate.
func goName(name string) string {
	var b strings.Builder
	up := true
	for _, c := range name {
		if c == '_' {
			up = true
			continue
		}
		if up && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b.WriteRune(c)
	}
	return b.String()
}

func flowpbName(n protowire.Number) string {
	f, _ := flowpb.FieldByNumber(n)
	return f.Name
}

// Lookup returns the index of the entry for an element of a protocol
// version (9 or 10), -1 when unmapped. It is meant for template
// compilation, not for the per-record path.
func (m *Mapping) Lookup(version uint16, pen uint32, field uint16) int {
	if m == nil {
		return -1
	}
	es := m.entries(version)
	for i := len(es) - 1; i >= 0; i-- { // the last entry for an element wins, as in goflow2's map
		if e := &es[i]; e.active && e.Field == field && e.PEN == pen {
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

// Append appends the value v of a custom target to dst in protobuf wire
// form. It does not allocate beyond growing dst. A standard target
// appends nothing: Set it on the message.
func (t *Target) Append(dst []byte, v []byte) []byte {
	if t.Standard {
		return dst
	}
	if t.Kind == KindUint {
		dst = protowire.AppendTag(dst, t.Number, protowire.VarintType)
		return protowire.AppendVarint(dst, t.Uint(v))
	}
	dst = protowire.AppendTag(dst, t.Number, protowire.BytesType)
	return protowire.AppendBytes(dst, v)
}

// Uint reads v as an unsigned number in the target's byte order; longer
// than 8 bytes, its last 8 (big-endian) or first 8 (little) count.
func (t *Target) Uint(v []byte) uint64 {
	if t.Little {
		var b [8]byte
		copy(b[:], v)
		return binary.LittleEndian.Uint64(b[:])
	}
	if len(v) > 8 {
		v = v[len(v)-8:]
	}
	var u uint64
	for _, c := range v {
		u = u<<8 | uint64(c)
	}
	return u
}

// Set puts v into m's standard field (numbers read as Uint does, bytes and
// strings as they are). It reports false for a custom target.
func (t *Target) Set(m *flowpb.FlowMessage, v []byte) bool {
	if !t.Standard {
		return false
	}
	return m.SetField(t.Number, t.Uint(v), v)
}

// CustomFields lists the custom fields for the default JSON layout, each
// number once: formatter.protobuf's, then the inline ones, in file order.
func (m *Mapping) CustomFields() []framing.CustomField {
	if m == nil {
		return nil
	}
	var out []framing.CustomField
	seen := map[protowire.Number]bool{}
	add := func(name string, t Target) {
		if seen[t.Number] {
			return
		}
		seen[t.Number] = true
		out = append(out, framing.CustomField{Name: name, Number: t.Number, Render: kindRender(t.Kind), Array: t.Array})
	}
	for _, p := range m.Formatter.Protobuf {
		t, _ := m.target(p.Name)
		add(p.Name, t)
	}
	for _, es := range [][]Entry{m.IPFIX, m.NetFlowV9} {
		for _, e := range es {
			if e.active && !e.Standard {
				add(e.Destination, e.Target)
			}
		}
	}
	return out
}

func kindRender(k Kind) framing.Render {
	switch k {
	case KindHex:
		return framing.RenderHex
	case KindIP:
		return framing.RenderIP
	case KindString:
		return framing.RenderString
	}
	return framing.RenderUint
}

// JSONOptions is the JSON form the mapping asks for: with formatter.fields,
// goflow2's formatter, exactly those fields in that order with their
// renderers and renames; with render or rename alone, goflow2's fields
// so rendered and named, then flowpipe's own fields when set, then the
// custom ones (goflow2 would leave those out); with neither, flowpipe's
// default layout followed by the custom fields.
func (m *Mapping) JSONOptions() *framing.JSONOptions {
	opts := &framing.JSONOptions{}
	if m == nil {
		return opts
	}
	opts.Custom = m.CustomFields()
	f := m.Formatter
	for i := range opts.Custom {
		if r, ok := f.Render[opts.Custom[i].Name]; ok {
			opts.Custom[i].Render = renderByName(r)
		}
	}
	names := f.Fields
	omit := map[string]bool{}
	switch {
	case len(names) > 0:
	case len(f.Render) == 0 && len(f.Rename) == 0:
		return opts
	default:
		// render or rename without fields: goflow2 writes every field of
		// its record so; flowpipe's own fields follow when set, then the
		// custom ones.
		for _, fd := range flowpb.Fields() {
			if _, custom := m.custom[fd.Name]; custom {
				continue
			}
			names = append(names, fd.Name)
			omit[fd.Name] = !fd.Goflow2
		}
		for _, p := range m.Formatter.Protobuf {
			names = append(names, p.Name)
		}
	}
	for _, name := range names {
		c := framing.Column{Key: name, Render: framing.RenderDefault, OmitZero: omit[name]}
		if r, ok := f.Rename[name]; ok && r != "" {
			c.Key = r
		}
		if r, ok := f.Render[name]; ok {
			c.Render = renderByName(r)
		}
		if p, ok := m.custom[name]; ok {
			c.Number, c.Custom, c.Array = protowire.Number(p.Index), true, p.Array
		} else if fd, ok := standard(name); ok {
			c.Number = fd.Number
		} else if name == "icmp_name" && c.Render == framing.RenderDefault {
			c.Render = framing.RenderICMPName
		}
		opts.Columns = append(opts.Columns, c)
	}
	return opts
}

func renderByName(r string) framing.Render {
	switch r {
	case "ip":
		return framing.RenderIP
	case "mac":
		return framing.RenderMAC
	case "etype":
		return framing.RenderEtype
	case "proto":
		return framing.RenderProto
	case "network":
		return framing.RenderNetwork
	case "datetime":
		return framing.RenderDateTime
	case "datetimenano":
		return framing.RenderDateTimeNano
	case "string":
		return framing.RenderString
	}
	return framing.RenderNone
}

// Key lists formatter.key (the Kafka key fields).
func (m *Mapping) Key() []string {
	if m == nil {
		return nil
	}
	return m.Formatter.Key
}

// PacketOptions returns what the sflow section asks of the sampled-packet
// walk (sFlow headers, and IPFIX data-link frame sections): the port
// parsers and a visitor that maps layer bits into fields; nil when the
// section is empty. Every decoder needs its own: the visitor keeps a
// buffer.
func (m *Mapping) PacketOptions() *packet.Options {
	if m == nil || len(m.SFlow) == 0 && len(m.Ports) == 0 {
		return nil
	}
	o := &packet.Options{}
	for _, p := range m.Ports {
		pp := packet.PortParser{TCP: p.Proto == "tcp", Src: p.Dir != "dst", Dst: p.Dir != "src", Port: p.Port}
		switch p.Parser {
		case "gre":
			pp.Layer = packet.GRE
		case "teredo-dst", "teredo":
			pp.Layer = packet.Teredo
		case "geneve":
			pp.Layer = packet.Geneve
		case "vxlan":
			pp.Layer = packet.VXLAN
		}
		o.Ports = append(o.Ports, pp)
	}
	if len(m.SFlow) > 0 {
		o.Visitor = &layerVisitor{entries: m.SFlow}
	}
	return o
}

// layerVisitor applies sflow.mapping to each layer of a walk.
type layerVisitor struct {
	entries []LayerEntry
	unknown []byte // the record's custom fields, reused from record to record
	bits    []byte
}

func (v *layerVisitor) Visit(msg *flowpb.FlowMessage, l packet.Layer, port uint16, b []byte, encap bool) {
	names := l.Names()
	for i := range v.entries {
		e := &v.entries[i]
		if e.Length == 0 || e.Encap != encap || !layerMatch(e.Layer, names, port) {
			continue
		}
		var ok bool
		if v.bits, ok = AppendBits(v.bits[:0], b, e.Offset, e.Length); !ok {
			continue
		}
		if e.Standard {
			e.Set(msg, v.bits)
			continue
		}
		r := msg.ProtoReflect()
		u := r.GetUnknown()
		if len(u) == 0 {
			u = v.unknown[:0]
		}
		u = e.Append(u, v.bits)
		v.unknown = u
		r.SetUnknown(u)
	}
}

// layerMatch says whether a mapping's layer name is one of the layer's
// names, or udpPORT / tcpPORT for the port that started it.
func layerMatch(name string, names []string, port uint16) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	if port == 0 || len(name) < 4 || name[:3] != "udp" && name[:3] != "tcp" {
		return false
	}
	p := 0
	for _, c := range name[3:] {
		if c < '0' || c > '9' || p > 65535 {
			return false
		}
		p = p*10 + int(c-'0')
	}
	return p == int(port)
}

// AppendBits appends length bits of b from bit offset off (bits counted
// from the first byte's most significant one) in ceil(length/8) bytes, as
// goflow2 v2.2.6 extracts them: the bits are moved to the first byte's top,
// and the last byte alone is shifted down when length is not a whole
// number of bytes (so a 4-bit field reads as its value, and a 12-bit one as
// its first 8 bits, then 4). Bits past b's end read as zeros; an offset
// past b's end (or a length of 0) gives false.
func AppendBits(dst, b []byte, off, length int) ([]byte, bool) {
	if off < 0 || length <= 0 || off > len(b)*8 {
		return dst, false
	}
	start, shift := off/8, uint(off%8)
	n := (length + 7) / 8
	end := min((off+length+7)/8, len(b))
	used := b[start:end]
	at := len(dst)
	for i := 0; i < n; i++ {
		var c byte
		if i < len(used) {
			c = used[i] << shift
			if shift > 0 && i+1 < len(used) {
				c |= used[i+1] >> (8 - shift)
			}
		}
		dst = append(dst, c)
	}
	if r := uint(length % 8); r != 0 {
		dst[at+n-1] >>= 8 - r
	}
	return dst, true
}
