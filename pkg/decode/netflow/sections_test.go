package netflow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gfnetflow "github.com/netsampler/goflow2/v2/decoders/netflow"
	gfproducer "github.com/netsampler/goflow2/v2/producer"
	gfproto "github.com/netsampler/goflow2/v2/producer/proto"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/frames"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// varLen prefixes v with its IPFIX variable-length encoding (RFC 7011 7).
func varLen(v []byte) []byte {
	if len(v) < 255 {
		return append([]byte{byte(len(v))}, v...)
	}
	return append(u16([]byte{255}, uint16(len(v))), v...)
}

const (
	penJuniper           = 2636
	ieCommonPropertiesID = 137
	juniperTemplateID    = 1024
	juniperDomain        = 524288 // FPC slot numbering puts the domain high
)

// juniperFields is the primary data record of Juniper's inline monitoring
// as its documentation lists it: ingress and egress interface (10, 14),
// direction (61), dataLinkFrameSize (312), Juniper's common-properties
// elements (enterprise 2636, element 137: forwarding class and drop
// priority, forwarding exception code, ingress interface), and
// dataLinkFrameSection (315), variable length.
var juniperFields = [][3]uint32{{10, 4, 0}, {14, 4, 0}, {61, 1, 0}, {312, 2, 0},
	{ieCommonPropertiesID, 8, penJuniper}, {ieCommonPropertiesID, 8, penJuniper}, {ieCommonPropertiesID, 8, penJuniper},
	{315, 0xffff, 0}}

// cpid is one Juniper common-properties value: a type in the top 6 bits,
// its value below.
func cpid(typ uint64, v uint64) []byte { return binary.BigEndian.AppendUint64(nil, typ<<58|v) }

func juniperRecord(in, out uint32, frameSize uint16, frame []byte) []byte {
	b := u32(nil, in)
	b = u32(b, out)
	b = append(b, 0) // ingress
	b = u16(b, frameSize)
	b = append(b, cpid(1, 0x0203)...)     // forwarding class 2, drop priority 3
	b = append(b, cpid(2, 0x1f4)...)      // forwarding exception: discard route
	b = append(b, cpid(6, uint64(in))...) // ingress interface index
	return append(b, varLen(frame)...)
}

var juniper = netip.MustParseAddrPort("192.0.2.200:4739")

// sectionFrame is one frame kind of the issue, as a router samples it.
type sectionFrame struct {
	name     string
	frame    []byte
	wireSize uint16 // dataLinkFrameSize
	goflow2  bool   // goflow2 v2.2.6 walks it whole (no QinQ, pseudowire or VXLAN)
}

func sectionFrames() []sectionFrame {
	cat := frames.Cat
	a, b := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.20")
	c, d := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	v6a, v6b := netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::20")
	s1, s2 := netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:ff::2")
	const rA, rB, cA, cB = 0x2c_6b_f5_00_00_01, 0x2c_6b_f5_00_00_02, 0x00_05_85_aa_bb_01, 0x00_1b_54_cc_dd_02
	tcpIPv4 := cat(frames.IPv4(a, b, 6, 0x28, 61, 7, 0x4000, 1500), frames.TCP(40000, 443, 0x18))
	udpIPv4 := cat(frames.IPv4(c, d, 17, 0, 64, 9, 0, 128), frames.UDP(5353, 53, 108))
	key := uint32(77)
	return []sectionFrame{
		{"ethernet-ipv4-tcp", frames.Pad(cat(frames.Ethernet(rB, rA, 0x800), tcpIPv4), 128), 1514, true},
		{"dot1q-ipv4-tcp", frames.Pad(cat(frames.Ethernet(rB, rA, 0x8100), frames.VLAN(120, 0x800), tcpIPv4), 128), 1518, true},
		{"qinq-ipv4-udp", cat(frames.Ethernet(rB, rA, 0x88a8), frames.VLAN(300, 0x8100), frames.VLAN(42, 0x800), udpIPv4), 150, false},
		{"mpls-ipv4", cat(frames.Ethernet(rB, rA, 0x8847), frames.MPLS(16001, 0, false, 254), frames.MPLS(299776, 0, true, 60), tcpIPv4), 1522, true},
		{"eompls-control-word", cat(frames.Ethernet(rB, rA, 0x8847), frames.MPLS(24001, 0, false, 255), frames.MPLS(24002, 0, true, 255),
			frames.ControlWord(9), frames.Ethernet(cB, cA, 0x8100), frames.VLAN(10, 0x800), tcpIPv4), 1544, false},
		{"eompls-no-control-word", cat(frames.Ethernet(rB, rA, 0x8847), frames.MPLS(24003, 0, true, 64),
			frames.Ethernet(cA, cB, 0x800), udpIPv4), 160, false},
		{"ipv6-srv6-udp", cat(frames.Ethernet(rB, rA, 0x86dd), frames.IPv6(v6a, s2, 43, 0, 63, 0x12345, 40+8),
			frames.SRH(17, 1, v6b, s2, s1), frames.UDP(1000, 2000, 8)), 126, true},
		{"gre-ipv4", cat(frames.Ethernet(rB, rA, 0x800), frames.IPv4(c, d, 47, 0, 30, 1, 0, 1500+24),
			frames.GRE(0x800, nil), tcpIPv4), 1538, true},
		{"gre-key-ipv4", cat(frames.Ethernet(rB, rA, 0x800), frames.IPv4(c, d, 47, 0, 30, 1, 0, 1500+28),
			frames.GRE(0x800, &key), tcpIPv4), 1542, false},
		{"vxlan", cat(frames.Ethernet(rB, rA, 0x800), frames.IPv4(c, d, 17, 0, 64, 3, 0, 1550),
			frames.UDP(49152, 4789, 1530), frames.VXLAN(5001), frames.Ethernet(cB, cA, 0x800), tcpIPv4), 1564, false},
		{"ipv4-icmp", cat(frames.Ethernet(rB, rA, 0x800), frames.IPv4(a, b, 1, 0, 250, 5, 0, 84), frames.ICMP(8, 0)), 98, true},
		{"ipv6-icmpv6", cat(frames.Ethernet(rB, rA, 0x86dd), frames.IPv6(v6a, v6b, 58, 0, 64, 0, 8), frames.ICMP(128, 0)), 62, true},
	}
}

// juniperPackets returns the template message and one data message per
// frame, each a record with ingress interface 100+i, egress 200+i.
func juniperPackets(fs []sectionFrame) (tmplMsg []byte, data [][]byte) {
	tmplMsg = ipfixMsg(juniperDomain, 0, set(2, tmpl(juniperTemplateID, juniperFields...)))
	for i, f := range fs {
		data = append(data, ipfixMsg(juniperDomain, uint32(i), set(juniperTemplateID, juniperRecord(uint32(100+i), uint32(200+i), f.wireSize, f.frame))))
	}
	return tmplMsg, data
}

// wantFromFrame is the record a frame must give: the parser's fields for
// the frame, with the record's interfaces, counters and header fields.
func wantFromFrame(f sectionFrame, i int, receivedNs uint64) *flowpb.FlowMessage {
	var w flowpb.FlowMessage
	packet.Parse(&w, f.frame, packet.Ethernet, sectionMaxLabels)
	w.Type = flowpb.FlowMessage_IPFIX
	w.TimeReceivedNs = receivedNs
	w.SequenceNum = uint32(i)
	w.ObservationDomainId = juniperDomain
	w.SamplerAddress = juniper.Addr().AsSlice()
	w.InIf, w.OutIf = uint32(100+i), uint32(200+i)
	w.Bytes, w.Packets = uint64(f.wireSize), 1
	return &w
}

// TestFrameSectionRecords decodes a Juniper-style inline-monitoring record
// for each frame kind: every field is what the shared parser reads from the
// frame, and the interfaces, bytes (dataLinkFrameSize) and packets (1) come
// from the record; Juniper's enterprise elements change nothing.
func TestFrameSectionRecords(t *testing.T) {
	fs := sectionFrames()
	tmplMsg, data := juniperPackets(fs)
	d := NewDecoder(Config{})
	if _, errs := decodeAll(t, d, juniper, tmplMsg); errs != nil {
		t.Fatal(errs)
	}
	for i, f := range fs {
		t.Run(f.name, func(t *testing.T) {
			var s sink
			if err := d.Decode(decode.Packet{Data: data[i], Exporter: juniper, ReceivedNs: 42}, s.emit); err != nil {
				t.Fatal(err)
			}
			if len(s.msgs) != 1 {
				t.Fatalf("%d records", len(s.msgs))
			}
			want := wantFromFrame(f, i, 42)
			if !s.msgs[0].EqualVT(want) {
				t.Fatalf("got  %v\nwant %v", s.msgs[0], want)
			}
			if len(want.SrcAddr) == 0 || want.Proto == 0 {
				t.Fatalf("the frame gave no 5-tuple: %v", want)
			}
		})
	}
}

// TestJuniperFrames spells out the three frames the issue saw from Juniper
// MX routers, field by field.
func TestJuniperFrames(t *testing.T) {
	fs := sectionFrames()
	tmplMsg, data := juniperPackets(fs)
	d := NewDecoder(Config{})
	msgs, errs := decodeAll(t, d, juniper, append([][]byte{tmplMsg}, data...)...)
	if errs != nil {
		t.Fatal(errs)
	}
	byName := map[string]*flowpb.FlowMessage{}
	for i, f := range fs {
		byName[f.name] = msgs[i]
	}
	m := byName["dot1q-ipv4-tcp"]
	if m.VlanId != 120 || addrText(m.SrcAddr) != "198.51.100.10" || addrText(m.DstAddr) != "203.0.113.20" || m.Proto != 6 ||
		m.SrcPort != 40000 || m.DstPort != 443 || m.TcpFlags != 0x18 || m.SrcMac != 0x2c6bf5000001 || m.DstMac != 0x2c6bf5000002 ||
		m.Etype != 0x800 || m.Bytes != 1518 || m.Packets != 1 || m.InIf != 101 || m.OutIf != 201 {
		t.Errorf("802.1Q: %v", m)
	}
	m = byName["ipv6-srv6-udp"]
	if addrText(m.SrcAddr) != "2001:db8:1::10" || addrText(m.DstAddr) != "2001:db8:ff::2" || m.Proto != 17 || m.DstPort != 2000 ||
		m.Ipv6RoutingHeaderSegLeft != 1 || len(m.Ipv6RoutingHeaderAddresses) != 3 ||
		addrText(m.Ipv6RoutingHeaderAddresses[0]) != "2001:db8:2::20" || m.Etype != 0x86dd || m.Ipv6FlowLabel != 0x12345 {
		t.Errorf("SRv6: %v", m)
	}
	m = byName["eompls-control-word"]
	if !slices.Equal(m.MplsLabel, []uint32{24001, 24002}) || m.SrcMac != 0x000585aabb01 || m.VlanId != 10 ||
		addrText(m.SrcAddr) != "198.51.100.10" || m.SrcPort != 40000 || m.Proto != 6 || m.Etype != 0x800 || m.Bytes != 1544 {
		t.Errorf("Ethernet over MPLS with control word: %v", m)
	}
}

// TestFrameSectionsMatchTshark: tshark decodes the same IPFIX packets;
// its interfaces, frame sizes and frame bytes must be ours (the frames'
// own layers are checked against tshark in package packet).
func TestFrameSectionsMatchTshark(t *testing.T) {
	interop.Require(t, "tshark")
	fs := sectionFrames()
	tmplMsg, data := juniperPackets(fs)
	path := filepath.Join(t.TempDir(), "juniper.pcap")
	if err := interop.WritePcap(path, append([][]byte{tmplMsg}, data...), 4739); err != nil {
		t.Fatal(err)
	}
	rows := interop.Tshark(t, path, "cflow", 4739, "cflow.inputint", "cflow.outputint", "cflow.data_link_frame_size", "cflow.data_link_frame_section")
	msgs, errs := decodeAll(t, NewDecoder(Config{}), juniper, append([][]byte{tmplMsg}, data...)...)
	if errs != nil {
		t.Fatal(errs)
	}
	if len(rows) != len(msgs) {
		t.Fatalf("tshark has %d records, we %d", len(rows), len(msgs))
	}
	for i, r := range rows {
		m := msgs[i]
		section := strings.ReplaceAll(r["cflow.data_link_frame_section"], ":", "")
		if r["cflow.inputint"] != strconv.Itoa(int(m.InIf)) || r["cflow.outputint"] != strconv.Itoa(int(m.OutIf)) ||
			r["cflow.data_link_frame_size"] != strconv.Itoa(int(m.Bytes)) || section != hex.EncodeToString(fs[i].frame) {
			t.Errorf("%s: tshark %v, ours in %d out %d bytes %d", fs[i].name, r, m.InIf, m.OutIf, m.Bytes)
		}
	}
}

// goflow2IPFIX decodes packets with goflow2 v2.2.6's decoder and producer
// as its CLI does, and returns its records read back into our schema.
func goflow2IPFIX(t *testing.T, exporter netip.AddrPort, pkts ...[]byte) []*flowpb.FlowMessage {
	t.Helper()
	var cfg *gfproto.ProducerConfig
	cfgm, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := gfproto.CreateProtoProducer(cfgm, gfproto.CreateSamplingSystem)
	if err != nil {
		t.Fatal(err)
	}
	templates := gfnetflow.CreateTemplateSystem()
	var out []*flowpb.FlowMessage
	for _, p := range pkts {
		var v9 gfnetflow.NFv9Packet
		var ipfix gfnetflow.IPFIXPacket
		if err := gfnetflow.DecodeMessageVersion(bytes.NewBuffer(p), templates, &v9, &ipfix); err != nil {
			t.Fatalf("goflow2: %v", err)
		}
		var msg any = &ipfix
		if binary.BigEndian.Uint16(p) == 9 {
			msg = &v9
		}
		msgs, err := prod.Produce(msg, &gfproducer.ProduceArgs{Src: exporter, SamplerAddress: exporter.Addr(), TimeReceived: time.Unix(0, 42)})
		if err != nil {
			t.Fatalf("goflow2: %v", err)
		}
		for _, m := range msgs {
			b, err := proto.Marshal(&m.(*gfproto.ProtoProducerMessage).FlowMessage)
			if err != nil {
				t.Fatal(err)
			}
			var ours flowpb.FlowMessage
			if err := ours.UnmarshalVT(b); err != nil {
				t.Fatal(err)
			}
			out = append(out, &ours)
		}
		prod.Commit(msgs)
	}
	return out
}

// TestFrameSectionsSameAsGoflow2 decodes the same packets with goflow2
// v2.2.6, which also walks dataLinkFrameSection, and compares every field
// for the frames it walks whole, but for its known mistakes (the same as
// in sFlow, see package sflow): times (it puts the export time in records
// without flow times), the VLAN priority bits, TCP's layer_size, no ICMP
// type/code, and proto left at the first IPv6 extension header.
func TestFrameSectionsSameAsGoflow2(t *testing.T) {
	fs := sectionFrames()
	tmplMsg, data := juniperPackets(fs)
	pkts := append([][]byte{tmplMsg}, data...)
	ours, errs := decodeAll(t, NewDecoder(Config{}), juniper, pkts...)
	if errs != nil {
		t.Fatal(errs)
	}
	theirs := goflow2IPFIX(t, juniper, pkts...)
	if len(theirs) != len(ours) {
		t.Fatalf("goflow2 %d records, ours %d", len(theirs), len(ours))
	}
	compared := 0
	for i, f := range fs {
		o, g := ours[i].CloneVT(), theirs[i]
		if !f.goflow2 {
			// It stops where it does not know the layer: what it read
			// must still be ours.
			if g.SrcMac != o.SrcMac && !strings.HasPrefix(f.name, "eompls") || g.InIf != o.InIf || g.Bytes != o.Bytes {
				t.Errorf("%s: goflow2 %v\nours %v", f.name, g, o)
			}
			continue
		}
		g.TimeFlowStartNs, g.TimeFlowEndNs, g.TimeReceivedNs = 0, 0, 0
		o.TimeReceivedNs = 0
		g.VlanId &= 0xfff
		o.IcmpType, o.IcmpCode = 0, 0
		if g.Proto == 43 && slices.Contains(o.LayerStack, flowpb.FlowMessage_IPv6HeaderRouting) {
			g.Proto = o.Proto
		}
		if k := slices.Index(o.LayerStack, flowpb.FlowMessage_TCP); k >= 0 && k < len(g.LayerSize) {
			g.LayerSize[k] = o.LayerSize[k]
		}
		if !o.EqualVT(g) {
			t.Errorf("%s differs:\nours    %v\ngoflow2 %v", f.name, o, g)
		}
		compared++
	}
	t.Logf("%d records identical to goflow2's", compared)
}

// TestSectionsV9 covers the other section elements and NetFlow v9:
// Cisco's layer2packetSectionData (104) with its offset (102) and
// dataLinkFrameSection (315) at fixed lengths in v9, and
// ipHeaderPacketSection (313) and mplsLabelStackSection (316) in IPFIX,
// whose byte count comes from the IP header.
func TestSectionsV9(t *testing.T) {
	fs := sectionFrames()
	eth := fs[1].frame // 802.1Q, IPv4, TCP, 128 bytes
	d := NewDecoder(Config{})

	// v9: interfaces, offset 0, a 64-byte L2 section; then a 315 record of 128.
	v9 := v9Msg(7, 1,
		set(0, tmpl(260, [3]uint32{10, 2, 0}, [3]uint32{102, 2, 0}, [3]uint32{104, 64, 0}),
			tmpl(261, [3]uint32{10, 2, 0}, [3]uint32{1, 4, 0}, [3]uint32{315, 128, 0})),
		set(260, u16(nil, 3), u16(nil, 0), eth[:64]),
		set(260, u16(nil, 4), u16(nil, 14), eth[:64]), // offset 14: not the frame's start, left alone
		set(261, u16(nil, 5), u32(nil, 1000), eth))
	msgs, errs := decodeAll(t, d, juniper, v9)
	if errs != nil || len(msgs) != 3 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	if m := msgs[0]; m.VlanId != 120 || m.SrcPort != 40000 || m.Bytes != 1518 || m.Packets != 1 || m.Type != flowpb.FlowMessage_NETFLOW_V9 {
		t.Errorf("v9 layer2packetSectionData: %v", m)
	}
	if m := msgs[1]; len(m.SrcAddr) != 0 || len(m.LayerStack) != 0 || m.InIf != 4 {
		t.Errorf("a section at offset 14 was walked: %v", m)
	}
	if m := msgs[2]; m.Bytes != 1000 || m.Packets != 1 || m.VlanId != 120 || addrText(m.DstAddr) != "203.0.113.20" {
		t.Errorf("v9 dataLinkFrameSection with an octet counter: %v", m)
	}

	// IPFIX: ipHeaderPacketSection, mplsLabelStackSection.
	ipHdr := eth[18:]
	mplsHdr := frames.Cat(frames.MPLS(3000, 0, true, 7), ipHdr)
	pkt := ipfixMsg(9, 0, set(2, tmpl(300, [3]uint32{313, 0xffff, 0}), tmpl(301, [3]uint32{316, 0xffff, 0})),
		set(300, varLen(ipHdr)), set(301, varLen(mplsHdr)))
	msgs, errs = decodeAll(t, d, juniper, pkt)
	if errs != nil || len(msgs) != 2 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	if m := msgs[0]; m.Bytes != 1500 || m.Packets != 1 || m.Etype != 0x800 || m.SrcPort != 40000 ||
		!slices.Equal(m.LayerStack, []flowpb.FlowMessage_LayerStack{flowpb.FlowMessage_IPv4, flowpb.FlowMessage_TCP}) {
		t.Errorf("ipHeaderPacketSection: %v", m)
	}
	if m := msgs[1]; m.Bytes != 1504 || !slices.Equal(m.MplsLabel, []uint32{3000}) || m.DstPort != 443 || m.Etype != 0x800 {
		t.Errorf("mplsLabelStackSection: %v", m)
	}
}

// v9Msg is a NetFlow v9 export packet.
func v9Msg(sourceID, seq uint32, sets ...[]byte) []byte {
	b := u16(nil, 9)
	b = u16(b, uint16(len(sets)))
	b = u32(b, 3_600_000)  // sysUptime: one hour
	b = u32(b, 1709294400) // unix secs
	b = u32(b, seq)
	b = u32(b, sourceID)
	for _, s := range sets {
		b = append(b, s...)
	}
	return b
}

// TestSectionAndElementsDisagree: where the record's elements and its
// frame disagree, the elements win, field by field; the frame fills the
// rest.
func TestSectionAndElementsDisagree(t *testing.T) {
	frame := sectionFrames()[3].frame // MPLS 16001/299776, IPv4 198.51.100.10:40000 > 203.0.113.20:443 TCP
	fields := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {1, 8, 0}, {2, 8, 0},
		{58, 2, 0}, {70, 3, 0}, {6, 1, 0}, {312, 2, 0}, {315, 0xffff, 0}}
	rec := netip.MustParseAddr("10.0.0.1").AsSlice()
	rec = append(rec, netip.MustParseAddr("10.0.0.2").AsSlice()...)
	rec = u16(rec, 1111)
	rec = u16(rec, 2222)
	rec = append(rec, 17)
	rec = binary.BigEndian.AppendUint64(rec, 77777)
	rec = binary.BigEndian.AppendUint64(rec, 55)
	rec = u16(rec, 333)
	rec = append(rec, 0x00, 0x01, 0x11) // label 17, bottom of stack
	rec = append(rec, 0x02)
	rec = u16(rec, 1522)
	rec = append(rec, varLen(frame)...)
	msgs, errs := decodeAll(t, NewDecoder(Config{}), juniper, ipfixMsg(1, 0, set(2, tmpl(300, fields...)), set(300, rec)))
	if errs != nil || len(msgs) != 1 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	m := msgs[0]
	if addrText(m.SrcAddr) != "10.0.0.1" || addrText(m.DstAddr) != "10.0.0.2" || m.SrcPort != 1111 || m.DstPort != 2222 ||
		m.Proto != 17 || m.Bytes != 77777 || m.Packets != 55 || m.SrcVlan != 333 || m.VlanId != 333 || m.TcpFlags != 2 ||
		!slices.Equal(m.MplsLabel, []uint32{17}) || len(m.MplsTtl) != 0 {
		t.Errorf("elements did not win: %v", m)
	}
	// Not in the elements: from the frame.
	if m.SrcMac != 0x2c6bf5000001 || m.DstMac != 0x2c6bf5000002 || m.IpTtl != 61 || m.IpTos != 0x28 || m.Etype != 0x800 || len(m.LayerStack) != 4 {
		t.Errorf("frame fields lost: %v", m)
	}
}

// TestSectionGuards: a frame type other than Ethernet is not walked; a
// record without counters or frame size counts its section.
func TestSectionGuards(t *testing.T) {
	eth := sectionFrames()[0].frame // 128 bytes of a 1500-byte IPv4 packet
	d := NewDecoder(Config{})
	pkt := ipfixMsg(1, 0,
		set(2, tmpl(300, [3]uint32{408, 2, 0}, [3]uint32{315, 0xffff, 0}), tmpl(301, [3]uint32{315, 0xffff, 0})),
		set(300, u16(nil, 2), varLen(eth)), // 802.11: not ours to walk
		set(300, u16(nil, 1), varLen(eth)),
		set(301, varLen(eth[:60])))
	msgs, errs := decodeAll(t, d, juniper, pkt)
	if errs != nil || len(msgs) != 3 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	if m := msgs[0]; len(m.LayerStack) != 0 || m.SrcMac != 0 || m.Packets != 0 {
		t.Errorf("802.11 frame walked as Ethernet: %v", m)
	}
	// Without dataLinkFrameSize: the IP header's length and the 14 bytes
	// before it, not the 128 captured.
	if m := msgs[1]; m.Bytes != 1514 || m.Packets != 1 || m.SrcPort != 40000 {
		t.Errorf("Ethernet frame type: %v", m)
	}
	if m := msgs[2]; m.Bytes != 1514 || m.SrcPort != 40000 {
		t.Errorf("60 bytes of a 1514-byte frame: %v", m)
	}
}

// TestEnterpriseElementsNeverSpoil: Juniper's elements, and enterprise
// elements nobody knows (variable length, in the middle of the record),
// are skipped; a mapping still gets them.
func TestEnterpriseElementsNeverSpoil(t *testing.T) {
	m, err := mapping.Load(stringsReader(`
ipfix:
  mapping:
    - {field: 137, penprovided: true, pen: 2636, destination: juniper_cpid, protobuf: 1201, type: uint}
`))
	if err != nil {
		t.Fatal(err)
	}
	frame := sectionFrames()[0].frame
	fields := append([][3]uint32{{999, 0xffff, 99999}, {60000 & 0x7fff, 3, 12345}}, juniperFields...)
	rec := append(varLen([]byte("opaque vendor data")), 1, 2, 3)
	rec = append(rec, juniperRecord(7, 8, 1514, frame)...)
	pkt := ipfixMsg(1, 0, set(2, tmpl(300, fields...)), set(300, rec, rec))
	for _, mp := range []*mapping.Mapping{nil, m} {
		msgs, errs := decodeAll(t, NewDecoder(Config{Mapping: mp}), juniper, pkt)
		if errs != nil || len(msgs) != 2 {
			t.Fatalf("%d records %v", len(msgs), errs)
		}
		got := msgs[1]
		if got.InIf != 7 || got.OutIf != 8 || got.Bytes != 1514 || got.SrcPort != 40000 || addrText(got.SrcAddr) != "198.51.100.10" {
			t.Errorf("record spoiled: %v", got)
		}
		unknown := got.ProtoReflect().GetUnknown()
		if mp == nil {
			if len(unknown) != 0 {
				t.Errorf("unmapped elements in the record: %x", unknown)
			}
			continue
		}
		var cpids []uint64
		for len(unknown) > 0 {
			num, _, n := protowire.ConsumeTag(unknown)
			v, n2 := protowire.ConsumeVarint(unknown[n:])
			if num == 1201 {
				cpids = append(cpids, v)
			}
			unknown = unknown[n+n2:]
		}
		if len(cpids) != 3 || cpids[1]>>58 != 2 || cpids[1]&0xffff != 0x1f4 {
			t.Errorf("mapped Juniper CPIDs %x", cpids)
		}
	}
}

// TestSkippedFieldsFolded: unused fixed-length fields are folded into the
// next op's skip (or trailing ops); records keep their length and fields.
func TestSkippedFieldsFolded(t *testing.T) {
	fields := [][3]uint32{{61, 1, 0}, {999, 2, 9}, {8, 4, 0}, {137, 8, penJuniper}, {12, 4, 0}, {1, 8, 0},
		{61, 1, 0}, {137, 8, penJuniper}}
	p, err := compile(nil)(template.Key{Version: 10, ID: 300}, &template.Spec{Fields: toFields(fields)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.ops) != 4 || p.ops[0].skip != 3 || p.ops[1].skip != 8 || p.ops[3].length != 9 || p.fixedLen != 36 {
		t.Fatalf("ops %+v", p.ops)
	}
	var set300 []byte
	for i := range 3 {
		b := []byte{1, 0xaa, 0xbb, 10, 0, 0, byte(i)}
		b = binary.BigEndian.AppendUint64(b, 0x1122334455667788)
		b = append(b, 192, 0, 2, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(100*(i+1)))
		b = append(b, 0)
		set300 = append(set300, binary.BigEndian.AppendUint64(b, 42)...)
	}
	msgs, errs := decodeAll(t, NewDecoder(Config{}), exporterA, ipfixMsg(1, 0, set(2, tmpl(300, fields...)), set(300, set300)))
	if errs != nil || len(msgs) != 3 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	for i, m := range msgs {
		if addrText(m.SrcAddr) != "10.0.0."+strconv.Itoa(i) || addrText(m.DstAddr) != "192.0.2.1" || m.Bytes != uint64(100*(i+1)) {
			t.Errorf("record %d: %v", i, m)
		}
	}
	// Runs longer than an op can say stay whole.
	long, err := compile(nil)(template.Key{Version: 10, ID: 301}, &template.Spec{Fields: toFields([][3]uint32{{999, 40000, 9}, {998, 40000, 9}, {8, 4, 0}})})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, o := range long.ops {
		total += int(o.skip) + int(o.length)
	}
	if total != 80004 || long.ops[len(long.ops)-1].target != tSrcAddr4 {
		t.Errorf("long run: %+v", long.ops)
	}
}

func toFields(fs [][3]uint32) []template.Field {
	out := make([]template.Field, len(fs))
	for i, f := range fs {
		out[i] = template.Field{ID: uint16(f[0]), Length: uint16(f[1]), PEN: f[2]}
	}
	return out
}
