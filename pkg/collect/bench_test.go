package collect

import (
	"io"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/decode"
)

// benchPipeline pushes packets through router -> worker (decode, encode,
// batch) -> writer, as a socket reader would, and reports records/s.
func benchPipeline(b *testing.B, newDecoders func(int, decode.Observer) (Decoders, error), packets [][]byte, workers int) {
	cfg := DefaultConfig()
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
	before := c.Totals().Records
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
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(records)/float64(b.N), "records/packet")
}

func BenchmarkPipelineFakeV5(b *testing.B) {
	load := genV5(b, 1, 64)
	for _, w := range []int{1, 2} {
		b.Run(map[int]string{1: "workers=1", 2: "workers=2"}[w], func(b *testing.B) {
			benchPipeline(b, fakeDecoders, load.packets, w)
		})
	}
}
