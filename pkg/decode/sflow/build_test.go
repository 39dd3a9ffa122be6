package sflow

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built sFlow datagrams, for the cases no exporter at hand produces
// (malformed counts and lengths, unusual headers) and for the benchmark.

type dgBuilder struct {
	b       []byte
	samples int
}

func newDatagram(agent netip.Addr, sub, seq uint32) *dgBuilder {
	d := &dgBuilder{}
	d.u32(5)
	d.addr(agent)
	d.u32(sub)
	d.u32(seq)
	d.u32(123456) // uptime
	d.u32(0)      // sample count, set by bytes
	return d
}

func (d *dgBuilder) u32(v uint32) { d.b = binary.BigEndian.AppendUint32(d.b, v) }

func (d *dgBuilder) addr(a netip.Addr) {
	if a.Is4() {
		d.u32(1)
	} else {
		d.u32(2)
	}
	d.b = append(d.b, a.AsSlice()...)
}

// sample appends a sample of any format with the given body.
func (d *dgBuilder) sample(format uint32, body []byte) *dgBuilder {
	d.u32(format)
	d.u32(uint32(len(body)))
	d.b = append(d.b, body...)
	d.samples++
	return d
}

// flow appends a compact flow sample (format 1); in and out carry their
// format bits.
func (d *dgBuilder) flow(rate, in, out uint32, records ...[]byte) *dgBuilder {
	body := be(uint32(d.samples), 0<<24|in&0xffffff, rate, 1000, 0, in, out, uint32(len(records)))
	for _, r := range records {
		body = append(body, r...)
	}
	return d.sample(formatFlow, body)
}

// expanded appends an expanded flow sample (format 3).
func (d *dgBuilder) expanded(rate, inFmt, in, outFmt, out uint32, records ...[]byte) *dgBuilder {
	body := be(uint32(d.samples), 0, in, rate, 1000, 0, inFmt, in, outFmt, out, uint32(len(records)))
	for _, r := range records {
		body = append(body, r...)
	}
	return d.sample(formatExpandedFlow, body)
}

func (d *dgBuilder) bytes() []byte {
	out := append([]byte(nil), d.b...)
	at := 4 + 4 + 4 + 12 // version, address type, IPv4, sub, seq, uptime
	if out[7] == 2 {
		at += 12
	}
	binary.BigEndian.PutUint32(out[at:], uint32(d.samples))
	return out
}

func be(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// record frames a flow or counter record.
func record(format uint32, body []byte) []byte {
	return append(be(format, uint32(len(body))), body...)
}

// recHeader is a sampled header record, padded to 4 bytes.
func recHeader(proto, frameLen uint32, hdr []byte) []byte {
	body := append(be(proto, frameLen, 4, uint32(len(hdr))), hdr...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	return record(recSampledHeader, body)
}

func recSwitch(srcVlan, dstVlan uint32) []byte {
	return record(recExtSwitch, be(srcVlan, 0, dstVlan, 0))
}

func sflowAddr(a netip.Addr) []byte {
	if a.Is4() {
		return append(be(1), a.AsSlice()...)
	}
	return append(be(2), a.AsSlice()...)
}

func recRouter(nh netip.Addr, srcMask, dstMask uint32) []byte {
	return record(recExtRouter, append(sflowAddr(nh), be(srcMask, dstMask)...))
}

// recGateway has one AS_SEQUENCE segment per path given.
func recGateway(nh netip.Addr, as, srcAS uint32, comms []uint32, paths ...[]uint32) []byte {
	body := append(sflowAddr(nh), be(as, srcAS, srcAS, uint32(len(paths)))...)
	for _, p := range paths {
		body = append(body, be(2, uint32(len(p)))...)
		body = append(body, be(p...)...)
	}
	body = append(body, be(uint32(len(comms)))...)
	body = append(body, be(comms...)...)
	body = append(body, be(100)...)
	return record(recExtGateway, body)
}

// Frame pieces.

func ethHdr(dst, src uint64, etype uint16) []byte {
	b := make([]byte, 14)
	for i := range 6 {
		b[i] = byte(dst >> (40 - 8*i))
		b[6+i] = byte(src >> (40 - 8*i))
	}
	binary.BigEndian.PutUint16(b[12:], etype)
	return b
}

func vlanTag(tci, etype uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tci), etype)
}

func ipv4Hdr(src, dst netip.Addr, proto, tos, ttl uint8, id, flagsFrag uint16, totalLen int) []byte {
	b := []byte{0x45, tos, 0, 0, 0, 0, 0, 0, ttl, proto, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], flagsFrag)
	b = append(b, src.AsSlice()...)
	return append(b, dst.AsSlice()...)
}

func ipv6Hdr(src, dst netip.Addr, next, tclass, hop uint8, label uint32, payloadLen int) []byte {
	b := be(6<<28 | uint32(tclass)<<20 | label&0xfffff)
	b = binary.BigEndian.AppendUint16(b, uint16(payloadLen))
	b = append(b, next, hop)
	b = append(b, src.AsSlice()...)
	return append(b, dst.AsSlice()...)
}

func tcpHdr(sport, dport uint16, flags uint8) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, 0, 0, 0, 1, 0, 0, 0, 0, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0)
	return b
}

func udpHdr(sport, dport uint16, length int) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(length))
	return append(b, 0, 0)
}

func icmpHdr(typ, code uint8) []byte { return []byte{typ, code, 0, 0, 0, 1, 0, 1} }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// padTo pads (or cuts) a header to n bytes, as an agent's fixed header
// size does.
func padTo(b []byte, n int) []byte {
	if len(b) >= n {
		return b[:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

// benchDatagram is the benchmark's datagram: 8 compact flow samples, each
// a 128-byte Ethernet/IPv4/TCP header of a 1500-byte frame.
func benchDatagram() []byte {
	d := newDatagram(netip.MustParseAddr("192.0.2.1"), 0, 1)
	for i := range 8 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i), 1})
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		h := cat(ethHdr(0x0200_0000_0001, 0x0200_0000_0002, 0x800),
			ipv4Hdr(src, dst, 6, 0, 64, uint16(i), 0x4000, 1500-18),
			tcpHdr(uint16(40000+i), 443, 0x18))
		d.flow(1024, uint32(1+i), uint32(10+i), recHeader(headerEthernet, 1500, padTo(h, 128)))
	}
	return d.bytes()
}
