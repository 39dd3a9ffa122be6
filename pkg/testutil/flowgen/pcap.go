package flowgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapWriter writes export packets as Ethernet/IP/UDP frames to a pcap file.
type PcapWriter struct {
	w        *pcapgo.Writer
	src, dst netip.AddrPort
	frame    []byte
	ipID     uint16
}

// NewPcapWriter writes the pcap file header to w and returns a writer of
// frames from src to dst, which must both be IPv4 or both IPv6.
func NewPcapWriter(w io.Writer, src, dst netip.AddrPort) (*PcapWriter, error) {
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if !src.Addr().IsValid() || !dst.Addr().IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		return nil, errors.New("flowgen: pcap source and destination must be both IPv4 or both IPv6")
	}
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		return nil, fmt.Errorf("flowgen: pcap header: %w", err)
	}
	return &PcapWriter{w: pw, src: src, dst: dst}, nil
}

// WritePacket writes one UDP datagram carrying payload, stamped ts.
func (p *PcapWriter) WritePacket(payload []byte, ts time.Time) error {
	if len(payload) > maxDatagram {
		return errors.New("flowgen: packet larger than a UDP datagram")
	}
	// Fixed, locally administered MACs: collector 02::02, exporter 02::01.
	b := append(p.frame[:0], 0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01)
	udpLen := 8 + len(payload)
	var udp int
	if p.src.Addr().Is4() {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := len(b)
		b = append(b, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(20+udpLen))
		b = binary.BigEndian.AppendUint16(b, p.ipID)
		b = append(b, 0, 0, 64, 17, 0, 0) // no DF: large datagrams may be fragmented
		b = appendAddr(b, p.src.Addr())
		b = appendAddr(b, p.dst.Addr())
		binary.BigEndian.PutUint16(b[ip+10:], ipv4Checksum(b[ip:]))
		p.ipID++
		udp = len(b)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		b = binary.BigEndian.AppendUint32(b, 6<<28)
		b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
		b = append(b, 17, 64)
		b = appendAddr(b, p.src.Addr())
		b = appendAddr(b, p.dst.Addr())
		udp = len(b)
	}
	b = binary.BigEndian.AppendUint16(b, p.src.Port())
	b = binary.BigEndian.AppendUint16(b, p.dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(udpLen))
	b = append(b, 0, 0) // IPv4: no checksum
	b = append(b, payload...)
	if p.src.Addr().Is6() {
		// IPv6 forbids a zero UDP checksum (RFC 8200, section 8.1).
		binary.BigEndian.PutUint16(b[udp+6:], udp6Checksum(p.src.Addr(), p.dst.Addr(), b[udp:]))
	}
	p.frame = b
	if err := p.w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(b), Length: len(b)}, b); err != nil {
		return fmt.Errorf("flowgen: pcap packet: %w", err)
	}
	return nil
}

// WritePcap writes a pcap file of packets sent from src to dst, packet i
// stamped ts + i milliseconds.
func WritePcap(w io.Writer, packets [][]byte, src, dst netip.AddrPort, ts time.Time) error {
	p, err := NewPcapWriter(w, src, dst)
	if err != nil {
		return err
	}
	for i, pkt := range packets {
		if err := p.WritePacket(pkt, ts.Add(time.Duration(i)*time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

// udp6Checksum is the UDP checksum of segment over the IPv6 pseudo-header.
func udp6Checksum(src, dst netip.Addr, segment []byte) uint16 {
	var sum uint64
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint64(b[i])<<8 | uint64(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint64(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint64(len(segment)) + 17
	add(segment)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if c := ^uint16(sum); c != 0 {
		return c
	}
	return 0xffff
}
