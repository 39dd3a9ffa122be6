package wire

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// A FieldSet is a set of field numbers, tested in a few instructions: a
// bitmap for the numbers below 2048 (two-byte tags, all of flow.proto's),
// a list for larger ones. The zero value is empty; a nil *FieldSet, given
// to AppendFields, stands for every field.
type FieldSet struct {
	low  [2048 / 64]uint64
	high []protowire.Number
	all  bool // every number: what a nil set stands for
}

// NewFieldSet returns the set of nums.
func NewFieldSet(nums ...protowire.Number) *FieldSet {
	s := &FieldSet{}
	for _, n := range nums {
		s.Add(n)
	}
	return s
}

// Add puts num in s.
func (s *FieldSet) Add(num protowire.Number) {
	if uint64(num) < 2048 {
		s.low[num>>6] |= 1 << (num & 63)
	} else if !slices.Contains(s.high, num) {
		s.high = append(s.high, num)
	}
}

// Union returns a new set holding the numbers of s and t.
func (s *FieldSet) Union(t *FieldSet) *FieldSet {
	u := &FieldSet{low: s.low, high: slices.Clone(s.high)}
	for i, w := range t.low {
		u.low[i] |= w
	}
	for _, n := range t.high {
		u.Add(n)
	}
	return u
}

// allFields is what a nil set stands for.
var allFields = func() FieldSet {
	var s FieldSet
	for i := range s.low {
		s.low[i] = ^uint64(0)
	}
	s.all = true
	return s
}()

// Has reports whether num is in s. It is small enough to be inlined in a
// scan loop.
func (s *FieldSet) Has(num protowire.Number) bool {
	if n := uint32(num); n < 2048 {
		return s.low[n>>6&31]>>(n&63)&1 != 0 // the mask spares a bounds check
	}
	return s.hasHigh(num)
}

func (s *FieldSet) hasHigh(num protowire.Number) bool { return s.all || slices.Contains(s.high, num) }

// Field is one field of an encoded message msg, as AppendFields found it:
// msg[Start:End] is the whole field, tag included. Value is where its
// value starts: the varint or the fixed-size bytes, the content of a
// length-delimited field (after the length), or the first field inside a
// group (End is then past the end-group tag).
type Field struct {
	Num   protowire.Number
	Type  protowire.Type
	Start int
	Value int
	End   int
}

// AppendFields appends to dst the fields of msg whose numbers are in set
// (every field for a nil set), in their order, and returns it. Fields
// outside set are checked and skipped, not decoded. err says where msg is
// malformed; the fields before that point are in the result.
//
// One call walks the whole message: a caller loops over the few fields it
// asked for, with no call per field (dst is the caller's buffer, reused
// from record to record).
//
// It accepts what protowire.ConsumeField accepts, field by field: field
// numbers 1 to 2^31-1, any wire type whose value is whole (a group up to
// its matching end), varints of at most ten bytes within 64 bits.
func AppendFields(dst []Field, msg []byte, set *FieldSet) ([]Field, error) {
	if set == nil {
		set = &allFields
	}
	b := msg
	// The common shapes (one- or two-byte tags, varints, short bytes
	// fields) are decoded inline on indexes; anything else goes through
	// protowire.
	for i := 0; i < len(b); {
		var num protowire.Number
		var typ protowire.Type
		n := 0
		if c := b[i]; c < 0x80 && c >= 0x08 { // fields 1-15
			num, typ, n = protowire.Number(c>>3), protowire.Type(c&7), 1
		} else if i+1 < len(b) && c >= 0x80 && b[i+1] < 0x80 && b[i+1] != 0 { // fields 16-2047
			v := uint32(c&0x7f) | uint32(b[i+1])<<7
			num, typ, n = protowire.Number(v>>3), protowire.Type(v&7), 2
		} else if num, typ, n = protowire.ConsumeTag(b[i:]); n < 0 {
			return dst, fmt.Errorf("field at byte %d: %w", i, protowire.ParseError(n))
		}
		val := i + n
		end := -1
		switch typ {
		case protowire.VarintType:
			for k := val; k < len(b) && k < val+maxVarintLen-1; k++ {
				if b[k] < 0x80 {
					end = k + 1
					break
				}
			}
		case protowire.BytesType:
			if val < len(b) && b[val] < 0x80 {
				if e := val + 1 + int(b[val]); e <= len(b) {
					end = e
					val++
				}
			}
		}
		if end < 0 { // long, unusual or malformed: the careful way
			m := protowire.ConsumeFieldValue(num, typ, b[val:])
			if m < 0 {
				return dst, fmt.Errorf("field %d at byte %d: %w", num, i, protowire.ParseError(m))
			}
			end = val + m
			if typ == protowire.BytesType {
				_, k := protowire.ConsumeVarint(b[val:])
				val += k
			}
		}
		if set.Has(num) {
			dst = append(dst, Field{Num: num, Type: typ, Start: i, Value: val, End: end})
		}
		i = end
	}
	return dst, nil
}

// maxVarintLen is the longest varint, in bytes.
const maxVarintLen = 10

// Varint decodes a varint known to be whole, such as msg[f.Value:f.End]
// of a varint field from AppendFields: bits past the 64th are dropped.
func Varint(b []byte) uint64 {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			break
		}
	}
	return v
}
