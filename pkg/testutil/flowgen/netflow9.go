package flowgen

import (
	"encoding/binary"
	"time"
)

const v9HeaderLen = 20

// appendV9Header appends a v9 packet header; each packet takes the next
// sequence number (RFC 3954 counts export packets).
func (g *Generator) appendV9Header(b []byte, count int, now time.Time) []byte {
	secs := now.Unix()
	b = binary.BigEndian.AppendUint16(b, 9)
	b = binary.BigEndian.AppendUint16(b, uint16(count))
	b = binary.BigEndian.AppendUint32(b, g.uptime(secs*1000)) // as v5: consistent with unix_secs
	b = binary.BigEndian.AppendUint32(b, uint32(secs))
	b = binary.BigEndian.AppendUint32(b, g.seq)
	b = binary.BigEndian.AppendUint32(b, g.cfg.ObservationDomain)
	g.seq++
	return b
}

// appendV9Templates appends a packet with the IPv4 and IPv6 templates, the
// sampling options template and, when sampling, its options data record.
func (g *Generator) appendV9Templates(b []byte, now time.Time) []byte {
	count := 3
	if g.cfg.SamplingRate > 0 {
		count++
	}
	b = g.appendV9Header(b, count, now)

	set := len(b)
	b = append(b, 0, 0, 0, 0) // template flowset 0, length set below
	b = appendTemplateRecord(b, TemplateIPv4, g.v4Fields)
	b = appendTemplateRecord(b, TemplateIPv6, g.v6Fields)
	putUint16(b, set+2, len(b)-set)

	set = len(b)
	b = append(b, 0, 1, 0, 0) // options template flowset 1
	b = binary.BigEndian.AppendUint16(b, TemplateOptions)
	b = binary.BigEndian.AppendUint16(b, 4) // scope length in bytes: one field
	b = binary.BigEndian.AppendUint16(b, 8) // option length in bytes: two fields
	b = appendFieldSpecs(b, []field{{1, 4, 0}, {ieSamplingInterval, 4, 0}, {ieSamplingAlgorithm, 1, 0}})
	b = pad4(b, set)
	putUint16(b, set+2, len(b)-set)

	if g.cfg.SamplingRate > 0 {
		set = len(b)
		b = binary.BigEndian.AppendUint16(b, TemplateOptions)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint32(b, g.cfg.ObservationDomain) // scope 1 (system): this source ID
		b = binary.BigEndian.AppendUint32(b, g.cfg.SamplingRate)
		b = append(b, 1) // deterministic 1-in-N
		b = pad4(b, set)
		putUint16(b, set+2, len(b)-set)
	}
	return b
}

// appendV9Data appends a data packet: an IPv4 then an IPv6 data flowset.
func (g *Generator) appendV9Data(b []byte, now time.Time) ([]byte, []Flow) {
	flows, n4 := g.fillFlows(now)
	b = g.appendV9Header(b, len(flows), now)
	b = g.appendDataSet(b, TemplateIPv4, flows[:n4])
	b = g.appendDataSet(b, TemplateIPv6, flows[n4:])
	return b, flows
}

// appendDataSet appends a v9 data flowset or IPFIX data set, padded to 4
// bytes; nothing when there are no flows.
func (g *Generator) appendDataSet(b []byte, id uint16, flows []Flow) []byte {
	if len(flows) == 0 {
		return b
	}
	set := len(b)
	b = binary.BigEndian.AppendUint16(b, id)
	b = append(b, 0, 0)
	for i := range flows {
		g.pool.mark(len(b))
		if g.cfg.Protocol == NetFlowV9 {
			b = g.appendV9Record(b, &flows[i])
		} else {
			b = g.appendIPFIXRecord(b, &flows[i], i)
		}
	}
	b = pad4(b, set)
	putUint16(b, set+2, len(b)-set)
	return b
}

// appendV9Record appends the data record of f, field by field in the order
// of v9Fields: a straight run of appends, as a decoder test would write it
// by hand, costs a fraction of a loop over the template.
func (g *Generator) appendV9Record(b []byte, f *Flow) []byte {
	b = appendAddr(b, f.SrcAddr)
	b = appendAddr(b, f.DstAddr)
	b = binary.BigEndian.AppendUint32(b, uint32(f.Bytes))
	b = binary.BigEndian.AppendUint32(b, uint32(f.Packets))
	b = append(b, f.Proto)
	b = binary.BigEndian.AppendUint16(b, f.SrcPort)
	b = binary.BigEndian.AppendUint16(b, f.DstPort)
	b = binary.BigEndian.AppendUint16(b, uint16(f.InIf))
	b = binary.BigEndian.AppendUint16(b, uint16(f.OutIf))
	b = append(b, f.TCPFlags, f.TOS)
	b = appendAddr(b, f.NextHop)
	b = binary.BigEndian.AppendUint32(b, f.SrcAS)
	b = binary.BigEndian.AppendUint32(b, f.DstAS)
	b = append(b, f.SrcMask, f.DstMask)
	if f.SrcAddr.Is6() {
		b = append(b, byte(f.FlowLabel>>16), byte(f.FlowLabel>>8), byte(f.FlowLabel))
	}
	b = binary.BigEndian.AppendUint32(b, g.uptime(f.End.UnixMilli()))
	b = binary.BigEndian.AppendUint32(b, g.uptime(f.Start.UnixMilli()))
	b = append(b, f.SrcMAC[:]...)
	b = append(b, f.DstMAC[:]...)
	return binary.BigEndian.AppendUint16(b, f.VLAN)
}
