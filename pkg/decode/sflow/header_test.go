package sflow

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

var (
	agent4 = netip.MustParseAddr("192.0.2.1")
	v4a    = netip.MustParseAddr("10.1.1.1")
	v4b    = netip.MustParseAddr("10.2.2.2")
	v6a    = netip.MustParseAddr("2001:db8::a")
	v6b    = netip.MustParseAddr("2001:db8::b")
)

// L is a layer stack, for short.
type L = []flowpb.FlowMessage_LayerStack

const (
	eth  = flowpb.FlowMessage_Ethernet
	dot1 = flowpb.FlowMessage_Dot1Q
	mpls = flowpb.FlowMessage_MPLS
	ip4  = flowpb.FlowMessage_IPv4
	ip6  = flowpb.FlowMessage_IPv6
	frag = flowpb.FlowMessage_IPv6HeaderFragment
	rout = flowpb.FlowMessage_IPv6HeaderRouting
	tcp  = flowpb.FlowMessage_TCP
	udp  = flowpb.FlowMessage_UDP
	icmp = flowpb.FlowMessage_ICMP
	icm6 = flowpb.FlowMessage_ICMPv6
	gre  = flowpb.FlowMessage_GRE
)

func mplsLabel(label uint32, bottom bool, ttl uint8) []byte {
	v := label<<12 | uint32(ttl)
	if bottom {
		v |= 1 << 8
	}
	return be(v)
}

// decodeOne decodes a datagram that must give exactly one flow.
func decodeOne(t *testing.T, d *Decoder, dg []byte) *flowpb.FlowMessage {
	t.Helper()
	flows, err := decodeAll(d, dg)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 1 {
		t.Fatalf("%d flows, want 1", len(flows))
	}
	return flows[0]
}

// TestHeaderLayers walks sampled headers through every layer the decoder
// knows, checking the fields each sets and goflow2's layer_stack and
// layer_size.
func TestHeaderLayers(t *testing.T) {
	ipv4TCP := cat(ipv4Hdr(v4a, v4b, 6, 0x28, 63, 77, 0x4000, 60), tcpHdr(1234, 80, 0x12))
	type want struct {
		etype, proto, sport, dport, vlan, icmpType, icmpCode, fragID, fragOff, flags, ttl, tos, label uint32
		src, dst                                                                                      netip.Addr
		mplsLabels                                                                                    []uint32
		stack                                                                                         L
		sizes                                                                                         []uint32
	}
	for _, tc := range []struct {
		name  string
		proto uint32 // header protocol
		hdr   []byte
		want  want
	}{
		{"ethernet-ipv4-tcp", headerEthernet, cat(ethHdr(1, 2, 0x800), ipv4TCP),
			want{etype: 0x800, proto: 6, sport: 1234, dport: 80, fragID: 77, flags: 2, ttl: 63, tos: 0x28, src: v4a, dst: v4b,
				stack: L{eth, ip4, tcp}, sizes: []uint32{14, 20, 20}}},
		{"qinq-priority-bits", headerEthernet, cat(ethHdr(1, 2, 0x88a8), vlanTag(0xa000|100, 0x8100), vlanTag(0x6000|200, 0x800),
			ipv4Hdr(v4a, v4b, 17, 0, 64, 1, 0, 28), udpHdr(53, 5353, 8)),
			want{etype: 0x800, proto: 17, sport: 53, dport: 5353, vlan: 200, ttl: 64, fragID: 1, src: v4a, dst: v4b,
				stack: L{eth, dot1, dot1, ip4, udp}, sizes: []uint32{14, 4, 4, 20, 8}}},
		{"mpls-two-labels", headerEthernet, cat(ethHdr(1, 2, 0x8847), mplsLabel(1000, false, 9), mplsLabel(2000, true, 8), ipv4TCP),
			want{etype: 0x800, proto: 6, sport: 1234, dport: 80, fragID: 77, flags: 2, ttl: 63, tos: 0x28, src: v4a, dst: v4b,
				mplsLabels: []uint32{1000, 2000}, stack: L{eth, mpls, ip4, tcp}, sizes: []uint32{14, 8, 20, 20}}},
		{"ipv4-options", headerEthernet, cat(ethHdr(1, 2, 0x800),
			func() []byte { h := ipv4Hdr(v4a, v4b, 17, 0, 64, 5, 0, 40); h[0] = 0x46; return append(h, 1, 1, 1, 0) }(),
			udpHdr(1000, 2000, 8)),
			want{etype: 0x800, proto: 17, sport: 1000, dport: 2000, ttl: 64, fragID: 5, src: v4a, dst: v4b,
				stack: L{eth, ip4, udp}, sizes: []uint32{14, 24, 8}}},
		{"ipv4-later-fragment", headerEthernet, cat(ethHdr(1, 2, 0x800), ipv4Hdr(v4a, v4b, 17, 0, 64, 9, 0x2000|185, 1000), udpHdr(1, 2, 8)),
			want{etype: 0x800, proto: 17, ttl: 64, fragID: 9, fragOff: 185, flags: 1, src: v4a, dst: v4b,
				stack: L{eth, ip4}, sizes: []uint32{14, 20}}},
		{"ipv4-icmp-unreachable", headerEthernet, cat(ethHdr(1, 2, 0x800), ipv4Hdr(v4a, v4b, 1, 0, 64, 3, 0, 56), icmpHdr(3, 3)),
			want{etype: 0x800, proto: 1, icmpType: 3, icmpCode: 3, ttl: 64, fragID: 3, src: v4a, dst: v4b,
				stack: L{eth, ip4, icmp}, sizes: []uint32{14, 20, 8}}},
		{"ipv6-icmpv6-port-unreachable", headerEthernet, cat(ethHdr(1, 2, 0x86dd), ipv6Hdr(v6a, v6b, 58, 0xb8, 255, 0xabcde, 8), icmpHdr(1, 4)),
			want{etype: 0x86dd, proto: 58, icmpType: 1, icmpCode: 4, ttl: 255, tos: 0xb8, label: 0xabcde, src: v6a, dst: v6b,
				stack: L{eth, ip6, icm6}, sizes: []uint32{14, 40, 8}}},
		{"ipv6-hop-by-hop-fragment-tcp", headerEthernet, cat(ethHdr(1, 2, 0x86dd), ipv6Hdr(v6a, v6b, 0, 0, 64, 1, 100),
			[]byte{44, 0, 5, 2, 0, 0, 0, 0},      // hop-by-hop: next fragment, 8 bytes
			[]byte{6, 0, 0, 1, 0, 0, 0x12, 0x34}, // fragment: offset 0, more fragments
			tcpHdr(443, 50000, 0x10)),
			want{etype: 0x86dd, proto: 6, sport: 443, dport: 50000, fragID: 0x1234, flags: 1, ttl: 64, label: 1, src: v6a, dst: v6b,
				stack: L{eth, ip6, frag, tcp}, sizes: []uint32{14, 48, 8, 20}}},
		{"ipv6-later-fragment", headerEthernet, cat(ethHdr(1, 2, 0x86dd), ipv6Hdr(v6a, v6b, 44, 0, 64, 0, 100),
			[]byte{17, 0, 0x05, 0x00, 0, 0, 0, 7}, udpHdr(9, 9, 8)),
			want{etype: 0x86dd, proto: 17, fragID: 7, fragOff: 160, ttl: 64, src: v6a, dst: v6b,
				stack: L{eth, ip6, frag}, sizes: []uint32{14, 40, 8}}},
		{"gre-with-key-inner-ipv4", headerEthernet, cat(ethHdr(1, 2, 0x800), ipv4Hdr(v4a, v4b, 47, 0, 30, 1, 0, 100),
			[]byte{0x20, 0, 0x08, 0x00, 0, 0, 0, 42}, // GRE, key present, IPv4
			ipv4Hdr(v4b, v4a, 6, 0, 64, 2, 0, 60), tcpHdr(5, 6, 2)),
			want{etype: 0x800, proto: 47, ttl: 30, fragID: 1, src: v4a, dst: v4b,
				stack: L{eth, ip4, gre, ip4, tcp}, sizes: []uint32{14, 20, 8, 20, 20}}},
		{"raw-ipv4", headerIPv4, ipv4TCP,
			want{proto: 6, sport: 1234, dport: 80, fragID: 77, flags: 2, ttl: 63, tos: 0x28, src: v4a, dst: v4b,
				stack: L{ip4, tcp}, sizes: []uint32{20, 20}}},
		{"raw-ipv6", headerIPv6, cat(ipv6Hdr(v6a, v6b, 17, 0, 7, 0, 8), udpHdr(123, 123, 8)),
			want{proto: 17, sport: 123, dport: 123, ttl: 7, src: v6a, dst: v6b,
				stack: L{ip6, udp}, sizes: []uint32{40, 8}}},
		{"truncated-ethernet", headerEthernet, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
			want{sizes: []uint32{0}}},
		{"truncated-tcp", headerEthernet, cat(ethHdr(1, 2, 0x800), ipv4Hdr(v4a, v4b, 6, 0, 64, 0, 0, 60), []byte{0, 80, 1, 187}),
			want{etype: 0x800, proto: 6, ttl: 64, src: v4a, dst: v4b, stack: L{eth, ip4}, sizes: []uint32{14, 20, 0}}},
		{"unknown-header-protocol", 2, ipv4TCP, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Config{})
			m := decodeOne(t, d, newDatagram(agent4, 0, 1).flow(1, 1, 2, recHeader(tc.proto, 1000, tc.hdr)).bytes())
			w := tc.want
			got := want{m.Etype, m.Proto, m.SrcPort, m.DstPort, m.VlanId, m.IcmpType, m.IcmpCode, m.FragmentId, m.FragmentOffset,
				m.IpFlags, m.IpTtl, m.IpTos, m.Ipv6FlowLabel, addrOf(m.SrcAddr), addrOf(m.DstAddr), m.MplsLabel, m.LayerStack, m.LayerSize}
			if !slices.Equal(got.mplsLabels, w.mplsLabels) || !slices.Equal(got.stack, w.stack) || !slices.Equal(got.sizes, w.sizes) {
				t.Errorf("labels %v stack %v sizes %v, want %v %v %v", got.mplsLabels, got.stack, got.sizes, w.mplsLabels, w.stack, w.sizes)
			}
			got.mplsLabels, got.stack, got.sizes = nil, nil, nil
			w.mplsLabels, w.stack, w.sizes = nil, nil, nil
			if !reflect.DeepEqual(got, w) {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if m.Bytes != 1000 || m.Packets != 1 {
				t.Errorf("bytes %d packets %d", m.Bytes, m.Packets)
			}
		})
	}
}

func addrOf(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestMPLSLabelLimit(t *testing.T) {
	h := ethHdr(1, 2, 0x8847)
	for i := range 40 {
		h = append(h, mplsLabel(uint32(100+i), false, 1)...)
	}
	d := NewDecoder(Config{MaxLabels: 16})
	m := decodeOne(t, d, newDatagram(agent4, 0, 1).flow(1, 1, 2, recHeader(headerEthernet, 500, h)).bytes())
	if len(m.MplsLabel) != 16 || m.MplsLabel[15] != 115 || len(m.MplsTtl) != 16 {
		t.Errorf("labels %v", m.MplsLabel)
	}
	if !slices.Equal(m.LayerStack, L{eth, mpls}) || !slices.Equal(m.LayerSize, []uint32{14, 64}) {
		t.Errorf("stack %v sizes %v", m.LayerStack, m.LayerSize)
	}
}

func TestSRv6RoutingHeader(t *testing.T) {
	seg1, seg2 := netip.MustParseAddr("2001:db8::1:1"), netip.MustParseAddr("2001:db8::2:2")
	srh := cat([]byte{17, 4, 4, 1, 1, 0, 0, 0}, seg1.AsSlice(), seg2.AsSlice())
	h := cat(ethHdr(1, 2, 0x86dd), ipv6Hdr(v6a, v6b, 43, 0, 64, 0, 48), srh, udpHdr(7, 8, 8))
	d := NewDecoder(Config{})
	for range 2 { // twice: the reused message must not keep the first addresses
		m := decodeOne(t, d, newDatagram(agent4, 0, 1).flow(1, 1, 2, recHeader(headerEthernet, 200, h)).bytes())
		if len(m.Ipv6RoutingHeaderAddresses) != 2 || addrOf(m.Ipv6RoutingHeaderAddresses[1]) != seg2 ||
			m.Ipv6RoutingHeaderSegLeft != 1 || m.Proto != 17 || m.SrcPort != 7 {
			t.Fatalf("%v seg left %d proto %d port %d", m.Ipv6RoutingHeaderAddresses, m.Ipv6RoutingHeaderSegLeft, m.Proto, m.SrcPort)
		}
		if !slices.Equal(m.LayerStack, L{eth, ip6, rout, udp}) {
			t.Errorf("stack %v", m.LayerStack)
		}
	}
}

// TestRecords covers the records that are not sampled headers and the
// interface format bits.
func TestRecords(t *testing.T) {
	nh := netip.MustParseAddr("192.0.2.254")
	sampledIPv4 := record(recSampledIPv4, cat(be(1400, 6), v4a.AsSlice(), v4b.AsSlice(), be(1111, 22, 0x18, 0x10)))
	sampledIPv6 := record(recSampledIPv6, cat(be(1300, 17), v6a.AsSlice(), v6b.AsSlice(), be(53, 4000, 0, 0x20)))
	sampledEth := record(recSampledEthernet, cat(be(1514), []byte{0, 0, 0, 0, 0, 1, 0, 0}, []byte{0, 0, 0, 0, 0, 2, 0, 0}, be(0x800)))
	d := NewDecoder(Config{})
	dg := newDatagram(agent4, 0, 1).
		flow(10, 5, 1<<30|7, sampledIPv4, recRouter(nh, 24, 16)).                                                             // output discarded
		flow(10, 5, 2<<30|3, sampledIPv6, recGateway(nh, 65000, 0, nil)).                                                     // several outputs; no path
		expanded(20, 0, 1<<20, 0, 1<<25, sampledEth, recGateway(nh, 65000, 65001, []uint32{7}, []uint32{1, 2}, []uint32{3})). // wide ifIndexes, 2 segments
		expanded(20, 1, 9, 1, 9).
		bytes()
	flows, err := decodeAll(d, dg)
	if err != nil {
		t.Fatal(err)
	}
	if len(flows) != 4 {
		t.Fatalf("%d flows", len(flows))
	}
	f := flows[0]
	if f.Bytes != 1400 || f.Proto != 6 || addrOf(f.SrcAddr) != v4a || f.SrcPort != 1111 || f.DstPort != 22 || f.TcpFlags != 0x18 ||
		f.IpTos != 0x10 || f.Etype != 0x800 || f.InIf != 5 || f.OutIf != 0 || f.ForwardingStatus != 128 ||
		addrOf(f.NextHop) != nh || f.SrcNet != 24 || f.DstNet != 16 || f.SamplingRate != 10 {
		t.Errorf("sampled IPv4: %v", f)
	}
	f = flows[1]
	if f.Bytes != 1300 || f.Proto != 17 || addrOf(f.DstAddr) != v6b || f.DstPort != 4000 || f.IpTos != 0x20 || f.Etype != 0x86dd ||
		f.OutIf != 0 || f.ForwardingStatus != 0 || f.SrcAs != 65000 || f.DstAs != 65000 || f.NextHopAs != 0 || len(f.AsPath) != 0 {
		t.Errorf("sampled IPv6: %v", f)
	}
	f = flows[2]
	if f.Bytes != 1514 || f.SrcMac != 1 || f.DstMac != 2 || f.Etype != 0x800 || f.InIf != 1<<20 || f.OutIf != 1<<25 ||
		!slices.Equal(f.AsPath, []uint32{1, 2, 3}) || f.NextHopAs != 1 || f.DstAs != 3 || f.SrcAs != 65001 ||
		!slices.Equal(f.BgpCommunities, []uint32{7}) || addrOf(f.BgpNextHop) != nh || f.SamplingRate != 20 {
		t.Errorf("sampled Ethernet / gateway: %v", f)
	}
	f = flows[3]
	if f.InIf != 0 || f.OutIf != 0 || f.ForwardingStatus != 128 || f.Packets != 1 || f.Bytes != 0 {
		t.Errorf("no records, discarded: %v", f)
	}
}
