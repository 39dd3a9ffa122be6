package netflow

import (
	"encoding/binary"
	"fmt"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
	v5MaxCount  = 30 // Cisco's limit; exporters may send more, the packet length decides
)

func (d *Decoder) decodeV5(p decode.Packet, emit decode.Emit) error {
	b := p.Data
	exporter := p.Exporter.Addr().Unmap()
	if len(b) < v5HeaderLen {
		return &decode.Error{Protocol: decode.NetFlowV5, Exporter: p.Exporter, Err: fmt.Errorf("netflow: v5 header of %d bytes: %w", len(b), decode.ErrTruncated)}
	}
	count := int(binary.BigEndian.Uint16(b[2:]))
	uptime := binary.BigEndian.Uint32(b[4:])
	secs := binary.BigEndian.Uint32(b[8:])
	nsecs := binary.BigEndian.Uint32(b[12:])
	seq := binary.BigEndian.Uint32(b[16:])
	engine := uint32(b[20])<<8 | uint32(b[21])
	rate := uint64(binary.BigEndian.Uint16(b[22:]) & 0x3fff)
	base := uint64(secs)*1e9 + uint64(nsecs)

	var err error
	avail := (len(b) - v5HeaderLen) / v5RecordLen
	if count > avail {
		err = &decode.Error{Protocol: decode.NetFlowV5, Exporter: p.Exporter, Domain: engine,
			Err: fmt.Errorf("netflow: v5 header counts %d records, packet holds %d: %w", count, avail, decode.ErrTruncated)}
		count = avail
	}
	d.sequence(seqKey{exporter, 5, engine}, seq, count)

	m := &d.msg
	for i := 0; i < count; i++ {
		r := b[v5HeaderLen+i*v5RecordLen : v5HeaderLen+(i+1)*v5RecordLen]
		resetMsg(m, false, false)
		d.setCommon(m, flowpb.FlowMessage_NETFLOW_V5, exporter, p.ReceivedNs, seq, 0)
		m.SamplingRate = rate
		m.SrcAddr = append(m.SrcAddr[:0], r[0:4]...)
		m.DstAddr = append(m.DstAddr[:0], r[4:8]...)
		m.NextHop = append(m.NextHop[:0], r[8:12]...)
		m.Etype = 0x800
		m.InIf = uint32(binary.BigEndian.Uint16(r[12:]))
		m.OutIf = uint32(binary.BigEndian.Uint16(r[14:]))
		m.Packets = uint64(binary.BigEndian.Uint32(r[16:]))
		m.Bytes = uint64(binary.BigEndian.Uint32(r[20:]))
		first := binary.BigEndian.Uint32(r[24:])
		last := binary.BigEndian.Uint32(r[28:])
		m.TimeFlowStartNs = uptimeTime(base, uptime, first)
		m.TimeFlowEndNs = uptimeTime(base, uptime, last)
		m.SrcPort = uint32(binary.BigEndian.Uint16(r[32:]))
		m.DstPort = uint32(binary.BigEndian.Uint16(r[34:]))
		m.TcpFlags = uint32(r[37])
		m.Proto = uint32(r[38])
		m.IpTos = uint32(r[39])
		m.SrcAs = uint32(binary.BigEndian.Uint16(r[40:]))
		m.DstAs = uint32(binary.BigEndian.Uint16(r[42:]))
		m.SrcNet = uint32(r[44])
		m.DstNet = uint32(r[45])
		emit(m)
	}
	return err
}

// uptimeTime converts a sysUptime-relative timestamp (ms) into Unix ns,
// given the export time base (ns) at uptime now (ms). The difference is
// taken modulo 2^32 so that an uptime wrap between the two is harmless.
func uptimeTime(base uint64, now, at uint32) uint64 {
	diff := int64(int32(now-at)) * 1e6
	if diff > 0 && uint64(diff) > base {
		return 0
	}
	return uint64(int64(base) - diff)
}
