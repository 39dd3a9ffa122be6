package flowgen

import (
	"encoding/binary"
	"time"
)

const ipfixHeaderLen = 16

// appendIPFIXHeader appends a message header; its length is set by
// finishIPFIX. The sequence number counts the data records sent before this
// message (RFC 7011, section 3.1).
func (g *Generator) appendIPFIXHeader(b []byte, now time.Time) []byte {
	b = binary.BigEndian.AppendUint16(b, 10)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(now.Unix()))
	b = binary.BigEndian.AppendUint32(b, g.seq)
	return binary.BigEndian.AppendUint32(b, g.cfg.ObservationDomain)
}

func finishIPFIX(b []byte, start int) []byte {
	putUint16(b, start+2, len(b)-start)
	return b
}

// appendIPFIXTemplates appends a message with the IPv4 and IPv6 templates,
// the sampling options template and, when sampling, its options data record.
func (g *Generator) appendIPFIXTemplates(b []byte, now time.Time) []byte {
	start := len(b)
	b = g.appendIPFIXHeader(b, now)

	set := len(b)
	b = append(b, 0, 2, 0, 0) // template set 2, length set below
	b = appendTemplateRecord(b, TemplateIPv4, g.v4Fields)
	b = appendTemplateRecord(b, TemplateIPv6, g.v6Fields)
	putUint16(b, set+2, len(b)-set)

	set = len(b)
	b = append(b, 0, 3, 0, 0) // options template set 3
	b = binary.BigEndian.AppendUint16(b, TemplateOptions)
	b = binary.BigEndian.AppendUint16(b, 4) // field count
	b = binary.BigEndian.AppendUint16(b, 1) // scope field count
	b = appendFieldSpecs(b, []field{{ieObservationDomainID, 4, 0}, {ieSamplingInterval, 4, 0},
		{ieSamplingPacketInterval, 4, 0}, {ieSamplingPacketSpace, 4, 0}})
	b = pad4(b, set)
	putUint16(b, set+2, len(b)-set)

	if r := g.cfg.SamplingRate; r > 0 {
		set = len(b)
		b = binary.BigEndian.AppendUint16(b, TemplateOptions)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint32(b, g.cfg.ObservationDomain)
		// Both the deprecated samplingInterval and its replacement: sample
		// 1 packet, then skip r-1.
		b = binary.BigEndian.AppendUint32(b, r)
		b = binary.BigEndian.AppendUint32(b, 1)
		b = binary.BigEndian.AppendUint32(b, r-1)
		putUint16(b, set+2, len(b)-set)
		g.seq++ // options data records are data records
	}
	return finishIPFIX(b, start)
}

// appendIPFIXData appends a data message: an IPv4 then an IPv6 data set.
func (g *Generator) appendIPFIXData(b []byte, now time.Time) ([]byte, []Flow) {
	flows, n4 := g.fillFlows(now)
	start := len(b)
	b = g.appendIPFIXHeader(b, now)
	b = g.appendDataSet(b, TemplateIPv4, flows[:n4])
	b = g.appendDataSet(b, TemplateIPv6, flows[n4:])
	g.seq += uint32(len(flows))
	return finishIPFIX(b, start), flows
}

// appendIPFIXRecord appends the data record of f (number i in its set),
// field by field in the order of ipfixFields, as appendV9Record does.
func (g *Generator) appendIPFIXRecord(b []byte, f *Flow, i int) []byte {
	b = appendAddr(b, f.SrcAddr)
	b = appendAddr(b, f.DstAddr)
	b = binary.BigEndian.AppendUint64(b, f.Bytes)
	b = binary.BigEndian.AppendUint32(b, uint32(f.Packets))
	b = append(b, f.Proto)
	b = binary.BigEndian.AppendUint16(b, f.SrcPort)
	b = binary.BigEndian.AppendUint16(b, f.DstPort)
	b = binary.BigEndian.AppendUint32(b, f.InIf)
	b = binary.BigEndian.AppendUint32(b, f.OutIf)
	b = append(b, 0, f.TCPFlags, f.TOS)
	b = binary.BigEndian.AppendUint32(b, f.SrcAS)
	b = binary.BigEndian.AppendUint32(b, f.DstAS)
	b = append(b, f.SrcMask, f.DstMask)
	b = appendAddr(b, f.NextHop)
	if f.SrcAddr.Is6() {
		b = binary.BigEndian.AppendUint32(b, f.FlowLabel)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(f.Start.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(f.End.UnixMilli()))
	b = append(b, f.SrcMAC[:]...)
	b = append(b, f.DstMAC[:]...)
	b = binary.BigEndian.AppendUint16(b, f.VLAN)
	if g.cfg.VariableLengthIE {
		b = appendInterfaceName(b, f.InIf, i%2 == 1)
	}
	if g.cfg.EnterpriseIE {
		b = binary.BigEndian.AppendUint32(b, f.InIf<<16|f.OutIf)
	}
	return b
}
