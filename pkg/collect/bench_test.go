package collect

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/proc"
)

// benchPipeline pushes packets through router -> worker (decode, encode,
// batch) -> writer, as a socket reader would, and reports records/s.
func benchPipeline(b *testing.B, newDecoders func(int, decode.Observer) (Decoders, error), packets [][]byte, workers int, enc Encoder) {
	cfg := DefaultConfig()
	cfg.Encode = enc
	cfg.Workers = workers
	cfg.NewDecoders = newDecoders
	c, err := New(cfg, io.Discard, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	c.Start()
	rt := c.newRouter(true)
	exporters := make([]netip.AddrPort, 16)
	for i := range exporters {
		exporters[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 2055)
	}
	// Warm up: templates, caches, pools.
	for i, p := range packets {
		for _, e := range exporters {
			rt.route(p, e, uint64(i), FamilyAuto, false)
		}
		rt.flush()
	}
	// Wait for the warm-up to be decoded.
	for last := uint64(1); ; {
		time.Sleep(20 * time.Millisecond)
		n := c.Totals().Records
		if n == last {
			break
		}
		last = n
	}
	before := c.Totals().Records
	cpu0 := proc.CPU()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rt.route(packets[i%len(packets)], exporters[i%len(exporters)], uint64(i), FamilyAuto, false)
		if i%64 == 63 {
			rt.flush()
		}
	}
	rt.flush()
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	records := c.Totals().Records - before
	cpu := proc.CPU() - cpu0
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	// CPU time of the whole process (reader, worker, writer) per record:
	// unlike records/s it does not depend on what else the machine runs.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(records), "cpu-ns/record")
	b.ReportMetric(float64(records)/float64(b.N), "records/packet")
}

// BenchmarkPipeline runs the real decoders on flowgen packets: IPFIX (the
// 28-record benchmark packet), NetFlow v9 (28 records), v5 (30) and sFlow
// (8 samples of 128-byte headers), to the bin stream: direct (the
// default, decode.Appender) and through FlowMessages (message).
func BenchmarkPipeline(b *testing.B) {
	for _, p := range []flowgen.Protocol{flowgen.IPFIX, flowgen.NetFlowV9, flowgen.NetFlowV5, flowgen.SFlow} {
		b.Run(p.String(), func(b *testing.B) {
			g, err := flowgen.New(flowgen.Config{Seed: 1, Protocol: p, TemplateInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			var packets [][]byte
			if t := g.Templates(); t != nil {
				packets = append(packets, t)
			}
			for i := 0; i < 64; i++ {
				pkt, _ := g.Next()
				packets = append(packets, bytes.Clone(pkt))
			}
			b.Run("direct", func(b *testing.B) { benchPipeline(b, NewStandardDecoders(DecoderConfig{}).New, packets, 1, nil) })
			b.Run("message", func(b *testing.B) {
				benchPipeline(b, NewStandardDecoders(DecoderConfig{}).New, packets, 1, AppendFrame)
			})
		})
	}
}

func BenchmarkPipelineFakeV5(b *testing.B) {
	load := genV5(b, 1, 64)
	for _, w := range []int{1, 2} {
		b.Run(map[int]string{1: "workers=1", 2: "workers=2"}[w], func(b *testing.B) {
			benchPipeline(b, fakeDecoders, load.packets, w, nil)
		})
	}
}
