package netflow

import (
	"encoding/binary"
	"fmt"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/flowbin"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
	v5MaxCount  = 30 // Cisco's limit; exporters may send more, the packet length decides
)

// v5Header is what the records of a v5 packet share.
type v5Header struct {
	count  int
	uptime uint32
	base   uint64 // export time, Unix ns
	seq    uint32
	rate   uint64
}

// v5Parse reads a v5 header and reports the sequence number; err (with
// count cut to what the packet holds) says the header counts more records
// than the packet carries.
func (d *Decoder) v5Parse(p decode.Packet) (h v5Header, err error) {
	b := p.Data
	if len(b) < v5HeaderLen {
		return h, &decode.Error{Protocol: decode.NetFlowV5, Exporter: p.Exporter, Err: fmt.Errorf("netflow: v5 header of %d bytes: %w", len(b), decode.ErrTruncated)}
	}
	h.count = int(binary.BigEndian.Uint16(b[2:]))
	h.uptime = binary.BigEndian.Uint32(b[4:])
	secs := binary.BigEndian.Uint32(b[8:])
	nsecs := binary.BigEndian.Uint32(b[12:])
	h.seq = binary.BigEndian.Uint32(b[16:])
	engine := uint32(b[20])<<8 | uint32(b[21])
	h.rate = uint64(binary.BigEndian.Uint16(b[22:]) & 0x3fff)
	h.base = uint64(secs)*1e9 + uint64(nsecs)

	avail := (len(b) - v5HeaderLen) / v5RecordLen
	if h.count > avail {
		err = &decode.Error{Protocol: decode.NetFlowV5, Exporter: p.Exporter, Domain: engine,
			Err: fmt.Errorf("netflow: v5 header counts %d records, packet holds %d: %w", h.count, avail, decode.ErrTruncated)}
		h.count = avail
	}
	d.sequence(seqKey{p.Exporter.Addr().Unmap(), 5, engine}, h.seq, h.count)
	return h, err
}

func (d *Decoder) decodeV5(p decode.Packet, emit decode.Emit) error {
	h, err := d.v5Parse(p)
	if h.count == 0 {
		return err
	}
	exporter := p.Exporter.Addr().Unmap()
	b := p.Data
	m := &d.msg
	for i := 0; i < h.count; i++ {
		r := b[v5HeaderLen+i*v5RecordLen : v5HeaderLen+(i+1)*v5RecordLen]
		resetMsg(m, false, false)
		d.setCommon(m, flowpb.FlowMessage_NETFLOW_V5, exporter, p.ReceivedNs, h.seq, 0)
		m.SamplingRate = h.rate
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
		m.TimeFlowStartNs = uptimeTime(h.base, h.uptime, first)
		m.TimeFlowEndNs = uptimeTime(h.base, h.uptime, last)
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

// appendV5 is decodeV5 writing each record straight into the bin stream,
// fields in number order: the bytes AppendDelimited writes for the message
// decodeV5 emits. The layout is fixed, so the fields are written by index
// into a window reserved per record.
func (d *Decoder) appendV5(dst []byte, p decode.Packet) ([]byte, int, error) {
	h, err := d.v5Parse(p)
	if h.count == 0 {
		return dst, 0, err
	}
	k := &d.consts
	k.setV5(&h, p.Exporter.Addr().Unmap(), p.ReceivedNs)
	head, sampler, rcv := &k.chunks[cHead], &k.chunks[cSampler], &k.chunks[cRecv]
	b := dst
	for i := 0; i < h.count; i++ {
		r := (*[v5RecordLen]byte)(p.Data[v5HeaderLen+i*v5RecordLen:])
		var w *flowbin.Window
		var n int
		b, w, n = flowbin.OpenWindow(b)
		n = w.Const(n, head) // type, sampling rate, sequence number
		n = w.Addr1(n, flowbin.KeySrcAddr, r[0:4])
		n = w.Addr1(n, flowbin.KeyDstAddr, r[4:8])
		n = w.Uint1(n, flowbin.KeyBytes, uint64(binary.BigEndian.Uint32(r[20:])))
		n = w.Uint1(n, flowbin.KeyPackets, uint64(binary.BigEndian.Uint32(r[16:])))
		n = w.Const(n, sampler)
		n = w.Addr1(n, flowbin.KeyNextHop, r[8:12])
		n = w.Uint1(n, flowbin.KeySrcAs, uint64(binary.BigEndian.Uint16(r[40:])))
		n = w.Uint1(n, flowbin.KeyDstAs, uint64(binary.BigEndian.Uint16(r[42:])))
		n = w.Uint2(n, flowbin.KeySrcNet, uint64(r[44]))
		n = w.Uint2(n, flowbin.KeyDstNet, uint64(r[45]))
		n = w.Uint2(n, flowbin.KeyInIf, uint64(binary.BigEndian.Uint16(r[12:])))
		n = w.Uint2(n, flowbin.KeyOutIf, uint64(binary.BigEndian.Uint16(r[14:])))
		n = w.Uint2(n, flowbin.KeyProto, uint64(r[38]))
		n = w.Uint2(n, flowbin.KeySrcPort, uint64(binary.BigEndian.Uint16(r[32:])))
		n = w.Uint2(n, flowbin.KeyDstPort, uint64(binary.BigEndian.Uint16(r[34:])))
		n = w.Uint2(n, flowbin.KeyIpTos, uint64(r[39]))
		n = w.Uint2(n, flowbin.KeyTcpFlags, uint64(r[37]))
		n = w.Uint2(n, flowbin.KeyEtype, 0x800)
		n = w.Const(n, rcv)
		n = w.Uint2(n, flowbin.KeyTimeFlowStartNs, uptimeTime(h.base, h.uptime, binary.BigEndian.Uint32(r[24:])))
		n = w.Uint2(n, flowbin.KeyTimeFlowEndNs, uptimeTime(h.base, h.uptime, binary.BigEndian.Uint32(r[28:])))
		b = flowbin.CloseWindow(b, w, n)
	}
	return b, h.count, err
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
