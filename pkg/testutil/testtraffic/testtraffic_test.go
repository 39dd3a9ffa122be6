package testtraffic

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestWriteMatchesGroundTruth decodes the written pcap with gopacket and
// rebuilds per-5-tuple counters, which must equal what Write returned.
func TestWriteMatchesGroundTruth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "default.pcap")
	flows, err := Write(path, Default())
	if err != nil {
		t.Fatal(err)
	}
	type acc struct {
		packets, bytes int
		flags          uint8
		vlan           uint16
	}
	got := map[Key]*acc{}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ns := ci.Timestamp.UnixNano(); ns < last {
			t.Fatalf("packets out of time order at %v", ci.Timestamp)
		} else {
			last = ns
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		// Payloads are filler: an application decoder (DNS on port 53) may
		// reject them, which is fine once the transport layer decoded.
		if el := pkt.ErrorLayer(); el != nil && pkt.TransportLayer() == nil && pkt.Layer(layers.LayerTypeICMPv6) == nil {
			t.Fatalf("bad packet: %v", el.Error())
		}
		var k Key
		var l3 int
		if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			k.Src, _ = netip.AddrFromSlice(ip.SrcIP)
			k.Dst, _ = netip.AddrFromSlice(ip.DstIP)
			k.Proto = uint8(ip.Protocol)
			l3 = int(ip.Length)
		} else if ip, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			k.Src, _ = netip.AddrFromSlice(ip.SrcIP)
			k.Dst, _ = netip.AddrFromSlice(ip.DstIP)
			k.Proto = uint8(ip.NextHeader)
			l3 = int(ip.Length) + 40
		}
		var flags uint8
		switch l4 := pkt.TransportLayer().(type) {
		case *layers.TCP:
			k.SrcPort, k.DstPort = uint16(l4.SrcPort), uint16(l4.DstPort)
			for bit, on := range []bool{l4.FIN, l4.SYN, l4.RST, l4.PSH, l4.ACK} {
				if on {
					flags |= 1 << bit
				}
			}
		case *layers.UDP:
			k.SrcPort, k.DstPort = uint16(l4.SrcPort), uint16(l4.DstPort)
		}
		if icmp, ok := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			k.DstPort = uint16(icmp.TypeCode)
		}
		if icmp, ok := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
			k.DstPort = uint16(icmp.TypeCode)
		}
		// Ethernet pads frames to 60 bytes; the padding is not L3.
		if len(data) != max(60, 14+l3) && len(data) != max(60, 18+l3) {
			t.Errorf("%s: frame of %d bytes for L3 length %d", k, len(data), l3)
		}
		a := got[k]
		if a == nil {
			a = &acc{}
			got[k] = a
		}
		a.packets++
		a.bytes += l3
		a.flags |= flags
		if q, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
			a.vlan = q.VLANIdentifier
		}
	}
	if len(got) != len(flows) {
		t.Errorf("pcap has %d flows, want %d", len(got), len(flows))
	}
	for _, fl := range flows {
		a := got[fl.Key()]
		if a == nil {
			t.Errorf("%s: not in pcap", fl.Key())
			continue
		}
		if a.packets != fl.Packets || uint64(a.bytes) != fl.Bytes || a.flags != fl.TCPFlags || a.vlan != fl.VLAN {
			t.Errorf("%s: pcap has packets=%d bytes=%d flags=%#x vlan=%d, truth packets=%d bytes=%d flags=%#x vlan=%d",
				fl.Key(), a.packets, a.bytes, a.flags, a.vlan, fl.Packets, fl.Bytes, fl.TCPFlags, fl.VLAN)
		}
		if fl.Bytes != uint64(fl.Packets*max(fl.Size, 0)) && fl.Size >= 60 {
			t.Errorf("%s: bytes %d, want packets*size %d", fl.Key(), fl.Bytes, fl.Packets*fl.Size)
		}
	}
}

func TestWriteRejectsBadFlows(t *testing.T) {
	a4, a6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	for name, f := range map[string]Flow{
		"mixed":      {Src: a4, Dst: a6, Proto: ProtoUDP, Packets: 1},
		"no packets": {Src: a4, Dst: a4, Proto: ProtoUDP},
		"icmp on v6": {Src: a6, Dst: a6, Proto: ProtoICMP, Packets: 1},
		"proto":      {Src: a4, Dst: a4, Proto: 47, Packets: 1},
	} {
		if _, err := Write(filepath.Join(t.TempDir(), "x.pcap"), []Flow{f}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
