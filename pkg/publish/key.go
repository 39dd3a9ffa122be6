package publish

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// A Keyer writes a record's partition key for a flow. Records with equal
// key fields get equal keys, so they land on one partition in order.
type Keyer struct {
	fields []flowpb.Field
}

// KeySize is the length of a key: an FNV-1a 64-bit hash, big-endian.
const KeySize = 8

// keyAliases name common field sets.
var keyAliases = map[string][]string{
	"src_dst": {"src_addr", "dst_addr"},
}

// KeyFieldNames lists what ParseKey accepts besides "none" and aliases:
// every singular field of flow.proto, by its name (its JSON key).
func KeyFieldNames() []string {
	var names []string
	for _, f := range flowpb.Fields() {
		if f.Singular() {
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	return names
}

// ParseKey reads a --key value: "none" (or empty) for no key (records are
// batched sticky to one partition at a time), "src_dst" for the
// src_addr,dst_addr pair, or a comma-separated list of field names: any
// field of flow.proto that holds one value (not a list or a map), found
// by name in the table generated from it. It returns nil for no key.
//
// Each field's value goes into the hash (raw bytes of addresses and
// strings followed by their length, integers, enums and bools as 8 bytes),
// so a key is the same whichever stage or format the record came from.
func ParseKey(spec string) (*Keyer, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "none" {
		return nil, nil
	}
	k := &Keyer{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		names := keyAliases[name]
		if names == nil {
			names = []string{name}
		}
		for _, n := range names {
			f, ok := flowpb.FieldByName(n)
			if !ok {
				return nil, fmt.Errorf("publish: --key: unknown field %q (want none, src_dst or a list of field names of flow.proto: %s)",
					n, strings.Join(KeyFieldNames(), ", "))
			}
			if !f.Singular() {
				return nil, fmt.Errorf("publish: --key: field %q holds a list or a map, not one value", n)
			}
			k.fields = append(k.fields, f)
		}
	}
	return k, nil
}

// String lists the key's fields.
func (k *Keyer) String() string {
	if k == nil {
		return "none"
	}
	names := make([]string, len(k.fields))
	for i, f := range k.fields {
		names[i] = f.Name
	}
	return strings.Join(names, ",")
}

// Append appends m's KeySize-byte key to dst, without allocating when dst
// has room. A nil Keyer (no key) appends nothing.
func (k *Keyer) Append(dst []byte, m *flowpb.FlowMessage) []byte {
	if k == nil {
		return dst
	}
	h := newFNV64()
	for _, f := range k.fields {
		u, b, _ := m.Scalar(f.Number)
		if f.Numeric() {
			h = h.uint(u)
		} else {
			h = h.bytes(b)
		}
	}
	return binary.BigEndian.AppendUint64(dst, uint64(h))
}

// fnv64 is FNV-1a, by value so that hashing allocates nothing.
type fnv64 uint64

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func newFNV64() fnv64 { return fnvOffset }

func (h fnv64) byte(b byte) fnv64 { return (h ^ fnv64(b)) * fnvPrime }

// bytes hashes b then its length, so ("ab","c") and ("a","bc") differ.
func (h fnv64) bytes(b []byte) fnv64 {
	for _, c := range b {
		h = h.byte(c)
	}
	return h.uint(uint64(len(b)))
}

func (h fnv64) uint(v uint64) fnv64 {
	for i := 0; i < 8; i++ {
		h = h.byte(byte(v >> (8 * i)))
	}
	return h
}
