package framing

import (
	"encoding/binary"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// Column is one member of the JSON form goflow2's formatter.fields asks
// for. The rules are goflow2 v2.2.6's: a flow.proto field is always
// written (its zero value when unset); a custom field only when the record
// carries it; a name with neither (a virtual field, such as icmp_name)
// only when its renderer makes something of nothing (icmp_name, and
// etype, proto and network, which say "unknown").
type Column struct {
	Key    string           // the member's name (formatter.rename applied)
	Number protowire.Number // the field; 0 for a virtual field
	Custom bool             // a custom field (formatter.protobuf), not flow.proto's
	Array  bool             // custom: every occurrence, as an array
	Render Render           // RenderDefault (or the zero value): goflow2's default for the field
	// OmitZero leaves a flow.proto field out when unset, as the default
	// layout does with flowpipe's own fields.
	OmitZero bool
}

// maxColumnFields is room on the stack for a record's fields (a record with
// more, long lists of addresses or custom arrays, costs an allocation).
const maxColumnFields = 256

// appendColumns writes m's columns, opening brace included. The record is
// encoded at the end of dst first, read back field by field (lists,
// custom fields and all, without a case per field), then replaced by the
// JSON, so nothing is allocated beyond growing dst.
func appendColumns(dst []byte, m *flowpb.FlowMessage, cols []Column) []byte {
	start := len(dst)
	dst = m.AppendMarshal(dst)
	recEnd := len(dst)
	rec := dst[start:recEnd]
	var buf [maxColumnFields]wire.Field
	fields, _ := wire.AppendFields(buf[:0], rec, nil)
	out := len(dst)
	dst = append(dst, '{')
	first := true
	for i := range cols {
		dst = appendColumn(dst, rec, fields, &cols[i], &first, m)
	}
	n := copy(dst[start:], dst[out:])
	return dst[:start+n]
}

// appendColumn writes one column, with its comma when not the first.
func appendColumn(dst, rec []byte, fields []wire.Field, c *Column, first *bool, m *flowpb.FlowMessage) []byte {
	member := func(dst []byte) []byte {
		if !*first {
			dst = append(dst, ',')
		}
		*first = false
		dst = appendQuoted(dst, c.Key)
		return append(dst, ':')
	}
	if c.Number == 0 || c.Custom {
		var last wire.Field
		found, count := false, 0
		for _, f := range fields {
			if f.Num == c.Number && c.Number != 0 {
				last, found = f, true
				count++
			}
		}
		if !found {
			switch c.Render {
			case RenderICMPName:
				return appendQuoted(member(dst), icmpName(m.Proto, m.IcmpType))
			case RenderEtype, RenderProto, RenderNetwork:
				return append(member(dst), `"unknown"`...)
			}
			return dst
		}
		if c.Array {
			dst = append(member(dst), '[')
			k := 0
			for _, f := range fields {
				if f.Num == c.Number {
					if k > 0 {
						dst = append(dst, ',')
					}
					k++
					dst = appendCustomValue(dst, rec, f, c.Render)
				}
			}
			return append(dst, ']')
		}
		return appendCustomValue(member(dst), rec, last, c.Render)
	}
	fd, ok := flowpb.FieldByNumber(c.Number)
	if !ok {
		return dst
	}
	if c.OmitZero && !slices.ContainsFunc(fields, func(f wire.Field) bool { return f.Num == c.Number }) {
		return dst
	}
	dst = member(dst)
	if fd.Map {
		// Keys in order, as the default layout writes them (insertion sort
		// on the stack: label maps are small).
		var buf [64][2][]byte
		entries := buf[:0]
		more := false // entries past the 64 sorted ones, written after them as they come
		for _, f := range fields {
			if f.Num != c.Number || f.Type != protowire.BytesType {
				continue
			}
			if len(entries) == len(buf) {
				more = true
				continue
			}
			key, val := mapEntry(rec[f.Value:f.End])
			i := len(entries)
			entries = append(entries, [2][]byte{key, val})
			for ; i > 0 && string(entries[i-1][0]) > string(key); i-- {
				entries[i] = entries[i-1]
			}
			entries[i] = [2][]byte{key, val}
		}
		dst = append(dst, '{')
		for i, e := range entries {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendQuoted(dst, unsafeString(e[0]))
			dst = appendQuoted(append(dst, ':'), unsafeString(e[1]))
		}
		if more {
			k := 0
			for _, f := range fields {
				if f.Num != c.Number || f.Type != protowire.BytesType {
					continue
				}
				if k++; k <= len(buf) {
					continue
				}
				key, val := mapEntry(rec[f.Value:f.End])
				dst = appendQuoted(append(dst, ','), unsafeString(key))
				dst = appendQuoted(append(dst, ':'), unsafeString(val))
			}
		}
		return append(dst, '}')
	}
	if fd.List {
		dst = append(dst, '[')
		k := 0
		for _, f := range fields {
			if f.Num != c.Number {
				continue
			}
			v := rec[f.Value:f.End]
			if fd.Numeric() && f.Type == protowire.BytesType { // packed
				for len(v) > 0 {
					u, n := protowire.ConsumeVarint(v)
					if n < 0 {
						break
					}
					v = v[n:]
					if k > 0 {
						dst = append(dst, ',')
					}
					k++
					dst = appendStandard(dst, fd, c.Render, u, nil, m)
				}
				continue
			}
			if k > 0 {
				dst = append(dst, ',')
			}
			k++
			u := uint64(0)
			if f.Type == protowire.VarintType {
				u = wire.Varint(v)
			}
			dst = appendStandard(dst, fd, c.Render, u, v, m)
		}
		return append(dst, ']')
	}
	var u uint64
	var b []byte
	for _, f := range fields {
		if f.Num != c.Number {
			continue
		}
		switch f.Type {
		case protowire.VarintType:
			u = wire.Varint(rec[f.Value:f.End])
		case protowire.BytesType:
			b = rec[f.Value:f.End]
		}
	}
	return appendStandard(dst, fd, c.Render, u, b, m)
}

// mapEntry splits an encoded map<string,string> entry.
func mapEntry(b []byte) (key, val []byte) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if num == 1 {
			key = v
		} else if num == 2 {
			val = v
		}
	}
	return
}

// appendStandard renders a flow.proto value as goflow2's renderers do for
// the Go type the field has in its record.
func appendStandard(dst []byte, fd flowpb.Field, r Render, u uint64, b []byte, m *flowpb.FlowMessage) []byte {
	if r == RenderDefault || r == RenderUint { // RenderUint: Column's zero value
		r = defaultRender(fd.Number)
	}
	switch fd.Kind {
	case protoreflect.BytesKind:
		switch r {
		case RenderIP:
			return appendAddr(dst, b)
		case RenderString:
			return appendQuoted(dst, unsafeString(b))
		case RenderEtype, RenderProto, RenderNetwork:
			return append(dst, `"unknown"`...)
		}
		dst = append(dst, '"')
		return append(wire.AppendHex(dst, b), '"')
	case protoreflect.StringKind:
		if r == RenderEtype || r == RenderProto || r == RenderNetwork {
			return append(dst, `"unknown"`...)
		}
		return appendQuoted(dst, unsafeString(b))
	case protoreflect.BoolKind:
		if r == RenderEtype || r == RenderProto || r == RenderNetwork {
			return append(dst, `"unknown"`...)
		}
		return strconv.AppendBool(dst, u != 0)
	case protoreflect.EnumKind:
		switch r {
		case RenderEtype, RenderProto, RenderNetwork:
			return append(dst, `"unknown"`...)
		}
		return appendEnum(dst, enumName(fd.Number, u), int64(u))
	}
	wide := fd.Kind == protoreflect.Uint64Kind || fd.Kind == protoreflect.Int64Kind || fd.Kind == protoreflect.Sint64Kind ||
		fd.Kind == protoreflect.Fixed64Kind || fd.Kind == protoreflect.Sfixed64Kind
	switch r {
	case RenderMAC:
		if wide {
			return appendMAC(dst, u)
		}
	case RenderEtype:
		return appendQuotedName(dst, etypeName(uint32(u)))
	case RenderProto:
		return appendQuotedName(dst, protoName(uint32(u)))
	case RenderNetwork:
		if wide {
			return append(dst, `"unknown"`...)
		}
		var addr []byte
		switch fd.Number {
		case flowpb.FieldSrcNet:
			addr = m.SrcAddr
		case flowpb.FieldDstNet:
			addr = m.DstAddr
		}
		return appendNet(dst, addr, uint32(u))
	case RenderDateTime:
		return appendTime(dst, time.Unix(int64(u), 0))
	case RenderDateTimeNano:
		if wide {
			return appendTime(dst, time.Unix(int64(u)/1e9, int64(u)%1e9))
		}
	}
	return strconv.AppendUint(dst, u, 10)
}

// appendCustomValue renders a custom field's value: a varint as uint64,
// bytes as []byte in goflow2's record.
func appendCustomValue(dst, rec []byte, f wire.Field, r Render) []byte {
	v := rec[f.Value:f.End]
	var u uint64
	switch f.Type {
	case protowire.VarintType:
		u = wire.Varint(v)
	case protowire.Fixed32Type:
		u = uint64(binary.LittleEndian.Uint32(v))
	case protowire.Fixed64Type:
		u = binary.LittleEndian.Uint64(v)
	case protowire.BytesType:
		switch r {
		case RenderIP:
			return appendAddr(dst, v)
		case RenderString:
			return appendQuoted(dst, unsafeString(v))
		case RenderEtype, RenderProto, RenderNetwork:
			return append(dst, `"unknown"`...)
		}
		dst = append(dst, '"')
		return append(wire.AppendHex(dst, v), '"')
	}
	switch r {
	case RenderMAC:
		return appendMAC(dst, u)
	case RenderEtype:
		return appendQuotedName(dst, etypeName(uint32(u)))
	case RenderProto:
		return appendQuotedName(dst, protoName(uint32(u)))
	case RenderNetwork:
		return append(dst, `"unknown"`...)
	case RenderDateTime:
		return appendTime(dst, time.Unix(int64(u), 0))
	case RenderDateTimeNano:
		return appendTime(dst, time.Unix(int64(u)/1e9, int64(u)%1e9))
	}
	return strconv.AppendUint(dst, u, 10)
}

// defaultRender is goflow2's default renderer of a field.
func defaultRender(n protowire.Number) Render {
	switch n {
	case flowpb.FieldSrcMac, flowpb.FieldDstMac:
		return RenderMAC
	case flowpb.FieldSrcAddr, flowpb.FieldDstAddr, flowpb.FieldSamplerAddress, flowpb.FieldNextHop,
		flowpb.FieldBgpNextHop, flowpb.FieldMplsIp, flowpb.FieldIpv6RoutingHeaderAddresses,
		flowpb.FieldPostNatSrcAddr, flowpb.FieldPostNatDstAddr:
		return RenderIP
	case flowpb.FieldEtype:
		return RenderEtype
	case flowpb.FieldProto:
		return RenderProto
	case flowpb.FieldSrcNet, flowpb.FieldDstNet:
		return RenderNetwork
	}
	return RenderNone
}

// enumName is the name of an enum field's value.
func enumName(n protowire.Number, u uint64) string {
	switch n {
	case flowpb.FieldType:
		return flowTypeName(flowpb.FlowMessage_FlowType(u))
	case flowpb.FieldLayerStack:
		return layerStackName(flowpb.FlowMessage_LayerStack(u))
	case flowpb.FieldFlowDirection:
		return flowDirectionName(flowpb.FlowMessage_FlowDirection(u))
	}
	return ""
}

// appendTime writes t in UTC as RFC 3339 with nanoseconds, quoted.
func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// icmpName is goflow2's icmp_name: the type's name for ICMP and ICMPv6
// ("" when it has none), "unknown" for other protocols.
func icmpName(proto, typ uint32) string {
	switch proto {
	case 1:
		switch typ {
		case 0:
			return "EchoReply"
		case 3:
			return "DestinationUnreachable"
		case 8:
			return "Echo"
		case 9:
			return "RouterAdvertisement"
		case 10:
			return "RouterSolicitation"
		case 11:
			return "TimeExceeded"
		}
		return ""
	case 58:
		switch typ {
		case 1:
			return "DestinationUnreachable"
		case 2:
			return "PacketTooBig"
		case 3:
			return "TimeExceeded"
		case 128:
			return "EchoRequest"
		case 129:
			return "EchoReply"
		case 133:
			return "RouterSolicitation"
		case 134:
			return "RouterAdvertisement"
		}
		return ""
	}
	return "unknown"
}

// appendCustomArray writes every occurrence of an array custom field in
// the default layout.
func appendCustomArray(dst, unknown []byte, fields []wire.Field, f CustomField) []byte {
	dst = appendQuoted(append(dst, ','), f.Name)
	dst = append(dst, ':', '[')
	k := 0
	for _, fl := range fields {
		if fl.Num != f.Number {
			continue
		}
		if k > 0 {
			dst = append(dst, ',')
		}
		k++
		dst = appendCustomValue(dst, unknown, fl, f.Render)
	}
	return append(dst, ']')
}
