package flowgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// TestWritePcap reads the pcap back with pcapgo and gopacket's decoders.
func TestWritePcap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
	}{
		{"ipv4", netip.MustParseAddrPort("192.0.2.1:50000"), netip.MustParseAddrPort("192.0.2.100:4739")},
		{"ipv6", netip.MustParseAddrPort("[2001:db8::1]:50000"), netip.MustParseAddrPort("[2001:db8::100]:4739")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := generate(t, Config{Protocol: IPFIX, IPv6Ratio: 0.5, VariableLengthIE: true}, 10)
			ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
			var buf bytes.Buffer
			if err := WritePcap(&buf, c.pkts, tc.src, tc.dst, ts); err != nil {
				t.Fatal(err)
			}
			r, err := pcapgo.NewReader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if r.LinkType() != layers.LinkTypeEthernet {
				t.Fatalf("link type %v", r.LinkType())
			}
			for i, want := range c.pkts {
				data, ci, err := r.ReadPacketData()
				if err != nil {
					t.Fatal(err)
				}
				if !ci.Timestamp.Equal(ts.Add(time.Duration(i)*time.Millisecond)) || ci.CaptureLength != len(data) || ci.Length != len(data) {
					t.Fatalf("packet %d: capture info %+v", i, ci)
				}
				p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
				if el := p.ErrorLayer(); el != nil {
					t.Fatalf("packet %d: %v", i, el.Error())
				}
				udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if udp == nil || udp.SrcPort != layers.UDPPort(tc.src.Port()) || udp.DstPort != layers.UDPPort(tc.dst.Port()) ||
					int(udp.Length) != 8+len(want) || !bytes.Equal(udp.Payload, want) {
					t.Fatalf("packet %d: bad UDP layer", i)
				}
				if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
					if int(ip.Length) != 28+len(want) || ip.SrcIP.String() != tc.src.Addr().String() || ip.DstIP.String() != tc.dst.Addr().String() {
						t.Fatalf("packet %d: bad IPv4 layer", i)
					}
					if onesSum(data[14:34]) != 0xffff {
						t.Fatalf("packet %d: bad IPv4 header checksum", i)
					}
				} else {
					ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
					if int(ip.Length) != 8+len(want) || ip.SrcIP.String() != tc.src.Addr().String() || ip.DstIP.String() != tc.dst.Addr().String() {
						t.Fatalf("packet %d: bad IPv6 layer", i)
					}
					pseudo := append(append([]byte{}, data[22:54]...), 0, 0, 0, 0, 0, 0, 0, 17)
					binary.BigEndian.PutUint16(pseudo[34:], uint16(8+len(want)))
					if udp.Checksum == 0 || onesSum(append(pseudo, data[54:]...)) != 0xffff {
						t.Fatalf("packet %d: bad UDP checksum %#x", i, udp.Checksum)
					}
				}
			}
			if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last packet: %v", err)
			}
		})
	}
	err := WritePcap(io.Discard, nil, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2"), time.Time{})
	if err == nil {
		t.Fatal("mixed address families accepted")
	}
}

// onesSum is the folded ones' complement sum of b.
func onesSum(b []byte) uint16 {
	var sum uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		sum += w
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
