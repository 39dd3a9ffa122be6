package netflow

import (
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// natEvent values (RFC 8158 section 4.1.1, IANA's natEvent registry).
const (
	natNAT44SessionCreate = 4
	natNAT44SessionDelete = 5
	natNAT64SessionCreate = 6
	natPortBlockAlloc     = 16
	natPortBlockDealloc   = 17
)

var cgnat = netip.MustParseAddrPort("198.51.100.254:4739")

// The templates of RFC 8158 section 4.2 (NAT44 and NAT64 session
// create/delete, port block allocation), with the natInstanceID (463) and
// natPoolId (283) that CGNs add, and an NPTv6 (RFC 6296) session record
// with the IPv6 post-NAT addresses.
var (
	nat44Session = [][3]uint32{{323, 8, 0}, {234, 4, 0}, {8, 4, 0}, {225, 4, 0}, {4, 1, 0}, {7, 2, 0}, {227, 2, 0},
		{12, 4, 0}, {226, 4, 0}, {11, 2, 0}, {228, 2, 0}, {230, 1, 0}, {463, 4, 0}, {283, 4, 0}}
	nat64Session = [][3]uint32{{323, 8, 0}, {234, 4, 0}, {27, 16, 0}, {225, 4, 0}, {4, 1, 0}, {7, 2, 0}, {227, 2, 0},
		{28, 16, 0}, {226, 4, 0}, {11, 2, 0}, {228, 2, 0}, {230, 1, 0}}
	portBlock = [][3]uint32{{323, 8, 0}, {230, 1, 0}, {234, 4, 0}, {8, 4, 0}, {225, 4, 0}, {361, 2, 0}, {362, 2, 0},
		{363, 2, 0}, {364, 2, 0}, {463, 4, 0}, {283, 4, 0}}
	nptv6Session = [][3]uint32{{323, 8, 0}, {27, 16, 0}, {281, 16, 0}, {28, 16, 0}, {282, 16, 0}, {4, 1, 0}, {230, 1, 0}}
)

const natTimeMs = 1709294400123

func addrs(s ...string) []byte {
	var b []byte
	for _, a := range s {
		b = append(b, netip.MustParseAddr(a).AsSlice()...)
	}
	return b
}

func nat44Record(event uint8, srcPort, postPort uint16) []byte {
	b := binary.BigEndian.AppendUint64(nil, natTimeMs)
	b = u32(b, 0)                                         // ingressVRFID
	b = append(b, addrs("100.64.1.10", "203.0.113.5")...) // inside, outside source
	b = append(b, 6)
	b = u16(b, srcPort)
	b = u16(b, postPort)
	b = append(b, addrs("192.0.2.80", "192.0.2.80")...)
	b = u16(b, 443)
	b = u16(b, 443)
	b = append(b, event)
	b = u32(b, 7) // natInstanceID
	return u32(b, 3)
}

func portBlockRecord(event uint8, start, end uint16) []byte {
	b := binary.BigEndian.AppendUint64(nil, natTimeMs)
	b = append(b, event)
	b = u32(b, 0)
	b = append(b, addrs("100.64.1.10", "203.0.113.5")...)
	b = u16(b, start)
	b = u16(b, end)
	b = u16(b, 1)
	b = u16(b, end-start+1)
	b = u32(b, 7)
	return u32(b, 3)
}

func natPackets() [][]byte {
	nat64 := binary.BigEndian.AppendUint64(nil, natTimeMs)
	nat64 = u32(nat64, 0)
	nat64 = append(nat64, addrs("2001:db8:64::10", "203.0.113.6")...)
	nat64 = append(nat64, 17)
	nat64 = u16(u16(nat64, 5353), 61000)
	nat64 = append(nat64, addrs("64:ff9b::c000:235", "192.0.2.53")...)
	nat64 = u16(u16(nat64, 53), 53)
	nat64 = append(nat64, natNAT64SessionCreate)
	npt := binary.BigEndian.AppendUint64(nil, natTimeMs)
	npt = append(npt, addrs("fd00:1::10", "2001:db8:aaaa::10", "2001:db8:bbbb::1", "2001:db8:bbbb::1")...)
	npt = append(npt, 58, natNAT44SessionCreate)
	return [][]byte{
		ipfixMsg(1, 0, set(2, tmpl(256, nat44Session...), tmpl(257, nat64Session...), tmpl(258, portBlock...), tmpl(259, nptv6Session...))),
		ipfixMsg(1, 0, set(256, nat44Record(natNAT44SessionCreate, 40001, 1024), nat44Record(natNAT44SessionDelete, 40001, 1024))),
		ipfixMsg(1, 2, set(257, nat64)),
		ipfixMsg(1, 3, set(258, portBlockRecord(natPortBlockAlloc, 1024, 1535), portBlockRecord(natPortBlockDealloc, 1024, 1535))),
		ipfixMsg(1, 5, set(259, npt)),
	}
}

// TestNATEvents decodes RFC 8158 NAT event records into the post_nat_ and
// nat_ fields.
func TestNATEvents(t *testing.T) {
	msgs, errs := decodeAll(t, NewDecoder(Config{}), cgnat, natPackets()...)
	if errs != nil || len(msgs) != 6 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	for i, ev := range []uint32{natNAT44SessionCreate, natNAT44SessionDelete} {
		m := msgs[i]
		if m.NatEvent != ev || addrText(m.SrcAddr) != "100.64.1.10" || addrText(m.PostNatSrcAddr) != "203.0.113.5" ||
			m.SrcPort != 40001 || m.PostNaptSrcPort != 1024 || addrText(m.PostNatDstAddr) != "192.0.2.80" || m.PostNaptDstPort != 443 ||
			m.NatInstanceId != 7 || m.NatPoolId != 3 || m.Proto != 6 || m.Etype != 0x800 ||
			m.TimeFlowStartNs != natTimeMs*1e6 || m.TimeFlowEndNs != natTimeMs*1e6 {
			t.Errorf("NAT44 session event %d: %v", ev, m)
		}
	}
	if m := msgs[2]; m.NatEvent != natNAT64SessionCreate || addrText(m.SrcAddr) != "2001:db8:64::10" ||
		addrText(m.PostNatSrcAddr) != "203.0.113.6" || m.PostNaptSrcPort != 61000 || addrText(m.PostNatDstAddr) != "192.0.2.53" ||
		m.Etype != 0x86dd {
		t.Errorf("NAT64 session create: %v", m)
	}
	for i, ev := range []uint32{natPortBlockAlloc, natPortBlockDealloc} {
		m := msgs[3+i]
		if m.NatEvent != ev || m.NatPortRangeStart != 1024 || m.NatPortRangeEnd != 1535 || addrText(m.PostNatSrcAddr) != "203.0.113.5" ||
			addrText(m.SrcAddr) != "100.64.1.10" || m.NatInstanceId != 7 || m.NatPoolId != 3 || m.TimeFlowStartNs != natTimeMs*1e6 {
			t.Errorf("port block event %d: %v", ev, m)
		}
	}
	if m := msgs[5]; addrText(m.PostNatSrcAddr) != "2001:db8:aaaa::10" || addrText(m.PostNatDstAddr) != "2001:db8:bbbb::1" {
		t.Errorf("NPTv6: %v", m)
	}
}

// TestNATEventsMatchTshark: tshark reads the same NAT fields from the same
// packets.
func TestNATEventsMatchTshark(t *testing.T) {
	interop.Require(t, "tshark")
	pkts := natPackets()
	path := filepath.Join(t.TempDir(), "nat.pcap")
	if err := interop.WritePcap(path, pkts, 4739); err != nil {
		t.Fatal(err)
	}
	fields := []string{"cflow.nat_event", "cflow.post_natsource_ipv4_address", "cflow.post_naptsource_transport_port",
		"cflow.post_natdestination_ipv4_address", "cflow.post_naptdestination_transport_port", "cflow.port_range_start",
		"cflow.port_range_end", "cflow.nat_instanceid", "cflow.nat_pool_id", "cflow.post_nat_source_ipv6_address",
		"cflow.post_nat_destination_ipv6_address"}
	rows := interop.Tshark(t, path, "cflow", 4739, fields...)
	msgs, errs := decodeAll(t, NewDecoder(Config{}), cgnat, pkts...)
	if errs != nil || len(rows) != len(msgs) {
		t.Fatalf("tshark %d records, ours %d (%v)", len(rows), len(msgs), errs)
	}
	num := func(v uint32) string {
		if v == 0 {
			return ""
		}
		return strconv.Itoa(int(v))
	}
	for i, r := range rows {
		m := msgs[i]
		ours := map[string]string{"cflow.nat_event": num(m.NatEvent), "cflow.post_naptsource_transport_port": num(m.PostNaptSrcPort),
			"cflow.post_naptdestination_transport_port": num(m.PostNaptDstPort), "cflow.port_range_start": num(m.NatPortRangeStart),
			"cflow.port_range_end": num(m.NatPortRangeEnd), "cflow.nat_instanceid": num(m.NatInstanceId), "cflow.nat_pool_id": num(m.NatPoolId)}
		if len(m.PostNatSrcAddr) == 16 {
			ours["cflow.post_nat_source_ipv6_address"] = addrText(m.PostNatSrcAddr)
			ours["cflow.post_nat_destination_ipv6_address"] = addrText(m.PostNatDstAddr)
		} else {
			ours["cflow.post_natsource_ipv4_address"] = addrText(m.PostNatSrcAddr)
			ours["cflow.post_natdestination_ipv4_address"] = addrText(m.PostNatDstAddr)
		}
		for _, f := range fields {
			if ours[f] != r[f] {
				t.Errorf("record %d %s: ours %q, tshark %q", i, f, ours[f], r[f])
			}
		}
	}
}

// TestNATBiflowSplit: an RFC 5103 biflow through a NAT gives two records;
// the reverse one has the post-NAT addresses and ports swapped too.
func TestNATBiflowSplit(t *testing.T) {
	fields := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {225, 4, 0}, {226, 4, 0},
		{227, 2, 0}, {228, 2, 0}, {1, 8, 0}, {2, 8, 0}, {1, 8, reversePEN}, {2, 8, reversePEN}}
	rec := addrs("100.64.1.10", "192.0.2.80")
	rec = u16(u16(rec, 40001), 443)
	rec = append(rec, 6)
	rec = append(rec, addrs("203.0.113.5", "192.0.2.80")...)
	rec = u16(u16(rec, 1024), 443)
	rec = binary.BigEndian.AppendUint64(rec, 1000)
	rec = binary.BigEndian.AppendUint64(rec, 10)
	rec = binary.BigEndian.AppendUint64(rec, 9000)
	rec = binary.BigEndian.AppendUint64(rec, 8)
	msgs, errs := decodeAll(t, NewDecoder(Config{}), cgnat, ipfixMsg(1, 0, set(2, tmpl(300, fields...)), set(300, rec)))
	if errs != nil || len(msgs) != 2 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	f, r := msgs[0], msgs[1]
	if f.BiflowReverse || addrText(f.PostNatSrcAddr) != "203.0.113.5" || f.PostNaptSrcPort != 1024 || f.Bytes != 1000 {
		t.Errorf("forward %v", f)
	}
	if !r.BiflowReverse || addrText(r.SrcAddr) != "192.0.2.80" || addrText(r.DstAddr) != "100.64.1.10" ||
		addrText(r.PostNatDstAddr) != "203.0.113.5" || r.PostNaptDstPort != 1024 || r.PostNaptSrcPort != 443 || r.Bytes != 9000 {
		t.Errorf("reverse %v", r)
	}
}
