package framing

import (
	"encoding/binary"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// Render says how a custom field's value is written in JSON.
type Render int

const (
	// RenderUint writes a varint (or fixed32/fixed64) as a JSON number.
	RenderUint Render = iota
	// RenderHex writes bytes as a lower-case hex string, goflow2's default
	// for bytes.
	RenderHex
	// RenderIP writes 4 or 16 bytes as address text, anything else as "".
	RenderIP
	// RenderString writes bytes as a JSON string.
	RenderString
	// The renderers of goflow2's formatter.render, for Columns.
	RenderDefault      // goflow2's default for the field (addresses as ip, MACs as mac, ...)
	RenderNone         // goflow2's "none": numbers as numbers, enums as names, bytes as hex
	RenderMAC          // a number's low 48 bits as aa:bb:cc:dd:ee:ff
	RenderEtype        // IPv4, IPv6, ARP, else ""
	RenderProto        // IANA protocol keyword
	RenderNetwork      // src_net/dst_net: the address masked to the prefix length
	RenderDateTime     // Unix seconds as RFC 3339 UTC
	RenderDateTimeNano // Unix nanoseconds as RFC 3339 UTC with nanoseconds
	RenderICMPName     // the virtual icmp_name: the ICMP or ICMPv6 type's name
)

// CustomField is a field outside flow.proto, carried in the message's
// unknown fields (as goflow2's formatter.protobuf mapping does).
type CustomField struct {
	Name   string
	Number protowire.Number
	Render Render
	// Array writes every occurrence, as a JSON array (goflow2's array: true).
	Array bool
}

// JSONOptions tunes the JSON form. A nil *JSONOptions means the defaults.
type JSONOptions struct {
	// Custom fields are written after all the others, in this order, when
	// the message carries them. A field present several times is written
	// once, with its last value (protobuf's rule for scalars). A name that
	// is also a standard field's name is read as the standard field.
	Custom []CustomField
	// Columns, when set, are the JSON form instead of the default layout:
	// goflow2's formatter.fields, exactly these members in this order (see
	// Column). Extra members of an input line still follow.
	Columns []Column
}

// AppendJSONLine is AppendJSON followed by a newline.
func AppendJSONLine(dst []byte, m *flowpb.FlowMessage, opts *JSONOptions) []byte {
	return append(AppendJSON(dst, m, opts), '\n')
}

// AppendJSON appends m as one JSON object in goflow2 v2.2's layout (checked
// byte for byte against goflow2 v2.2.6): the same field names, in the same
// order, with the same renderings (addresses as text, type, etype and
// proto as names, MACs as aa:bb:cc:dd:ee:ff, src_net/dst_net as the masked
// address prefix). flowpipe's own fields follow, in flow.proto's order,
// each only when set: strings as strings, numbers as numbers, enums as
// their lower-case names, bools as true, maps as objects with sorted keys,
// bytes (addresses) as address text when 4 or 16 bytes long and as hex
// otherwise. The custom fields of opts come last. It does not allocate
// beyond growing dst.
//
// goflow2's renderings lose a few values, and so do these: an etype
// without a name is written "" (as goflow2's map lookup gives); proto uses
// IANA's keywords, and 146-255 and beyond only as "unassigned",
// "experimental", "reserved" or "unknown"; a src_net/dst_net that cannot
// form a prefix (no 4- or 16-byte address, or more bits than the address
// has) is goflow2's "invalid Prefix"; MACs keep their low 48 bits.
func AppendJSON(dst []byte, m *flowpb.FlowMessage, opts *JSONOptions) []byte {
	return appendJSON(dst, m, opts, nil)
}

// appendJSON is AppendJSON followed by extra, the members of an input line
// that were not flow fields (MessageReader.Extra), as they were.
func appendJSON(dst []byte, m *flowpb.FlowMessage, opts *JSONOptions, extra []byte) []byte {
	if opts != nil && len(opts.Columns) > 0 {
		dst = appendColumns(dst, m, opts.Columns)
		if len(extra) > 0 {
			dst = append(append(dst, ','), extra...)
		}
		return append(dst, '}')
	}
	dst = appendFields(dst, m)
	if opts != nil && len(opts.Custom) > 0 {
		unknown := m.ProtoReflect().GetUnknown()
		for _, f := range opts.Custom {
			dst = appendCustom(dst, unknown, f)
		}
	}
	if len(extra) > 0 {
		dst = append(append(dst, ','), extra...)
	}
	return append(dst, '}')
}

// appendQuotedName writes a name that needs no escaping (etype, proto).
func appendQuotedName(dst []byte, name string) []byte {
	dst = append(dst, '"')
	dst = append(dst, name...)
	return append(dst, '"')
}

// appendEnum writes an enum's name, or its number as a string when it has
// none, as protobuf-go's String() (which goflow2 prints) does.
func appendEnum(dst []byte, name string, v int64) []byte {
	dst = append(dst, '"')
	if name == "" {
		dst = strconv.AppendInt(dst, v, 10)
	} else {
		dst = append(dst, name...)
	}
	return append(dst, '"')
}

// appendAddr writes a quoted address; like goflow2's RenderIP, "" for
// anything but 4 or 16 bytes.
func appendAddr(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	switch len(b) {
	case 4:
		dst = netip.AddrFrom4([4]byte(b)).AppendTo(dst)
	case 16:
		dst = netip.AddrFrom16([16]byte(b)).AppendTo(dst)
	}
	return append(dst, '"')
}

// appendBytesText writes one of flowpipe's bytes fields: address text
// for 4 or 16 bytes (an address, as these fields hold), lower-case hex
// otherwise, so that no value is lost and each reads back.
func appendBytesText(dst []byte, b []byte) []byte {
	if len(b) == 4 || len(b) == 16 {
		return appendAddr(dst, b)
	}
	dst = append(dst, '"')
	return append(wire.AppendHex(dst, b), '"')
}

const hexDigits = "0123456789abcdef"

// appendMAC writes the low 48 bits as net.HardwareAddr.String does.
func appendMAC(dst []byte, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	dst = append(dst, '"')
	for i := 2; i < 8; i++ {
		if i > 2 {
			dst = append(dst, ':')
		}
		dst = append(dst, hexDigits[b[i]>>4], hexDigits[b[i]&0xf])
	}
	return append(dst, '"')
}

// appendNet writes the address masked to bits, as goflow2's NetworkRenderer
// does with netip.Addr.Prefix, including its "invalid Prefix".
func appendNet(dst []byte, addr []byte, bits uint32) []byte {
	var a netip.Addr
	switch len(addr) {
	case 4:
		a = netip.AddrFrom4([4]byte(addr))
	case 16:
		a = netip.AddrFrom16([16]byte(addr))
	}
	dst = append(dst, '"')
	p, _ := a.Prefix(int(min(bits, 255)))
	if p.IsValid() {
		dst = p.AppendTo(dst)
	} else {
		dst = append(dst, "invalid Prefix"...)
	}
	return append(dst, '"')
}

// appendLabels writes a label map with its keys in order, so that equal
// records give equal lines. Small maps are ordered by repeated scans, which
// needs no memory; large ones are rare enough to sort.
func appendLabels(dst []byte, labels map[string]string) []byte {
	dst = append(dst, '{')
	if len(labels) > 16 {
		return appendSortedLabels(dst, labels)
	}
	var last string
	for i := range len(labels) {
		var next string
		found := false
		for k := range labels {
			if (i == 0 || k > last) && (!found || k < next) {
				next, found = k, true
			}
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, next)
		dst = appendQuoted(append(dst, ':'), labels[next])
		last = next
	}
	return append(dst, '}')
}

func appendSortedLabels(dst []byte, labels map[string]string) []byte {
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendQuoted(dst, k)
		dst = appendQuoted(append(dst, ':'), labels[k])
	}
	return append(dst, '}')
}

// appendCustom writes f's last occurrence in the unknown fields, if any.
func appendCustom(dst []byte, unknown []byte, f CustomField) []byte {
	var buf [16]wire.Field
	fields, _ := wire.AppendFields(buf[:0], unknown, nil) // a malformed field ends the search
	var last wire.Field
	found := false
	for _, fl := range fields {
		if fl.Num == f.Number {
			last, found = fl, true
		}
	}
	if !found {
		return dst
	}
	if f.Array {
		return appendCustomArray(dst, unknown, fields, f)
	}
	switch {
	case last.Type == protowire.BytesType && f.Render == RenderUint:
		return dst // a number rendering of bytes: nothing to show
	case last.Type != protowire.BytesType && (f.Render == RenderHex || f.Render == RenderIP || f.Render == RenderString):
		return dst // bytes renderings of a number
	}
	dst = appendQuoted(append(dst, ','), f.Name)
	return appendCustomValue(append(dst, ':'), unknown, last, f.Render)
}

// appendQuoted writes s as a JSON string (see wire.AppendJSONString).
func appendQuoted(dst []byte, s string) []byte { return wire.AppendJSONString(dst, s) }

// unsafeString views b as a string without copying; the caller must not
// keep the string past b's lifetime nor let b change while using it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
