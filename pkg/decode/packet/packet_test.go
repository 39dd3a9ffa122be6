package packet

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/frames"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

var (
	v4a  = netip.MustParseAddr("198.51.100.10")
	v4b  = netip.MustParseAddr("203.0.113.20")
	v4c  = netip.MustParseAddr("192.0.2.1")
	v4d  = netip.MustParseAddr("192.0.2.2")
	v6a  = netip.MustParseAddr("2001:db8:1::10")
	v6b  = netip.MustParseAddr("2001:db8:2::20")
	seg1 = netip.MustParseAddr("2001:db8:ff::1")
	seg2 = netip.MustParseAddr("2001:db8:ff::2")
)

// MACs: the router's ports, and customer MACs of the usual OUI form
// (first nibble 0: the case that looks like a control word).
const (
	routerA  = 0x2c_6b_f5_00_00_01
	routerB  = 0x2c_6b_f5_00_00_02
	custA    = 0x00_05_85_aa_bb_01
	custB    = 0x00_1b_54_cc_dd_02
	custHigh = 0xa8_d0_e5_00_00_03
)

type L = []flowpb.FlowMessage_LayerStack

const (
	eth  = flowpb.FlowMessage_Ethernet
	dot1 = flowpb.FlowMessage_Dot1Q
	mpls = flowpb.FlowMessage_MPLS
	ip4  = flowpb.FlowMessage_IPv4
	ip6  = flowpb.FlowMessage_IPv6
	rout = flowpb.FlowMessage_IPv6HeaderRouting
	tcp4 = flowpb.FlowMessage_TCP
	udp4 = flowpb.FlowMessage_UDP
	icm  = flowpb.FlowMessage_ICMP
	icm6 = flowpb.FlowMessage_ICMPv6
	gre4 = flowpb.FlowMessage_GRE
	cust = flowpb.FlowMessage_Custom
)

// want is what a frame must give.
type want struct {
	srcMAC, dstMAC                          uint64
	etype, vlan, proto, sport, dport, flags uint32
	ttl, tos, icmpType, icmpCode, flowLabel uint32
	src, dst                                netip.Addr
	labels, ttls                            []uint32
	segments                                []netip.Addr
	segLeft                                 uint32
	stack                                   L
	sizes                                   []uint32
	ipOffset, ipLength                      int
}

func got(m *flowpb.FlowMessage, info Info) want {
	w := want{srcMAC: m.SrcMac, dstMAC: m.DstMac, etype: m.Etype, vlan: m.VlanId, proto: m.Proto, sport: m.SrcPort,
		dport: m.DstPort, flags: m.TcpFlags, ttl: m.IpTtl, tos: m.IpTos, icmpType: m.IcmpType, icmpCode: m.IcmpCode,
		flowLabel: m.Ipv6FlowLabel, src: addr(m.SrcAddr), dst: addr(m.DstAddr), labels: m.MplsLabel, ttls: m.MplsTtl,
		segLeft: m.Ipv6RoutingHeaderSegLeft, stack: m.LayerStack, sizes: m.LayerSize,
		ipOffset: info.IPOffset, ipLength: info.IPLength}
	for _, s := range m.Ipv6RoutingHeaderAddresses {
		w.segments = append(w.segments, addr(s))
	}
	return w
}

func addr(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

// frameCase is one frame kind; pw says how tshark must decode the
// pseudowire (it cannot tell a control word from a MAC by itself).
type frameCase struct {
	name  string
	first Layer
	frame []byte
	want  want
	pw    string // "", "cw" or "nocw"
	// innerBase: the flow's frame is an inner one (a pseudowire), so its
	// MACs are tshark's last, not its first.
	innerBase bool
}

func frameCases() []frameCase {
	cat := frames.Cat
	tcpSYN := func(sp, dp uint16) []byte { return frames.TCP(sp, dp, 0x02) }
	ipv4TCP := cat(frames.IPv4(v4a, v4b, 6, 0x28, 61, 7, 0x4000, 40), tcpSYN(40000, 443))
	ipv4UDP := cat(frames.IPv4(v4c, v4d, 17, 0, 64, 9, 0, 28), frames.UDP(5353, 53, 8))
	key := uint32(77)
	return []frameCase{
		{name: "ethernet-dot1q-ipv4-tcp", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x8100), frames.VLAN(0x6000|120, 0x800), ipv4TCP),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, vlan: 120, proto: 6, sport: 40000, dport: 443, flags: 2,
				ttl: 61, tos: 0x28, src: v4a, dst: v4b, stack: L{eth, dot1, ip4, tcp4}, sizes: []uint32{14, 4, 20, 20},
				ipOffset: 18, ipLength: 40}},
		{name: "qinq-ipv4-udp", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x88a8), frames.VLAN(300, 0x8100), frames.VLAN(0x2000|42, 0x800), ipv4UDP),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, vlan: 42, proto: 17, sport: 5353, dport: 53, ttl: 64,
				src: v4c, dst: v4d, stack: L{eth, dot1, dot1, ip4, udp4}, sizes: []uint32{14, 4, 4, 20, 8}, ipOffset: 22, ipLength: 28}},
		{name: "mpls-stack-ipv4", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x8847), frames.MPLS(16001, 0, false, 254), frames.MPLS(299776, 5, true, 60), ipv4TCP),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, proto: 6, sport: 40000, dport: 443, flags: 2, ttl: 61, tos: 0x28,
				src: v4a, dst: v4b, labels: []uint32{16001, 299776}, ttls: []uint32{254, 60},
				stack: L{eth, mpls, ip4, tcp4}, sizes: []uint32{14, 8, 20, 20}, ipOffset: 22, ipLength: 40}},
		{name: "ethernet-over-mpls-control-word", first: Ethernet, pw: "cw", innerBase: true,
			frame: cat(frames.Ethernet(routerB, routerA, 0x8847), frames.MPLS(24001, 0, false, 255), frames.MPLS(24002, 0, true, 255),
				frames.ControlWord(9), frames.Ethernet(custB, custA, 0x8100), frames.VLAN(10, 0x800), ipv4TCP),
			want: want{srcMAC: custA, dstMAC: custB, etype: 0x800, vlan: 10, proto: 6, sport: 40000, dport: 443, flags: 2, ttl: 61, tos: 0x28,
				src: v4a, dst: v4b, labels: []uint32{24001, 24002}, ttls: []uint32{255, 255},
				stack: L{eth, mpls, eth, dot1, ip4, tcp4}, sizes: []uint32{14, 12, 14, 4, 20, 20}, ipOffset: 44, ipLength: 40}},
		{name: "ethernet-over-mpls-no-control-word-oui-mac", first: Ethernet, pw: "nocw", innerBase: true,
			frame: cat(frames.Ethernet(routerB, routerA, 0x8847), frames.MPLS(24003, 0, true, 64),
				frames.Ethernet(custA, custB, 0x800), ipv4UDP),
			want: want{srcMAC: custB, dstMAC: custA, etype: 0x800, proto: 17, sport: 5353, dport: 53, ttl: 64, src: v4c, dst: v4d,
				labels: []uint32{24003}, ttls: []uint32{64}, stack: L{eth, mpls, eth, ip4, udp4}, sizes: []uint32{14, 4, 14, 20, 8},
				ipOffset: 32, ipLength: 28}},
		{name: "ethernet-over-mpls-no-control-word", first: Ethernet, pw: "nocw", innerBase: true,
			frame: cat(frames.Ethernet(routerB, routerA, 0x8847), frames.MPLS(24004, 0, true, 64),
				frames.Ethernet(custHigh, custA, 0x86dd), frames.IPv6(v6a, v6b, 58, 0, 255, 0, 8), frames.ICMP(128, 0)),
			want: want{srcMAC: custA, dstMAC: custHigh, etype: 0x86dd, proto: 58, ttl: 255, icmpType: 128, src: v6a, dst: v6b,
				labels: []uint32{24004}, ttls: []uint32{64}, stack: L{eth, mpls, eth, ip6, icm6}, sizes: []uint32{14, 4, 14, 40, 8},
				ipOffset: 32, ipLength: 48}},
		{name: "mpls-associated-channel", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x8847), frames.MPLS(24005, 0, true, 1), []byte{0x10, 0, 0, 0x07}, make([]byte, 40)),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x8847, labels: []uint32{24005}, ttls: []uint32{1},
				stack: L{eth, mpls}, sizes: []uint32{14, 4}}},
		{name: "ipv6-hop-by-hop-srv6-tcp", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x86dd), frames.IPv6(v6a, seg2, 0, 0xb8, 63, 0x12345, 8+56+20),
				frames.HopByHop(43), frames.SRH(6, 1, v6b, seg2, seg1), frames.TCP(179, 50000, 0x18)),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x86dd, proto: 6, sport: 179, dport: 50000, flags: 0x18, ttl: 63, tos: 0xb8,
				flowLabel: 0x12345, src: v6a, dst: seg2, segments: []netip.Addr{v6b, seg2, seg1}, segLeft: 1,
				stack: L{eth, ip6, rout, tcp4}, sizes: []uint32{14, 48, 56, 20}, ipOffset: 14, ipLength: 124}},
		{name: "gre-key-inner-ipv4", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x800), frames.IPv4(v4c, v4d, 47, 0, 30, 1, 0, 20+8+40),
				frames.GRE(0x800, &key), ipv4TCP),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, proto: 47, ttl: 30, src: v4c, dst: v4d,
				stack: L{eth, ip4, gre4, ip4, tcp4}, sizes: []uint32{14, 20, 8, 20, 20}, ipOffset: 14, ipLength: 68}},
		{name: "vxlan-inner-ethernet", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x800), frames.IPv4(v4c, v4d, 17, 0, 64, 3, 0, 20+8+8+54),
				frames.UDP(49152, 4789, 8+8+54), frames.VXLAN(5001), frames.Ethernet(custB, custA, 0x800), ipv4TCP),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, proto: 17, sport: 49152, dport: 4789, ttl: 64, src: v4c, dst: v4d,
				stack: L{eth, ip4, udp4, cust, eth, ip4, tcp4}, sizes: []uint32{14, 20, 8, 8, 14, 20, 20}, ipOffset: 14, ipLength: 90}},
		{name: "ipv4-icmp", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x800), frames.IPv4(v4a, v4b, 1, 0, 250, 5, 0, 28), frames.ICMP(3, 4)),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, proto: 1, ttl: 250, icmpType: 3, icmpCode: 4, src: v4a, dst: v4b,
				stack: L{eth, ip4, icm}, sizes: []uint32{14, 20, 8}, ipOffset: 14, ipLength: 28}},
		{name: "truncated-in-tcp", first: Ethernet,
			frame: cat(frames.Ethernet(routerB, routerA, 0x800), frames.IPv4(v4a, v4b, 6, 0, 64, 1, 0, 1500), []byte{0x9c, 0x40, 0x01}),
			want: want{srcMAC: routerA, dstMAC: routerB, etype: 0x800, proto: 6, ttl: 64, src: v4a, dst: v4b,
				stack: L{eth, ip4}, sizes: []uint32{14, 20, 0}, ipOffset: 14, ipLength: 1500}},
		// Sections that start above Ethernet (IPFIX 313 and 316).
		{name: "ip-header-section", first: IPv4, frame: ipv4TCP,
			want: want{proto: 6, sport: 40000, dport: 443, flags: 2, ttl: 61, tos: 0x28, src: v4a, dst: v4b,
				stack: L{ip4, tcp4}, sizes: []uint32{20, 20}, ipLength: 40}},
		{name: "mpls-label-stack-section", first: MPLS, frame: cat(frames.MPLS(100, 0, true, 9), ipv4UDP),
			want: want{etype: 0x800, proto: 17, sport: 5353, dport: 53, ttl: 64, src: v4c, dst: v4d, labels: []uint32{100}, ttls: []uint32{9},
				stack: L{mpls, ip4, udp4}, sizes: []uint32{4, 20, 8}, ipOffset: 4, ipLength: 28}},
	}
}

// TestFrames parses one frame of each kind, twice on one message (as
// decoders reuse it) to catch state leaking from one record to the next.
func TestFrames(t *testing.T) {
	var m flowpb.FlowMessage
	for _, tc := range frameCases() {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				m.ResetVT()
				g := got(&m, Parse(&m, tc.frame, tc.first, 16))
				if !reflect.DeepEqual(normal(g), normal(tc.want)) {
					t.Fatalf("got  %+v\nwant %+v", g, tc.want)
				}
			}
		})
	}
}

// normal makes empty and nil slices equal for DeepEqual.
func normal(w want) want {
	if len(w.labels) == 0 {
		w.labels = nil
	}
	if len(w.ttls) == 0 {
		w.ttls = nil
	}
	if len(w.segments) == 0 {
		w.segments = nil
	}
	return w
}

// TestFramesMatchTshark writes every Ethernet frame of TestFrames to a
// pcap and checks the parser's fields against tshark's decode of it.
func TestFramesMatchTshark(t *testing.T) {
	interop.Require(t, "tshark")
	var cases []frameCase
	var fs [][]byte
	args := []string{}
	for _, tc := range frameCases() {
		if tc.first != Ethernet {
			continue
		}
		cases = append(cases, tc)
		fs = append(fs, tc.frame)
		if tc.pw != "" {
			label := tc.want.labels[len(tc.want.labels)-1]
			args = append(args, "-d", "mpls.label=="+strconv.Itoa(int(label))+",pweth"+tc.pw)
		}
	}
	path := filepath.Join(t.TempDir(), "frames.pcap")
	if err := frames.WritePcap(path, fs, nil); err != nil {
		t.Fatal(err)
	}
	fields := []string{"eth.src", "eth.dst", "vlan.id", "mpls.label", "mpls.ttl", "ip.src", "ip.dst", "ip.proto", "ip.ttl",
		"ipv6.src", "ipv6.dst", "ipv6.nxt", "ipv6.flow", "ipv6.routing.segleft", "ipv6.routing.srh.addr",
		"tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "icmp.type", "icmp.code", "icmpv6.type", "vxlan.vni"}
	rows := tshark(t, path, args, fields)
	if len(rows) != len(cases) {
		t.Fatalf("tshark decoded %d frames, want %d", len(rows), len(cases))
	}
	for i, tc := range cases {
		r, w := rows[i], tc.want
		check := func(field, got string) {
			t.Helper()
			if got != r[field] {
				t.Errorf("%s: %s %q, tshark %q", tc.name, field, got, r[field])
			}
		}
		macIdx := 0
		if tc.innerBase {
			macIdx = -1
		}
		check("eth.src", pick(r["eth.src"], macIdx, macText(w.srcMAC)))
		check("eth.dst", pick(r["eth.dst"], macIdx, macText(w.dstMAC)))
		check("mpls.label", joinU(w.labels))
		check("mpls.ttl", joinU(w.ttls))
		if w.vlan != 0 {
			check("vlan.id", pick(r["vlan.id"], -1, strconv.Itoa(int(w.vlan))))
		}
		if w.src.Is4() {
			check("ip.src", pick(r["ip.src"], 0, w.src.String()))
			check("ip.dst", pick(r["ip.dst"], 0, w.dst.String()))
			check("ip.proto", pick(r["ip.proto"], 0, strconv.Itoa(int(w.proto))))
			check("ip.ttl", pick(r["ip.ttl"], 0, strconv.Itoa(int(w.ttl))))
		}
		if w.src.Is6() {
			check("ipv6.src", w.src.String())
			check("ipv6.dst", w.dst.String())
			check("ipv6.flow", fmt.Sprintf("0x%06x", w.flowLabel))
		}
		if len(w.segments) > 0 {
			var segs []string
			for _, s := range w.segments {
				segs = append(segs, s.String())
			}
			check("ipv6.routing.srh.addr", strings.Join(segs, ","))
			check("ipv6.routing.segleft", strconv.Itoa(int(w.segLeft)))
		}
		switch {
		case !slices.Contains(w.stack, tcp4) && !slices.Contains(w.stack, udp4) && !slices.Contains(w.stack, icm) && !slices.Contains(w.stack, icm6):
			// cut before the transport header: neither has ports
		case w.proto == 6:
			check("tcp.srcport", strconv.Itoa(int(w.sport)))
			check("tcp.dstport", strconv.Itoa(int(w.dport)))
		case w.proto == 17:
			check("udp.srcport", pick(r["udp.srcport"], 0, strconv.Itoa(int(w.sport))))
			check("udp.dstport", pick(r["udp.dstport"], 0, strconv.Itoa(int(w.dport))))
		case w.proto == 1:
			check("icmp.type", strconv.Itoa(int(w.icmpType)))
			check("icmp.code", strconv.Itoa(int(w.icmpCode)))
		case w.proto == 58:
			check("icmpv6.type", strconv.Itoa(int(w.icmpType)))
		}
		if slices.Contains(w.stack, cust) && r["vxlan.vni"] == "" {
			t.Errorf("%s: tshark sees no VXLAN", tc.name)
		}
	}
}

// pick returns the i-th (-1: last) of tshark's comma-separated values when
// there are several, else all of it; it returns want when tshark has it
// nowhere, so that a mismatch shows tshark's whole list.
func pick(list string, i int, want string) string {
	vs := strings.Split(list, ",")
	if len(vs) < 2 {
		return want
	}
	if i < 0 {
		i = len(vs) - 1
	}
	if vs[i] == want {
		return list
	}
	return want + " (at " + strconv.Itoa(i) + ")"
}

func macText(v uint64) string {
	b := make([]string, 6)
	for i := range 6 {
		b[i] = strconv.FormatUint(v>>(40-8*i)&0xff|0x100, 16)[1:]
	}
	return strings.Join(b, ":")
}

func joinU(v []uint32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, ",")
}

// tshark decodes path with extra args and returns one map per frame.
func tshark(t *testing.T, path string, args, fields []string) []map[string]string {
	t.Helper()
	a := append([]string{"-r", path, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}, args...)
	for _, f := range fields {
		a = append(a, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), interop.ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, interop.Require(t, "tshark"), a...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(a, " "), err, stderr.String())
	}
	out := string(raw)
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		vs := strings.Split(line, "\t")
		r := map[string]string{}
		for i, f := range fields {
			if i < len(vs) {
				r[f] = vs[i]
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// TestParseAllocs: once the message's slices have grown, parsing a frame
// allocates nothing.
func TestParseAllocs(t *testing.T) {
	var m flowpb.FlowMessage
	for _, tc := range frameCases() {
		Parse(&m, tc.frame, tc.first, 16)
		n := testing.AllocsPerRun(50, func() {
			m.LayerStack, m.LayerSize = m.LayerStack[:0], m.LayerSize[:0]
			m.Ipv6RoutingHeaderAddresses = m.Ipv6RoutingHeaderAddresses[:0]
			Parse(&m, tc.frame, tc.first, 16)
		})
		if n != 0 {
			t.Errorf("%s: %v allocations", tc.name, n)
		}
	}
}

// FuzzParse feeds arbitrary sections from each first layer. Invariants: no
// panic; layer_stack never longer than layer_size; at most 16 labels; the
// reported IP packet starts inside the section; addresses are 4 or 16
// bytes.
func FuzzParse(f *testing.F) {
	for _, tc := range frameCases() {
		f.Add(uint8(tc.first), tc.frame)
	}
	f.Fuzz(func(t *testing.T, first uint8, b []byte) {
		var m flowpb.FlowMessage
		l := []Layer{Ethernet, MPLS, IPv4, IPv6}[int(first)%4]
		info := Parse(&m, b, l, 16)
		if len(m.LayerStack) > len(m.LayerSize) || len(m.LayerSize) > maxLayers {
			t.Fatalf("stack %v sizes %v", m.LayerStack, m.LayerSize)
		}
		if len(m.MplsLabel) > 16 || len(m.MplsLabel) != len(m.MplsTtl) {
			t.Fatalf("labels %v ttls %v", m.MplsLabel, m.MplsTtl)
		}
		if info.IPLength < 0 || info.IPOffset < 0 || info.IPOffset >= max(len(b), 1) {
			t.Fatalf("info %+v for %d bytes", info, len(b))
		}
		for _, a := range [][]byte{m.SrcAddr, m.DstAddr} {
			if len(a) != 0 && len(a) != 4 && len(a) != 16 {
				t.Fatalf("address of %d bytes", len(a))
			}
		}
	})
}
