package collect

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapStats counts what ReadPcap saw.
type PcapStats struct {
	Packets uint64 // captured packets read
	UDP     uint64 // UDP datagrams handed to the workers
	Skipped uint64 // not IPv4/IPv6 UDP, fragments, or cut short by the snap length
}

type packetSource interface {
	ZeroCopyReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// ReadPcap feeds the UDP datagrams of a pcap or pcapng capture to the
// workers as fast as they decode (it waits for queue space, dropping
// nothing). Each record's time_received_ns is its packet's capture time,
// so the output is deterministic. A datagram goes to the decoder family of
// the listener whose port it was sent to, else to the one its content
// says. It stops early, returning nil, when ctx is done, and with the
// write error as soon as writing the output failed.
func (c *Collector) ReadPcap(ctx context.Context, r io.Reader) (PcapStats, error) {
	var st PcapStats
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		return st, fmt.Errorf("collect: pcap: reading the file header: %w", err)
	}
	var src packetSource
	var link layers.LinkType
	if binary.LittleEndian.Uint32(magic) == 0x0A0D0D0A {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return st, fmt.Errorf("collect: pcapng: %w", err)
		}
		src, link = ng, ng.LinkType()
	} else {
		pr, err := pcapgo.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("collect: pcap: %w", err)
		}
		src, link = pr, pr.LinkType()
	}
	ports := map[uint16]Family{}
	for _, l := range c.cfg.Listens {
		ports[uint16(l.Port)] = l.Family
	}
	var rt *router
	var d *decoder
	var t tally
	if c.cfg.Workers == 0 {
		if len(c.inline) == 0 {
			if d, err = c.newDecoder(0); err != nil {
				return st, err
			}
			c.inline = append(c.inline, d)
		}
		d = c.inline[0]
		defer func() { c.stats.add(t) }()
	} else {
		rt = c.newRouter(true)
		defer rt.flush()
	}
	for n := 0; ; n++ {
		// Stop at a signal, and as soon as the output is gone
		// (`flowcollect -r big.pcap | head`): decoding the rest would
		// only be thrown away.
		if n%64 == 0 {
			if ctx.Err() != nil {
				return st, nil
			}
			if c.outputFailed() {
				return st, c.writeErr
			}
		}
		data, ci, err := src.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return st, fmt.Errorf("collect: pcap: file ends inside a packet after %d packets", st.Packets)
			}
			return st, fmt.Errorf("collect: pcap: after %d packets: %w", st.Packets, err)
		}
		st.Packets++
		payload, from, dstPort, ok := UDPPayload(link, data)
		if !ok || ci.CaptureLength < ci.Length {
			st.Skipped++
			continue
		}
		st.UDP++
		fam, ok := ports[dstPort]
		if !ok {
			fam = FamilyAuto
		}
		if d != nil {
			if c.accept(from, false) {
				d.decode(payload, from, uint64(ci.Timestamp.UnixNano()), fam, &t)
			}
			continue
		}
		rt.route(payload, from, uint64(ci.Timestamp.UnixNano()), fam, false)
		if n%64 == 63 {
			rt.flush()
		}
	}
}

// UDPPayload extracts a UDP datagram from a captured frame of the given
// link type (Ethernet with VLAN tags, Linux cooked v1/v2, raw IP, BSD
// loopback). ok is false for anything else, for IP fragments and for
// frames cut short.
func UDPPayload(link layers.LinkType, b []byte) (payload []byte, from netip.AddrPort, dstPort uint16, ok bool) {
	var etype uint16
	switch link {
	case layers.LinkTypeEthernet:
		if len(b) < 14 {
			return
		}
		etype, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for etype == 0x8100 || etype == 0x88a8 {
			if len(b) < 4 {
				return
			}
			etype, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case layers.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return
		}
		etype, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case layers.LinkTypeLinuxSLL2:
		if len(b) < 20 {
			return
		}
		etype, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	case layers.LinkTypeRaw, layers.LinkType(12), layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		if len(b) < 1 {
			return
		}
		switch b[0] >> 4 {
		case 4:
			etype = 0x0800
		case 6:
			etype = 0x86dd
		}
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(b) < 4 {
			return
		}
		fam := binary.LittleEndian.Uint32(b)
		if link == layers.LinkTypeLoop || fam > 0xffff {
			fam = binary.BigEndian.Uint32(b)
		}
		b = b[4:]
		switch fam {
		case 2:
			etype = 0x0800
		case 24, 28, 30:
			etype = 0x86dd
		}
	default:
		return
	}
	var src netip.Addr
	switch etype {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || total < ihl || len(b) < total || b[9] != 17 {
			return
		}
		if binary.BigEndian.Uint16(b[6:])&0x3fff != 0 { // MF set or offset > 0
			return
		}
		src = netip.AddrFrom4([4]byte(b[12:16]))
		b = b[ihl:total]
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		next := b[6]
		src = netip.AddrFrom16([16]byte(b[8:24]))
		if len(b) < 40+plen {
			return
		}
		b = b[40 : 40+plen]
		for next != 17 {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(b) < 8 {
					return
				}
				l := (int(b[1]) + 1) * 8
				if len(b) < l {
					return
				}
				next, b = b[0], b[l:]
			default: // fragments (44) and anything but UDP
				return
			}
		}
	default:
		return
	}
	if len(b) < 8 {
		return
	}
	ulen := int(binary.BigEndian.Uint16(b[4:]))
	if ulen < 8 || ulen > len(b) {
		return
	}
	return b[8:ulen], netip.AddrPortFrom(src, binary.BigEndian.Uint16(b)), binary.BigEndian.Uint16(b[2:]), true
}
