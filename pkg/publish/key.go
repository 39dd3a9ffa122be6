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
	fields []keyField
}

type keyField struct {
	name string
	put  func(h fnv64, m *flowpb.FlowMessage) fnv64
}

// KeySize is the length of a key: an FNV-1a 64-bit hash, big-endian.
const KeySize = 8

// keyAliases name common field sets.
var keyAliases = map[string][]string{
	"src_dst": {"src_addr", "dst_addr"},
}

// keyFields are the fields a key can be built from. Each writes the
// field's value (raw address bytes, or the integer as 8 bytes), then a
// separator, so ("ab","c") and ("a","bc") hash differently.
var keyFields = map[string]func(h fnv64, m *flowpb.FlowMessage) fnv64{
	"sampler_address":       func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.bytes(m.SamplerAddress) },
	"src_addr":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.bytes(m.SrcAddr) },
	"dst_addr":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.bytes(m.DstAddr) },
	"next_hop":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.bytes(m.NextHop) },
	"bgp_next_hop":          func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.bytes(m.BgpNextHop) },
	"type":                  func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.Type)) },
	"sequence_num":          func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.SequenceNum)) },
	"observation_domain_id": func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.ObservationDomainId)) },
	"observation_point_id":  func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.ObservationPointId)) },
	"in_if":                 func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.InIf)) },
	"out_if":                func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.OutIf)) },
	"src_as":                func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.SrcAs)) },
	"dst_as":                func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.DstAs)) },
	"next_hop_as":           func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.NextHopAs)) },
	"src_net":               func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.SrcNet)) },
	"dst_net":               func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.DstNet)) },
	"proto":                 func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.Proto)) },
	"src_port":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.SrcPort)) },
	"dst_port":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.DstPort)) },
	"etype":                 func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.Etype)) },
	"vlan_id":               func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.VlanId)) },
	"src_vlan":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.SrcVlan)) },
	"dst_vlan":              func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.DstVlan)) },
	"ip_tos":                func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.uint(uint64(m.IpTos)) },
	"src_country":           func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.str(m.SrcCountry) },
	"dst_country":           func(h fnv64, m *flowpb.FlowMessage) fnv64 { return h.str(m.DstCountry) },
}

// KeyFieldNames lists what ParseKey accepts besides "none" and aliases.
func KeyFieldNames() []string {
	names := make([]string, 0, len(keyFields))
	for n := range keyFields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ParseKey reads a --key value: "none" (or empty) for no key (records are
// batched sticky to one partition at a time), "src_dst" for the
// src_addr,dst_addr pair, or a comma-separated list of field names. It
// returns nil for no key.
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
			put, ok := keyFields[n]
			if !ok {
				return nil, fmt.Errorf("publish: --key: unknown field %q (want none, src_dst or a list of %s)",
					n, strings.Join(KeyFieldNames(), ", "))
			}
			k.fields = append(k.fields, keyField{name: n, put: put})
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
		names[i] = f.name
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
		h = f.put(h, m)
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

func (h fnv64) str(s string) fnv64 {
	for i := 0; i < len(s); i++ {
		h = h.byte(s[i])
	}
	return h.uint(uint64(len(s)))
}

func (h fnv64) uint(v uint64) fnv64 {
	for i := 0; i < 8; i++ {
		h = h.byte(byte(v >> (8 * i)))
	}
	return h
}
