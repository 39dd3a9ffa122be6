// Package flowbin writes flow records straight into flowpipe's bin stream:
// each record one frame, a varint length then the protobuf encoding of a
// flowpb.FlowMessage, byte for byte what flowpb's AppendDelimited writes
// (fields in number order, zero values left out, repeated scalars packed,
// unknown fields last).
//
// Decoders use it to turn an export record into output without filling a
// FlowMessage and encoding it afterwards: a field is written where it is
// read, its key bytes are constants, and its varint is written with one
// capacity check. [AppendMessage] encodes a whole FlowMessage the same
// way, for the records that still go through one (sFlow, packet sections,
// biflows).
//
// The functions append to the caller's buffer and allocate only to grow
// it.
package flowbin

import (
	"encoding/binary"
	"math/bits"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// Keys of flow.proto's fields as they are written: the varint of
// number<<3|wire type, from flowpb's field numbers. A one-byte key (fields
// 1-15) is a byte, a two-byte key (16-2047) a uint16 holding its first
// byte in the low bits. TestKeys checks every field of flow.proto has its
// key here.
const (
	KeyType                byte   = byte(flowpb.FieldType<<3 | tVarint)
	KeySamplingRate        byte   = byte(flowpb.FieldSamplingRate<<3 | tVarint)
	KeySequenceNum         byte   = byte(flowpb.FieldSequenceNum<<3 | tVarint)
	KeySrcAddr             byte   = byte(flowpb.FieldSrcAddr<<3 | tBytes)
	KeyDstAddr             byte   = byte(flowpb.FieldDstAddr<<3 | tBytes)
	KeyBytes               byte   = byte(flowpb.FieldBytes<<3 | tVarint)
	KeyPackets             byte   = byte(flowpb.FieldPackets<<3 | tVarint)
	KeySamplerAddress      byte   = byte(flowpb.FieldSamplerAddress<<3 | tBytes)
	KeyNextHop             byte   = byte(flowpb.FieldNextHop<<3 | tBytes)
	KeyNextHopAs           byte   = byte(flowpb.FieldNextHopAs<<3 | tVarint)
	KeySrcAs               byte   = byte(flowpb.FieldSrcAs<<3 | tVarint)
	KeyDstAs               byte   = byte(flowpb.FieldDstAs<<3 | tVarint)
	KeySrcNet              uint16 = uint16((flowpb.FieldSrcNet<<3|tVarint)&0x7f | 0x80 | flowpb.FieldSrcNet>>4<<8)
	KeyDstNet              uint16 = uint16((flowpb.FieldDstNet<<3|tVarint)&0x7f | 0x80 | flowpb.FieldDstNet>>4<<8)
	KeyInIf                uint16 = uint16((flowpb.FieldInIf<<3|tVarint)&0x7f | 0x80 | flowpb.FieldInIf>>4<<8)
	KeyOutIf               uint16 = uint16((flowpb.FieldOutIf<<3|tVarint)&0x7f | 0x80 | flowpb.FieldOutIf>>4<<8)
	KeyProto               uint16 = uint16((flowpb.FieldProto<<3|tVarint)&0x7f | 0x80 | flowpb.FieldProto>>4<<8)
	KeySrcPort             uint16 = uint16((flowpb.FieldSrcPort<<3|tVarint)&0x7f | 0x80 | flowpb.FieldSrcPort>>4<<8)
	KeyDstPort             uint16 = uint16((flowpb.FieldDstPort<<3|tVarint)&0x7f | 0x80 | flowpb.FieldDstPort>>4<<8)
	KeyIpTos               uint16 = uint16((flowpb.FieldIpTos<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIpTos>>4<<8)
	KeyForwardingStatus    uint16 = uint16((flowpb.FieldForwardingStatus<<3|tVarint)&0x7f | 0x80 | flowpb.FieldForwardingStatus>>4<<8)
	KeyIpTtl               uint16 = uint16((flowpb.FieldIpTtl<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIpTtl>>4<<8)
	KeyTcpFlags            uint16 = uint16((flowpb.FieldTcpFlags<<3|tVarint)&0x7f | 0x80 | flowpb.FieldTcpFlags>>4<<8)
	KeySrcMac              uint16 = uint16((flowpb.FieldSrcMac<<3|tVarint)&0x7f | 0x80 | flowpb.FieldSrcMac>>4<<8)
	KeyDstMac              uint16 = uint16((flowpb.FieldDstMac<<3|tVarint)&0x7f | 0x80 | flowpb.FieldDstMac>>4<<8)
	KeyVlanId              uint16 = uint16((flowpb.FieldVlanId<<3|tVarint)&0x7f | 0x80 | flowpb.FieldVlanId>>4<<8)
	KeyEtype               uint16 = uint16((flowpb.FieldEtype<<3|tVarint)&0x7f | 0x80 | flowpb.FieldEtype>>4<<8)
	KeyIcmpType            uint16 = uint16((flowpb.FieldIcmpType<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIcmpType>>4<<8)
	KeyIcmpCode            uint16 = uint16((flowpb.FieldIcmpCode<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIcmpCode>>4<<8)
	KeySrcVlan             uint16 = uint16((flowpb.FieldSrcVlan<<3|tVarint)&0x7f | 0x80 | flowpb.FieldSrcVlan>>4<<8)
	KeyDstVlan             uint16 = uint16((flowpb.FieldDstVlan<<3|tVarint)&0x7f | 0x80 | flowpb.FieldDstVlan>>4<<8)
	KeyFragmentId          uint16 = uint16((flowpb.FieldFragmentId<<3|tVarint)&0x7f | 0x80 | flowpb.FieldFragmentId>>4<<8)
	KeyFragmentOffset      uint16 = uint16((flowpb.FieldFragmentOffset<<3|tVarint)&0x7f | 0x80 | flowpb.FieldFragmentOffset>>4<<8)
	KeyIpv6FlowLabel       uint16 = uint16((flowpb.FieldIpv6FlowLabel<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIpv6FlowLabel>>4<<8)
	KeyIpFlags             uint16 = uint16((flowpb.FieldIpFlags<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIpFlags>>4<<8)
	KeyObservationDomainId uint16 = uint16((flowpb.FieldObservationDomainId<<3|tVarint)&0x7f | 0x80 | flowpb.FieldObservationDomainId>>4<<8)
	KeyObservationPointId  uint16 = uint16((flowpb.FieldObservationPointId<<3|tVarint)&0x7f | 0x80 | flowpb.FieldObservationPointId>>4<<8)
	KeyMplsTtl             uint16 = uint16((flowpb.FieldMplsTtl<<3|tBytes)&0x7f | 0x80 | flowpb.FieldMplsTtl>>4<<8)
	KeyMplsLabel           uint16 = uint16((flowpb.FieldMplsLabel<<3|tBytes)&0x7f | 0x80 | flowpb.FieldMplsLabel>>4<<8)
	KeyMplsIp              uint16 = uint16((flowpb.FieldMplsIp<<3|tBytes)&0x7f | 0x80 | flowpb.FieldMplsIp>>4<<8)
	KeyBgpNextHop          uint16 = uint16((flowpb.FieldBgpNextHop<<3|tBytes)&0x7f | 0x80 | flowpb.FieldBgpNextHop>>4<<8)
	KeyBgpCommunities      uint16 = uint16((flowpb.FieldBgpCommunities<<3|tBytes)&0x7f | 0x80 | flowpb.FieldBgpCommunities>>4<<8)
	KeyAsPath              uint16 = uint16((flowpb.FieldAsPath<<3|tBytes)&0x7f | 0x80 | flowpb.FieldAsPath>>4<<8)
	KeyLayerStack          uint16 = uint16((flowpb.FieldLayerStack<<3|tBytes)&0x7f | 0x80 | flowpb.FieldLayerStack>>4<<8)
	KeyLayerSize           uint16 = uint16((flowpb.FieldLayerSize<<3|tBytes)&0x7f | 0x80 | flowpb.FieldLayerSize>>4<<8)
	KeyIpv6RoutingAddrs    uint16 = uint16((flowpb.FieldIpv6RoutingHeaderAddresses<<3|tBytes)&0x7f | 0x80 | flowpb.FieldIpv6RoutingHeaderAddresses>>4<<8)
	KeyIpv6RoutingSegLeft  uint16 = uint16((flowpb.FieldIpv6RoutingHeaderSegLeft<<3|tVarint)&0x7f | 0x80 | flowpb.FieldIpv6RoutingHeaderSegLeft>>4<<8)
	KeyTimeReceivedNs      uint16 = uint16((flowpb.FieldTimeReceivedNs<<3|tVarint)&0x7f | 0x80 | flowpb.FieldTimeReceivedNs>>4<<8)
	KeyTimeFlowStartNs     uint16 = uint16((flowpb.FieldTimeFlowStartNs<<3|tVarint)&0x7f | 0x80 | flowpb.FieldTimeFlowStartNs>>4<<8)
	KeyTimeFlowEndNs       uint16 = uint16((flowpb.FieldTimeFlowEndNs<<3|tVarint)&0x7f | 0x80 | flowpb.FieldTimeFlowEndNs>>4<<8)
	KeyBiflowReverse       uint16 = uint16((flowpb.FieldBiflowReverse<<3|tVarint)&0x7f | 0x80 | flowpb.FieldBiflowReverse>>4<<8)
	KeyPostNatSrcAddr      uint16 = uint16((flowpb.FieldPostNatSrcAddr<<3|tBytes)&0x7f | 0x80 | flowpb.FieldPostNatSrcAddr>>4<<8)
	KeyPostNatDstAddr      uint16 = uint16((flowpb.FieldPostNatDstAddr<<3|tBytes)&0x7f | 0x80 | flowpb.FieldPostNatDstAddr>>4<<8)
	KeyPostNaptSrcPort     uint16 = uint16((flowpb.FieldPostNaptSrcPort<<3|tVarint)&0x7f | 0x80 | flowpb.FieldPostNaptSrcPort>>4<<8)
	KeyPostNaptDstPort     uint16 = uint16((flowpb.FieldPostNaptDstPort<<3|tVarint)&0x7f | 0x80 | flowpb.FieldPostNaptDstPort>>4<<8)
	KeyNatEvent            uint16 = uint16((flowpb.FieldNatEvent<<3|tVarint)&0x7f | 0x80 | flowpb.FieldNatEvent>>4<<8)
	KeyNatPortRangeStart   uint16 = uint16((flowpb.FieldNatPortRangeStart<<3|tVarint)&0x7f | 0x80 | flowpb.FieldNatPortRangeStart>>4<<8)
	KeyNatPortRangeEnd     uint16 = uint16((flowpb.FieldNatPortRangeEnd<<3|tVarint)&0x7f | 0x80 | flowpb.FieldNatPortRangeEnd>>4<<8)
	KeyNatInstanceId       uint16 = uint16((flowpb.FieldNatInstanceId<<3|tVarint)&0x7f | 0x80 | flowpb.FieldNatInstanceId>>4<<8)
	KeyNatPoolId           uint16 = uint16((flowpb.FieldNatPoolId<<3|tVarint)&0x7f | 0x80 | flowpb.FieldNatPoolId>>4<<8)
)

// The wire types of the keys.
const (
	tVarint = protowire.Number(protowire.VarintType)
	tBytes  = protowire.Number(protowire.BytesType)
)

// Key2 returns the key of field num (16 to 2047) with wire type typ, in
// the form of the Key constants.
func Key2(num protowire.Number, typ protowire.Type) uint16 {
	k := uint16(num)<<3 | uint16(typ)
	return k&0x7f | 0x80 | k>>7<<8
}

// Open starts a frame at the end of b: it reserves the length prefix,
// two bytes if wide (bodies of 128 bytes to 16 KiB), else one. Close
// fixes the prefix; a wrong guess costs a move of the body.
func Open(b []byte, wide bool) ([]byte, int) {
	start := len(b)
	if wide {
		return append(b, 0, 0), start
	}
	return append(b, 0), start
}

// Close ends the frame opened at start with the same wide, writing its
// length. It returns b and whether the body needed a wide prefix, the
// guess for the next frame.
func Close(b []byte, start int, wide bool) ([]byte, bool) {
	pre := 1
	if wide {
		pre = 2
	}
	n := len(b) - start - pre
	switch {
	case n < 1<<7:
		b[start] = byte(n)
		if wide {
			copy(b[start+1:], b[start+2:])
			b = b[:len(b)-1]
		}
		return b, false
	case n < 1<<14:
		if !wide {
			b = append(b, 0)
			copy(b[start+2:], b[start+1:len(b)-1])
		}
		b[start] = byte(n) | 0x80
		b[start+1] = byte(n >> 7)
		return b, true
	}
	// Rare: a body of 16 KiB or more.
	size := wire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size-pre)...)
	copy(b[start+size:], b[start+pre:len(b)-(size-pre)])
	wire.AppendVarint(b[start:start], uint64(n))
	return b, true
}

// Varint appends v as a varint.
func Varint(b []byte, v uint64) []byte {
	if v < 1<<7 {
		return append(b, byte(v))
	}
	return varintAt(b, len(b), v)
}

// varintAt writes v at b[n:] (n <= len(b)) and returns b up to its end:
// room for the longest varint, then one 8-byte store (PutVarint).
func varintAt(b []byte, n int, v uint64) []byte {
	if cap(b)-n < MaxVarintLen {
		b = append(b[:n], make([]byte, MaxVarintLen)...)
	}
	return b[:n+PutVarint((*[MaxVarintLen]byte)(b[n:n+MaxVarintLen]), v)]
}

// MaxVarintLen is the longest varint.
const MaxVarintLen = 10

// PutVarint writes v as a varint at the start of w and returns its
// length. It writes 8 bytes at once whatever the length (w has room for
// the longest), which beats a loop on the long values of flow records
// (times, MACs, 32-bit ids).
func PutVarint(w *[MaxVarintLen]byte, v uint64) int {
	if v < 1<<7 {
		w[0] = byte(v)
		return 1
	}
	if v < 1<<14 {
		w[0], w[1] = byte(v)|0x80, byte(v>>7)
		return 2
	}
	if v < 1<<56 {
		n := (bits.Len64(v) + 6) / 7
		cont := uint64(0x8080808080808080) & (1<<(8*(n-1)) - 1)
		binary.LittleEndian.PutUint64(w[:8], Spread(v)|cont)
		return n
	}
	binary.LittleEndian.PutUint64(w[:8], Spread(v&(1<<56-1))|0x8080808080808080)
	v >>= 56
	if v < 1<<7 {
		w[8] = byte(v)
		return 9
	}
	w[8], w[9] = byte(v)|0x80, byte(v>>7)
	return 10
}

// Spread puts the 7-bit groups of the low 56 bits of v one per byte, low
// first: a varint's bytes without their continuation bits.
func Spread(v uint64) uint64 {
	return v&0x7f | v&(0x7f<<7)<<1 | v&(0x7f<<14)<<2 | v&(0x7f<<21)<<3 |
		v&(0x7f<<28)<<4 | v&(0x7f<<35)<<5 | v&(0x7f<<42)<<6 | v&(0x7f<<49)<<7
}

// VarintLen is the length of v as a varint.
func VarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// Uint1 appends a varint field with a one-byte key, unless v is 0 (a
// test the compiler inlines: most fields of a record are 0).
func Uint1(b []byte, key byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	return uint1(b, key, v)
}

func uint1(b []byte, key byte, v uint64) []byte {
	if v < 1<<7 {
		return append(b, key, byte(v))
	}
	return varintAt(append(b, key), len(b)+1, v)
}

// Uint2 appends a varint field with a two-byte key, unless v is 0.
func Uint2(b []byte, key uint16, v uint64) []byte {
	if v == 0 {
		return b
	}
	return uint2(b, key, v)
}

func uint2(b []byte, key uint16, v uint64) []byte {
	if v < 1<<7 {
		return append(b, byte(key), byte(key>>8), byte(v))
	}
	return varintAt(append(b, byte(key), byte(key>>8)), len(b)+2, v)
}

// Bytes1 appends a bytes field with a one-byte key, unless v is empty.
func Bytes1(b []byte, key byte, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	if len(v) < 1<<7 {
		return append(append(b, key, byte(len(v))), v...)
	}
	return append(Varint(append(b, key), uint64(len(v))), v...)
}

// Bytes2 appends a bytes field with a two-byte key, unless v is empty.
func Bytes2(b []byte, key uint16, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return BytesItem2(b, key, v)
}

// BytesItem2 appends an item of a repeated bytes field with a two-byte
// key: written even when empty.
func BytesItem2(b []byte, key uint16, v []byte) []byte {
	b = append(b, byte(key), byte(key>>8))
	if len(v) < 1<<7 {
		b = append(b, byte(len(v)))
	} else {
		b = Varint(b, uint64(len(v)))
	}
	return append(b, v...)
}

// Packed2 appends a packed repeated field with a two-byte key, unless vs
// is empty.
func Packed2[T ~uint32 | ~int32](b []byte, key uint16, vs []T) []byte {
	if len(vs) == 0 {
		return b
	}
	n := 0
	for _, v := range vs {
		n += VarintLen(uint64(v))
	}
	b = Varint(append(b, byte(key), byte(key>>8)), uint64(n))
	// Room for all of them, then one store per value.
	at := len(b)
	if cap(b)-at < n+MaxVarintLen {
		b = append(b, make([]byte, n+MaxVarintLen)...)
	}
	w := b[:cap(b)]
	for _, v := range vs {
		if u := uint64(v); u < 1<<7 {
			w[at] = byte(u)
			at++
		} else {
			at += PutVarint((*[MaxVarintLen]byte)(w[at:at+MaxVarintLen]), u)
		}
	}
	return w[:at]
}
