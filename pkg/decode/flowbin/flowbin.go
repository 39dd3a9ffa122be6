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
)

// Keys of flow.proto's fields as they are written: the varint of
// number<<3|wire type. A one-byte key is a byte, a two-byte key a uint16
// holding its first byte in the low bits.
const (
	KeyType                byte   = 1<<3 | 0
	KeySamplingRate        byte   = 3<<3 | 0
	KeySequenceNum         byte   = 4<<3 | 0
	KeySrcAddr             byte   = 6<<3 | 2
	KeyDstAddr             byte   = 7<<3 | 2
	KeyBytes               byte   = 9<<3 | 0
	KeyPackets             byte   = 10<<3 | 0
	KeySamplerAddress      byte   = 11<<3 | 2
	KeyNextHop             byte   = 12<<3 | 2
	KeyNextHopAs           byte   = 13<<3 | 0
	KeySrcAs               byte   = 14<<3 | 0
	KeyDstAs               byte   = 15<<3 | 0
	KeySrcNet              uint16 = 0x0180 // 16
	KeyDstNet              uint16 = 0x0188 // 17
	KeyInIf                uint16 = 0x0190 // 18
	KeyOutIf               uint16 = 0x0198 // 19
	KeyProto               uint16 = 0x01a0 // 20
	KeySrcPort             uint16 = 0x01a8 // 21
	KeyDstPort             uint16 = 0x01b0 // 22
	KeyIpTos               uint16 = 0x01b8 // 23
	KeyForwardingStatus    uint16 = 0x01c0 // 24
	KeyIpTtl               uint16 = 0x01c8 // 25
	KeyTcpFlags            uint16 = 0x01d0 // 26
	KeySrcMac              uint16 = 0x01d8 // 27
	KeyDstMac              uint16 = 0x01e0 // 28
	KeyVlanId              uint16 = 0x01e8 // 29
	KeyEtype               uint16 = 0x01f0 // 30
	KeyIcmpType            uint16 = 0x01f8 // 31
	KeyIcmpCode            uint16 = 0x0280 // 32
	KeySrcVlan             uint16 = 0x0288 // 33
	KeyDstVlan             uint16 = 0x0290 // 34
	KeyFragmentId          uint16 = 0x0298 // 35
	KeyFragmentOffset      uint16 = 0x02a0 // 36
	KeyIpv6FlowLabel       uint16 = 0x02a8 // 37
	KeyIpFlags             uint16 = 0x02b0 // 38
	KeyObservationDomainId uint16 = 0x04b0 // 70
	KeyObservationPointId  uint16 = 0x04b8 // 71
	KeyMplsTtl             uint16 = 0x0582 // 80, packed
	KeyMplsLabel           uint16 = 0x058a // 81, packed
	KeyMplsIp              uint16 = 0x0592 // 82
	KeyBgpNextHop          uint16 = 0x06a2 // 100
	KeyBgpCommunities      uint16 = 0x06aa // 101, packed
	KeyAsPath              uint16 = 0x06b2 // 102, packed
	KeyLayerStack          uint16 = 0x06ba // 103, packed
	KeyLayerSize           uint16 = 0x06c2 // 104, packed
	KeyIpv6RoutingAddrs    uint16 = 0x06ca // 105
	KeyIpv6RoutingSegLeft  uint16 = 0x06d0 // 106
	KeyTimeReceivedNs      uint16 = 0x06f0 // 110
	KeyTimeFlowStartNs     uint16 = 0x06f8 // 111
	KeyTimeFlowEndNs       uint16 = 0x0780 // 112
)

// Key2 returns the key of field num (16 to 2047) with wire type typ, in
// the form of the Key constants.
func Key2(num int, typ byte) uint16 {
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
	size := VarintLen(uint64(n))
	b = append(b, make([]byte, size-pre)...)
	copy(b[start+size:], b[start+pre:len(b)-(size-pre)])
	var w [MaxVarintLen]byte
	copy(b[start:], w[:PutVarint(&w, uint64(n))])
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
