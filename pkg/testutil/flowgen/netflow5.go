package flowgen

import (
	"encoding/binary"
	"time"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
)

// appendV5 appends a NetFlow v5 packet of RecordsPerPacket IPv4 flows.
func (g *Generator) appendV5(b []byte, now time.Time) ([]byte, []Flow) {
	flows, _ := g.fillFlows(now)
	for i := range flows {
		f := &flows[i]
		f.SrcMAC, f.DstMAC, f.VLAN = [6]byte{}, [6]byte{}, 0 // v5 has no room for them
	}
	b = g.appendV5Header(b, len(flows), now)
	for i := range flows {
		f := &flows[i]
		g.pool.mark(len(b))
		b = appendAddr(b, f.SrcAddr)
		b = appendAddr(b, f.DstAddr)
		b = appendAddr(b, f.NextHop)
		b = binary.BigEndian.AppendUint16(b, uint16(f.InIf))
		b = binary.BigEndian.AppendUint16(b, uint16(f.OutIf))
		b = binary.BigEndian.AppendUint32(b, uint32(f.Packets))
		b = binary.BigEndian.AppendUint32(b, uint32(f.Bytes))
		b = binary.BigEndian.AppendUint32(b, g.uptime(f.Start.UnixMilli()))
		b = binary.BigEndian.AppendUint32(b, g.uptime(f.End.UnixMilli()))
		b = binary.BigEndian.AppendUint16(b, f.SrcPort)
		b = binary.BigEndian.AppendUint16(b, f.DstPort)
		b = append(b, 0, f.TCPFlags, f.Proto, f.TOS)
		b = binary.BigEndian.AppendUint16(b, uint16(f.SrcAS))
		b = binary.BigEndian.AppendUint16(b, uint16(f.DstAS))
		b = append(b, f.SrcMask, f.DstMask, 0, 0)
	}
	g.seq += uint32(len(flows)) // flow_sequence counts flows, not packets
	return b, flows
}

// appendV5Header appends the header of a packet of count flows.
func (g *Generator) appendV5Header(b []byte, count int, now time.Time) []byte {
	secs := now.Unix()
	b = binary.BigEndian.AppendUint16(b, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(count))
	// unix_secs without nsecs, and sysUptime at that very second, so that
	// First and Last map to the same times whichever a collector uses.
	b = binary.BigEndian.AppendUint32(b, g.uptime(secs*1000))
	b = binary.BigEndian.AppendUint32(b, uint32(secs))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, g.seq)
	b = append(b, byte(g.cfg.ObservationDomain>>8), byte(g.cfg.ObservationDomain))
	var sampling uint16
	if r := g.cfg.SamplingRate; r > 0 {
		sampling = 1<<14 | uint16(r) // mode 01: deterministic 1-in-N packet interval
	}
	return binary.BigEndian.AppendUint16(b, sampling)
}
