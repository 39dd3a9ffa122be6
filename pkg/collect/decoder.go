package collect

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// batchBytes is the encoded output a decoder gathers before handing it to
// the writer; batches have batchSlack bytes more room, so that the records
// of one more datagram fit without growing it.
const (
	batchBytes = 64 << 10
	batchSlack = 16 << 10
)

// maxGrowth bounds the output bytes per datagram byte that direct
// decoding writes in practice (IPFIX about 2.5, v5 2.3, sFlow under 1): a
// batch with less room than that for a datagram is sent first.
const maxGrowth = 4

// outBatch is encoded output on its way to the writer.
type outBatch struct{ data []byte }

// Sniff tells the decoder family and protocol of a datagram from its
// version field.
func Sniff(b []byte) (Family, decode.Protocol) {
	if len(b) >= 2 {
		switch binary.BigEndian.Uint16(b) {
		case 5:
			return FamilyNetFlow, decode.NetFlowV5
		case 9:
			return FamilyNetFlow, decode.NetFlowV9
		case 10:
			return FamilyNetFlow, decode.IPFIX
		}
	}
	if len(b) >= 4 && binary.BigEndian.Uint32(b) == 5 {
		return FamilySFlow, decode.SFlowV5
	}
	return FamilyAuto, decode.ProtocolUnknown
}

// decoder turns datagrams into encoded output batches. It owns one set of
// Decoders (they are not safe for concurrent use), the metric handles of
// the exporters it meets and the batch it fills, so exactly one goroutine
// uses it: a socket's reader (Workers 0), a worker, or ReadPcap.
type decoder struct {
	c        *Collector
	decoders Decoders
	metrics  *workerMetrics
	emit     decode.Emit // bound once: no closure per packet

	batch    *outBatch
	lastSend time.Time
	recvNs   uint64
	nRecords int
}

func (c *Collector) newDecoder(id int) (*decoder, error) {
	wm := &workerMetrics{m: c.metrics, byExp: map[exporterKey]*exporterCounters{}, gaps: map[gapKey]prometheus.Counter{}, gapCount: &c.gapCount, gapMu: &c.gapMu}
	ds, err := c.cfg.NewDecoders(id, wm)
	if err != nil {
		return nil, fmt.Errorf("collect: decoder %d: %w", id, err)
	}
	d := &decoder{c: c, decoders: ds, metrics: wm}
	d.emit = d.onRecord
	return d, nil
}

// tally counts a run of packets for the summary totals.
type tally struct{ packets, records, errors uint64 }

// decode decodes one datagram into the current batch.
func (d *decoder) decode(data []byte, from netip.AddrPort, receivedNs uint64, want Family, t *tally) {
	c := d.c
	family, proto := Sniff(data)
	var dec decode.Decoder
	switch {
	case family == FamilyAuto:
		c.metrics.drop[DropUnknown].Inc()
		c.logDrop(DropUnknown, from)
		return
	case want != FamilyAuto && want != family:
		// sFlow sent to a NetFlow port, or the reverse.
		c.metrics.decodeError(proto, "version")
		t.errors++
		return
	case family == FamilyNetFlow:
		dec = d.decoders.NetFlow
	default:
		dec = d.decoders.SFlow
	}
	if dec == nil {
		c.metrics.decodeError(proto, "version")
		t.errors++
		return
	}
	exp := d.metrics.exporter(from.Addr(), proto)
	exp.packets.Inc()
	exp.bytes.Add(float64(len(data)))
	d.recvNs = receivedNs
	d.nRecords = 0
	pkt := decode.Packet{Data: data, Exporter: from, ReceivedNs: receivedNs}
	var err error
	if a, ok := dec.(decode.Appender); ok && c.direct {
		if d.batch == nil {
			d.batch = c.getBatch()
		} else if d.pending() && cap(d.batch.data)-len(d.batch.data) < maxGrowth*len(data) {
			d.send()
			d.batch = c.getBatch()
		}
		d.batch.data, d.nRecords, err = a.AppendRecords(d.batch.data, pkt)
		if len(d.batch.data) >= batchBytes {
			d.send()
		}
	} else {
		err = dec.Decode(pkt, d.emit)
	}
	if d.nRecords > 0 {
		exp.records.Add(float64(d.nRecords))
	}
	t.packets++
	t.records += uint64(d.nRecords)
	if err != nil {
		for _, r := range decode.Reasons(err) {
			c.metrics.decodeError(proto, r)
			t.errors++
		}
		c.logDecodeError(err)
	}
}

// onRecord encodes one flow into the current batch.
func (d *decoder) onRecord(m *flowpb.FlowMessage) {
	if m.TimeReceivedNs == 0 {
		m.TimeReceivedNs = d.recvNs
	}
	if d.batch == nil {
		d.batch = d.c.getBatch()
	}
	d.batch.data = d.c.encode(d.batch.data, m)
	d.nRecords++
	if len(d.batch.data) >= batchBytes {
		d.send()
	}
}

// pending says whether a batch waits to be sent.
func (d *decoder) pending() bool { return d.batch != nil && len(d.batch.data) > 0 }

// due says whether the pending batch has waited for at least wait.
func (d *decoder) due(wait time.Duration) bool { return d.pending() && time.Since(d.lastSend) >= wait }

// send hands the current batch to the writer.
func (d *decoder) send() {
	if !d.pending() {
		return
	}
	d.c.out <- d.batch
	d.batch = nil
	d.lastSend = time.Now()
}

// AppendFrame appends m as one length-delimited protobuf frame (the bin
// stream), in flowpb's single forward pass. Batches keep batchSlack bytes
// of room past batchBytes, so it allocates only for an unusually large
// record.
func AppendFrame(dst []byte, m *flowpb.FlowMessage) []byte {
	return m.AppendDelimited(dst)
}
