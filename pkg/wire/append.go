package wire

import "google.golang.org/protobuf/encoding/protowire"

// The field writers of a single forward pass. Each writes a field as
// proto3 and the generated MarshalVT do: nothing for a zero value (but for
// the items of a repeated field), length-delimited values behind their
// length, repeated scalars packed. They allocate only to grow b.

// AppendVarint appends v as a varint.
func AppendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// SizeVarint is the length of v as a varint.
func SizeVarint(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// AppendVarintField appends field num with the varint v, unless v is 0.
// Signed values (int32, enums) are passed sign-extended, as protobuf
// encodes them: uint64(int64(v)).
func AppendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return AppendVarint(AppendVarint(b, uint64(num)<<3), v)
}

// AppendBoolField appends field num as true, unless v is false.
func AppendBoolField(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return append(AppendVarint(b, uint64(num)<<3), 1)
}

// AppendBytesField appends field num holding v, unless v is empty.
func AppendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return AppendBytesItem(b, num, v)
}

// AppendBytesItem appends field num holding v, even when v is empty: an
// item of a repeated bytes field.
func AppendBytesItem(b []byte, num protowire.Number, v []byte) []byte {
	b = AppendVarint(b, uint64(num)<<3|uint64(protowire.BytesType))
	b = AppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// AppendStringField appends field num holding s, unless s is empty.
func AppendStringField(b []byte, num protowire.Number, s string) []byte {
	if len(s) == 0 {
		return b
	}
	return AppendStringItem(b, num, s)
}

// AppendStringItem appends field num holding s, even when s is empty: an
// item of a repeated string field.
func AppendStringItem(b []byte, num protowire.Number, s string) []byte {
	b = AppendVarint(b, uint64(num)<<3|uint64(protowire.BytesType))
	b = AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// Integer is what a packed repeated field holds: an integer type, signed
// ones written sign-extended as protobuf does.
type Integer interface {
	~int32 | ~int64 | ~uint32 | ~uint64
}

// AppendPackedField appends vs as one packed field num, unless vs is empty.
func AppendPackedField[T Integer](b []byte, num protowire.Number, vs []T) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += SizeVarint(uint64(v))
	}
	b = AppendVarint(b, uint64(num)<<3|uint64(protowire.BytesType))
	b = AppendVarint(b, uint64(n))
	for _, v := range vs {
		b = AppendVarint(b, uint64(v))
	}
	return b
}

// AppendStringMapField appends a map<string, string> field as MarshalVT
// does: one entry message {1: key, 2: value} per pair, in map iteration
// order (so two calls agree byte for byte only on maps of one pair).
func AppendStringMapField(b []byte, num protowire.Number, m map[string]string) []byte {
	if len(m) == 0 {
		return b // ranging over even an empty map costs an iterator set-up
	}
	for k, v := range m {
		n := 1 + SizeVarint(uint64(len(k))) + len(k) + 1 + SizeVarint(uint64(len(v))) + len(v)
		b = AppendVarint(b, uint64(num)<<3|uint64(protowire.BytesType))
		b = AppendVarint(b, uint64(n))
		b = append(b, 1<<3|2)
		b = AppendVarint(b, uint64(len(k)))
		b = append(b, k...)
		b = append(b, 2<<3|2)
		b = AppendVarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}
