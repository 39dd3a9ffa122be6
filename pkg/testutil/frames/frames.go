// Package frames builds packet headers byte by byte from their documented
// layouts (IEEE 802.3 / 802.1Q, RFC 3032 MPLS, RFC 4385 control word,
// RFC 791, RFC 8200, RFC 8754, RFC 9293, RFC 768, RFC 2784/2890 GRE,
// RFC 7348 VXLAN), so that decoder tests use frames whose every byte is
// known, and writes them to pcap files for tshark to decode independently.
package frames

import (
	"encoding/binary"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Ethernet is an Ethernet II header; MACs are in the low 48 bits.
func Ethernet(dst, src uint64, etype uint16) []byte {
	b := make([]byte, 14)
	for i := range 6 {
		b[i] = byte(dst >> (40 - 8*i))
		b[6+i] = byte(src >> (40 - 8*i))
	}
	binary.BigEndian.PutUint16(b[12:], etype)
	return b
}

// VLAN is an 802.1Q (or 802.1ad) tag after its TPID: priority, DEI and
// VLAN ID in tci, then the next ethertype.
func VLAN(tci, etype uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tci), etype)
}

// MPLS is one label stack entry (RFC 3032): label, traffic class,
// bottom-of-stack bit, TTL.
func MPLS(label uint32, tc uint8, bottom bool, ttl uint8) []byte {
	v := label<<12 | uint32(tc&7)<<9 | uint32(ttl)
	if bottom {
		v |= 1 << 8
	}
	return binary.BigEndian.AppendUint32(nil, v)
}

// ControlWord is the generic pseudowire control word of RFC 4385: first
// nibble 0, flags, fragment bits and length 0, then a sequence number.
func ControlWord(seq uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{0, 0}, seq)
}

// IPv4 is a 20-byte IPv4 header with a correct checksum; flagsFrag holds
// the flags (top 3 bits) and fragment offset.
func IPv4(src, dst netip.Addr, proto, tos, ttl uint8, id, flagsFrag uint16, totalLen int) []byte {
	b := []byte{0x45, tos, 0, 0, 0, 0, 0, 0, ttl, proto, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], flagsFrag)
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	return b
}

// IPv6 is a 40-byte IPv6 header.
func IPv6(src, dst netip.Addr, next, tclass, hopLimit uint8, flowLabel uint32, payloadLen int) []byte {
	b := binary.BigEndian.AppendUint32(nil, 6<<28|uint32(tclass)<<20|flowLabel&0xfffff)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadLen))
	b = append(b, next, hopLimit)
	b = append(b, src.AsSlice()...)
	return append(b, dst.AsSlice()...)
}

// HopByHop is an 8-byte hop-by-hop options header holding one PadN option.
func HopByHop(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

// SRH is a segment routing header (RFC 8754) with segments in the order
// of the segment list (segment[0] is the last segment of the path).
func SRH(next, segmentsLeft uint8, segments ...netip.Addr) []byte {
	b := []byte{next, uint8(2 * len(segments)), 4, segmentsLeft, uint8(len(segments) - 1), 0, 0, 0}
	for _, s := range segments {
		b = append(b, s.AsSlice()...)
	}
	return b
}

// TCP is a 20-byte TCP header.
func TCP(sport, dport uint16, flags uint8) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, 0, 0, 0, 1, 0, 0, 0, 0, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0)
}

// UDP is a UDP header; length covers header and payload.
func UDP(sport, dport uint16, length int) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(length))
	return append(b, 0, 0)
}

// ICMP is an ICMP or ICMPv6 header (echo identifier and sequence 1).
func ICMP(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 1, 0, 1} }

// GRE is a GRE header carrying proto, with a key when key is not nil.
func GRE(proto uint16, key *uint32) []byte {
	var flags byte
	if key != nil {
		flags = 0x20
	}
	b := binary.BigEndian.AppendUint16([]byte{flags, 0}, proto)
	if key != nil {
		b = binary.BigEndian.AppendUint32(b, *key)
	}
	return b
}

// VXLAN is a VXLAN header (RFC 7348) with the I flag and a VNI.
func VXLAN(vni uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0x08, 0, 0, 0}, vni<<8)
}

// Cat joins header pieces.
func Cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Pad pads (or cuts) b to n bytes, as a fixed capture length does.
func Pad(b []byte, n int) []byte {
	if len(b) >= n {
		return b[:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

// WritePcap writes frames as Ethernet packets, one millisecond apart, each
// marked with origLen[i] as its length on the wire when given.
func WritePcap(path string, frames [][]byte, origLen []int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return err
	}
	t := time.Unix(1_700_000_000, 0)
	for i, fr := range frames {
		n := len(fr)
		if i < len(origLen) && origLen[i] > n {
			n = origLen[i]
		}
		ci := gopacket.CaptureInfo{Timestamp: t.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(fr), Length: n}
		if err := w.WritePacket(ci, fr); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
