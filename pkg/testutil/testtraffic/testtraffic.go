// Package testtraffic writes pcap files of ordinary traffic with known
// flows, to be fed to real exporters (softflowd, pmacctd, nfpcapd) so that
// what they export can be checked against ground truth.
//
// Each Flow describes one direction of a conversation: a 5-tuple, a packet
// count, an L3 size and a timing. Write interleaves the packets of all flows
// in time order and returns the flows with their ground truth filled in:
// packets, bytes at L3 (the IP total length, or the IPv6 payload length plus
// the 40-byte header, as exporters count them), first and last timestamp and
// the OR of the TCP flags sent.
package testtraffic

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// IP protocol numbers used by Flow.Proto.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits, as in the TCP header and in NetFlow's tcp_flags.
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
)

// Flow is one unidirectional flow.
type Flow struct {
	Src, Dst         netip.Addr // both IPv4 or both IPv6
	Proto            uint8      // ProtoTCP, ProtoUDP, ProtoICMP or ProtoICMPv6
	SrcPort, DstPort uint16     // TCP/UDP only
	ICMPType         uint8      // ICMP/ICMPv6 only
	ICMPCode         uint8
	VLAN             uint16 // 802.1Q tag when non-zero
	TOS              uint8  // IPv4 TOS / IPv6 traffic class
	TTL              uint8  // hop limit; 64 when zero
	SrcMAC, DstMAC   net.HardwareAddr
	Packets          int           // number of packets, at least 1
	Size             int           // L3 bytes per packet (grown to the minimum the headers need)
	Start            time.Time     // time of the first packet
	Interval         time.Duration // between consecutive packets

	// Ground truth, filled by Write.
	Bytes       uint64    // sum of L3 lengths
	First, Last time.Time // timestamps of the first and last packet
	TCPFlags    uint8     // OR of the flags sent (SYN first, ACK|PSH middle, FIN|ACK last)
}

// IPv6 reports whether the flow is IPv6.
func (f *Flow) IPv6() bool { return f.Src.Is6() && !f.Src.Is4In6() }

// Key identifies the flow the way NetFlow exporters do: for ICMP the
// destination port carries type<<8|code and the source port is 0.
func (f *Flow) Key() Key {
	k := Key{Src: f.Src, Dst: f.Dst, Proto: f.Proto, SrcPort: f.SrcPort, DstPort: f.DstPort}
	if f.Proto == ProtoICMP || f.Proto == ProtoICMPv6 {
		k.SrcPort, k.DstPort = 0, uint16(f.ICMPType)<<8|uint16(f.ICMPCode)
	}
	return k
}

// Key is a flow's 5-tuple.
type Key struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

func (k Key) String() string {
	return fmt.Sprintf("%d %s:%d > %s:%d", k.Proto, k.Src, k.SrcPort, k.Dst, k.DstPort)
}

// Epoch is the start time of Default's traffic.
var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// Default returns a deterministic mix of 20 flows over about 20 seconds:
// IPv4 and IPv6, TCP (both directions of each connection), UDP, ICMP and
// ICMPv6, different sizes, one VLAN-tagged flow. Every frame is at least
// 60 bytes without padding: softflowd counts Ethernet padding as L3 bytes.
func Default() []Flow {
	v4 := netip.MustParseAddr
	at := func(ms int) time.Time { return epoch.Add(time.Duration(ms) * time.Millisecond) }
	ms := time.Millisecond
	return []Flow{
		{Src: v4("10.0.0.1"), Dst: v4("192.0.2.10"), Proto: ProtoTCP, SrcPort: 40001, DstPort: 443, Packets: 12, Size: 1400, Start: at(0), Interval: 100 * ms},
		{Src: v4("192.0.2.10"), Dst: v4("10.0.0.1"), Proto: ProtoTCP, SrcPort: 443, DstPort: 40001, Packets: 8, Size: 60, Start: at(5), Interval: 150 * ms},
		{Src: v4("10.0.0.2"), Dst: v4("198.51.100.7"), Proto: ProtoTCP, SrcPort: 40002, DstPort: 80, Packets: 5, Size: 500, Start: at(300), Interval: 200 * ms, TOS: 0x20},
		{Src: v4("198.51.100.7"), Dst: v4("10.0.0.2"), Proto: ProtoTCP, SrcPort: 80, DstPort: 40002, Packets: 6, Size: 1500, Start: at(310), Interval: 180 * ms, TOS: 0x20},
		{Src: v4("10.0.0.3"), Dst: v4("203.0.113.53"), Proto: ProtoUDP, SrcPort: 53001, DstPort: 53, Packets: 1, Size: 72, Start: at(700), Interval: 0},
		{Src: v4("203.0.113.53"), Dst: v4("10.0.0.3"), Proto: ProtoUDP, SrcPort: 53, DstPort: 53001, Packets: 1, Size: 180, Start: at(720), Interval: 0},
		{Src: v4("10.0.0.4"), Dst: v4("192.0.2.99"), Proto: ProtoUDP, SrcPort: 5004, DstPort: 5004, Packets: 40, Size: 214, Start: at(1000), Interval: 20 * ms, TTL: 32},
		{Src: v4("10.0.0.5"), Dst: v4("192.0.2.1"), Proto: ProtoICMP, ICMPType: 8, Packets: 4, Size: 84, Start: at(1500), Interval: 1000 * ms},
		{Src: v4("192.0.2.1"), Dst: v4("10.0.0.5"), Proto: ProtoICMP, ICMPType: 0, Packets: 4, Size: 84, Start: at(1510), Interval: 1000 * ms},
		{Src: v4("10.0.1.6"), Dst: v4("192.0.2.20"), Proto: ProtoTCP, SrcPort: 40006, DstPort: 22, Packets: 15, Size: 120, Start: at(2000), Interval: 300 * ms, VLAN: 100},
		{Src: v4("10.0.0.7"), Dst: v4("192.0.2.30"), Proto: ProtoUDP, SrcPort: 40007, DstPort: 123, Packets: 2, Size: 76, Start: at(2500), Interval: 2000 * ms},
		{Src: v4("172.16.5.5"), Dst: v4("10.0.0.8"), Proto: ProtoTCP, SrcPort: 50008, DstPort: 25, Packets: 3, Size: 52, Start: at(3000), Interval: 500 * ms},
		{Src: v4("2001:db8::1"), Dst: v4("2001:db8:1::10"), Proto: ProtoTCP, SrcPort: 40011, DstPort: 443, Packets: 10, Size: 1280, Start: at(100), Interval: 120 * ms},
		{Src: v4("2001:db8:1::10"), Dst: v4("2001:db8::1"), Proto: ProtoTCP, SrcPort: 443, DstPort: 40011, Packets: 7, Size: 72, Start: at(110), Interval: 160 * ms},
		{Src: v4("2001:db8::2"), Dst: v4("2001:db8:2::53"), Proto: ProtoUDP, SrcPort: 53002, DstPort: 53, Packets: 1, Size: 90, Start: at(800), Interval: 0},
		{Src: v4("2001:db8:2::53"), Dst: v4("2001:db8::2"), Proto: ProtoUDP, SrcPort: 53, DstPort: 53002, Packets: 1, Size: 250, Start: at(820), Interval: 0},
		{Src: v4("2001:db8::3"), Dst: v4("2001:db8:3::1"), Proto: ProtoICMPv6, ICMPType: 128, Packets: 3, Size: 104, Start: at(1200), Interval: 1000 * ms},
		{Src: v4("2001:db8:3::1"), Dst: v4("2001:db8::3"), Proto: ProtoICMPv6, ICMPType: 129, Packets: 3, Size: 104, Start: at(1210), Interval: 1000 * ms},
		{Src: v4("2001:db8::4"), Dst: v4("2001:db8:4::4"), Proto: ProtoUDP, SrcPort: 4789, DstPort: 4789, Packets: 25, Size: 900, Start: at(4000), Interval: 40 * ms, TOS: 0xb8},
		{Src: v4("2001:db8::5"), Dst: v4("2001:db8:5::5"), Proto: ProtoTCP, SrcPort: 40015, DstPort: 8080, Packets: 4, Size: 600, Start: at(6000), Interval: 2500 * ms},
	}
}

type stamped struct {
	ts   time.Time
	flow int
	seq  int
}

// Write writes the flows' packets to a pcap file at path (Ethernet link
// type, packets in time order) and returns a copy of the flows with their
// ground truth filled in.
func Write(path string, flows []Flow) ([]Flow, error) {
	out := make([]Flow, len(flows))
	copy(out, flows)
	var all []stamped
	for i := range out {
		f := &out[i]
		if err := check(f); err != nil {
			return nil, fmt.Errorf("testtraffic: flow %d (%s): %w", i, f.Key(), err)
		}
		f.Bytes, f.TCPFlags = 0, 0
		for s := 0; s < f.Packets; s++ {
			all = append(all, stamped{ts: f.Start.Add(time.Duration(s) * f.Interval), flow: i, seq: s})
		}
		f.First = f.Start
		f.Last = f.Start.Add(time.Duration(f.Packets-1) * f.Interval)
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].ts.Before(all[b].ts) })

	file, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("testtraffic: %w", err)
	}
	w := pcapgo.NewWriter(file)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		file.Close()
		return nil, fmt.Errorf("testtraffic: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	for _, p := range all {
		f := &out[p.flow]
		l3, flags, err := serialize(buf, f, p.seq)
		if err != nil {
			file.Close()
			return nil, fmt.Errorf("testtraffic: flow %d: %w", p.flow, err)
		}
		f.Bytes += uint64(l3)
		f.TCPFlags |= flags
		data := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			file.Close()
			return nil, fmt.Errorf("testtraffic: %w", err)
		}
	}
	if err := file.Close(); err != nil {
		return nil, fmt.Errorf("testtraffic: %w", err)
	}
	return out, nil
}

func check(f *Flow) error {
	switch {
	case !f.Src.IsValid() || !f.Dst.IsValid():
		return errors.New("missing address")
	case f.Src.Unmap().Is4() != f.Dst.Unmap().Is4():
		return errors.New("mixed address families")
	case f.Packets < 1:
		return errors.New("packets must be at least 1")
	}
	switch f.Proto {
	case ProtoTCP, ProtoUDP:
	case ProtoICMP:
		if !f.Src.Unmap().Is4() {
			return errors.New("ICMP needs IPv4 addresses")
		}
	case ProtoICMPv6:
		if f.Src.Unmap().Is4() {
			return errors.New("ICMPv6 needs IPv6 addresses")
		}
	default:
		return fmt.Errorf("unsupported protocol %d", f.Proto)
	}
	return nil
}

var (
	defaultSrcMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	defaultDstMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}
)

// serialize builds packet seq of f into buf and returns its L3 length and
// TCP flags.
func serialize(buf gopacket.SerializeBuffer, f *Flow, seq int) (int, uint8, error) {
	v4 := f.Src.Unmap().Is4()
	ipHdr := 40
	if v4 {
		ipHdr = 20
	}
	l4Hdr := 8 // UDP, ICMP echo, ICMPv6 echo
	if f.Proto == ProtoTCP {
		l4Hdr = 20
	}
	size := max(f.Size, ipHdr+l4Hdr)
	if f.Proto == ProtoICMPv6 {
		l4Hdr = 4 // type, code, checksum; the echo id and sequence go in the body
	}
	payload := gopacket.Payload(make([]byte, size-ipHdr-l4Hdr))
	for i := range payload {
		payload[i] = byte(i)
	}

	src, dst := defaultSrcMAC, defaultDstMAC
	if f.SrcMAC != nil {
		src = f.SrcMAC
	}
	if f.DstMAC != nil {
		dst = f.DstMAC
	}
	ttl := f.TTL
	if ttl == 0 {
		ttl = 64
	}
	etype := layers.EthernetTypeIPv4
	if !v4 {
		etype = layers.EthernetTypeIPv6
	}
	var ls []gopacket.SerializableLayer
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: etype}
	if f.VLAN != 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, eth, &layers.Dot1Q{VLANIdentifier: f.VLAN, Type: etype})
	} else {
		ls = append(ls, eth)
	}
	var netLayer gopacket.NetworkLayer
	if v4 {
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: f.TOS, TTL: ttl, Id: uint16(seq + 1),
			Protocol: layers.IPProtocol(f.Proto), SrcIP: f.Src.Unmap().AsSlice(), DstIP: f.Dst.Unmap().AsSlice()}
		netLayer = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv6{Version: 6, TrafficClass: f.TOS, HopLimit: ttl,
			NextHeader: layers.IPProtocol(f.Proto), SrcIP: f.Src.AsSlice(), DstIP: f.Dst.AsSlice()}
		netLayer = ip
		ls = append(ls, ip)
	}
	var flags uint8
	switch f.Proto {
	case ProtoTCP:
		flags = FlagACK | FlagPSH
		switch {
		case seq == 0:
			flags = FlagSYN
		case seq == f.Packets-1:
			flags = FlagFIN | FlagACK
		}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(f.SrcPort), DstPort: layers.TCPPort(f.DstPort),
			Seq: uint32(1000 + seq*size), Window: 65535, DataOffset: 5,
			FIN: flags&FlagFIN != 0, SYN: flags&FlagSYN != 0, PSH: flags&FlagPSH != 0, ACK: flags&FlagACK != 0}
		if flags&FlagACK != 0 {
			tcp.Ack = 1
		}
		if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return 0, 0, err
		}
		ls = append(ls, tcp)
	case ProtoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.SrcPort), DstPort: layers.UDPPort(f.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return 0, 0, err
		}
		ls = append(ls, udp)
	case ProtoICMP:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(f.ICMPType, f.ICMPCode), Id: 1, Seq: uint16(seq)})
	case ProtoICMPv6:
		icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(f.ICMPType, f.ICMPCode)}
		if err := icmp.SetNetworkLayerForChecksum(netLayer); err != nil {
			return 0, 0, err
		}
		// The echo identifier and sequence are the first 4 bytes of the body.
		payload[0], payload[1], payload[2], payload[3] = 0, 1, byte(seq>>8), byte(seq)
		ls = append(ls, icmp)
	}
	ls = append(ls, payload)
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		return 0, 0, err
	}
	return size, flags, nil
}
