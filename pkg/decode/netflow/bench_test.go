package netflow

import (
	"io"
	"runtime"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/proc"
)

// benchPackets returns a primed decoder's template packet and data packets.
func benchPackets(b *testing.B, cfg flowgen.Config) (tmpl []byte, data [][]byte, records int) {
	cfg.Seed = 7
	cfg.TemplateInterval = -1
	g, err := flowgen.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tmpl = g.Templates()
	for i := 0; i < 16; i++ {
		pkt, flows := g.Next()
		data = append(data, append([]byte(nil), pkt...))
		records += len(flows)
	}
	return tmpl, data, records
}

// benchDecode decodes packets and writes every record to a bin stream on
// io.Discard: the collector's hot path without the socket.
func benchDecode(b *testing.B, cfg flowgen.Config) {
	tmpl, data, perRound := benchPackets(b, cfg)
	d := NewDecoder(Config{})
	w := framing.NewWriter(io.Discard)
	var werr error
	emit := func(m *flowpb.FlowMessage) {
		if err := w.WriteMessage(m); err != nil {
			werr = err
		}
	}
	if tmpl != nil {
		if err := d.Decode(decode.Packet{Data: tmpl, Exporter: genExporter, ReceivedNs: 1}, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := proc.ThreadCPU()
	records := 0
	for i := 0; i < b.N; i++ {
		pkt := data[i%len(data)]
		if err := d.Decode(decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: 2}, emit); err != nil {
			b.Fatal(err)
		}
		records += perRound / len(data)
	}
	cpu := proc.ThreadCPU() - cpu0
	b.StopTimer()
	if werr != nil {
		b.Fatal(werr)
	}
	// Wall-clock figures suffer when other work shares the cores; the
	// thread's own CPU time gives the cost per record regardless.
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	if cpu > 0 {
		b.ReportMetric(float64(records)/cpu.Seconds(), "records/cpu-s")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(records), "cpu-ns/record")
	}
}

// benchBin fills 64 KiB batches as flowcollect's bin output does: direct,
// with AppendRecords; or through a FlowMessage encoded by flowpb's
// AppendDelimited (the path before AppendRecords). cpu-ns/record is the
// thread's CPU time.
func benchBin(b *testing.B, cfg flowgen.Config, direct bool) {
	tmpl, data, _ := benchPackets(b, cfg)
	d := NewDecoder(Config{})
	batch := make([]byte, 0, 68<<10)
	emit := func(m *flowpb.FlowMessage) { batch = m.AppendDelimited(batch) }
	if tmpl != nil {
		if err := d.Decode(decode.Packet{Data: tmpl, Exporter: genExporter, ReceivedNs: 1}, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ResetTimer()
	cpu0 := proc.ThreadCPU()
	records := 0
	for i := 0; i < b.N; i++ {
		p := decode.Packet{Data: data[i%len(data)], Exporter: genExporter, ReceivedNs: 2}
		n0 := len(batch)
		var err error
		if direct {
			var n int
			batch, n, err = d.AppendRecords(batch, p)
			records += n
		} else {
			err = d.Decode(p, emit)
		}
		if err != nil {
			b.Fatal(err)
		}
		if !direct {
			records += countFrames(batch[n0:])
		}
		if len(batch) >= 64<<10 {
			batch = batch[:0]
		}
	}
	cpu := proc.ThreadCPU() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(records), "cpu-ns/record")
	}
}

// countFrames counts the frames of a bin stream.
func countFrames(b []byte) int {
	n := 0
	for len(b) > 0 {
		f, rest, err := nextFrame(b)
		if err != nil || f == nil && len(rest) == len(b) {
			break
		}
		b = rest
		n++
	}
	return n
}

// BenchmarkBin compares flowcollect's bin path before (message) and
// after (direct) AppendRecords, per protocol.
func BenchmarkBin(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  flowgen.Config
	}{{"ipfix", flowgen.Config{Protocol: flowgen.IPFIX}}, {"v9", flowgen.Config{Protocol: flowgen.NetFlowV9}}, {"v5", flowgen.Config{Protocol: flowgen.NetFlowV5}},
		{"ipfix-varlen", flowgen.Config{Protocol: flowgen.IPFIX, VariableLengthIE: true, EnterpriseIE: true}}} {
		b.Run(c.name+"/message", func(b *testing.B) { benchBin(b, c.cfg, false) })
		b.Run(c.name+"/direct", func(b *testing.B) { benchBin(b, c.cfg, true) })
	}
}

// BenchmarkDecodeIPFIX28 is the reference: flowgen's benchmark
// packet, one IPv4 data set of 28 records.
func BenchmarkDecodeIPFIX28(b *testing.B) { benchDecode(b, flowgen.Config{Protocol: flowgen.IPFIX}) }

func BenchmarkDecodeV9(b *testing.B) { benchDecode(b, flowgen.Config{Protocol: flowgen.NetFlowV9}) }

func BenchmarkDecodeV5(b *testing.B) { benchDecode(b, flowgen.Config{Protocol: flowgen.NetFlowV5}) }

// TestDecodeAllocs keeps the hot path allocation-free.
func TestDecodeAllocs(t *testing.T) {
	for _, p := range []flowgen.Protocol{flowgen.NetFlowV5, flowgen.NetFlowV9, flowgen.IPFIX} {
		g, err := flowgen.New(flowgen.Config{Protocol: p, Seed: 3, TemplateInterval: -1, SamplingRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		d := NewDecoder(Config{})
		w := framing.NewWriter(io.Discard)
		emit := func(m *flowpb.FlowMessage) { _ = w.WriteMessage(m) }
		if tmpl := g.Templates(); tmpl != nil {
			if err := d.Decode(decode.Packet{Data: tmpl, Exporter: genExporter, ReceivedNs: 1}, emit); err != nil {
				t.Fatal(err)
			}
		}
		pkt, _ := g.Next()
		pkt = append([]byte(nil), pkt...)
		_ = d.Decode(decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: 2}, emit) // warm up buffers
		allocs := testing.AllocsPerRun(100, func() {
			_ = d.Decode(decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: 2}, emit)
		})
		if allocs != 0 {
			t.Errorf("protocol %d: %.1f allocations per packet, want 0", p, allocs)
		}
	}
}
