package sflow

import (
	"bytes"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	gfsflow "github.com/netsampler/goflow2/v2/decoders/sflow"
	gfproducer "github.com/netsampler/goflow2/v2/producer"
	gfproto "github.com/netsampler/goflow2/v2/producer/proto"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/proc"
)

// BenchmarkDecodeSFlow decodes the benchmark datagram (8 flow samples,
// 128-byte Ethernet/IPv4/TCP headers) and writes each flow as a framed
// message, ours and goflow2 v2.2.6's (sflow decoder + proto producer +
// its delimited marshalling) side by side: compare ns/sample.
func BenchmarkDecodeSFlow(b *testing.B) {
	for _, in := range []struct {
		name string
		pkt  []byte
	}{
		{"bench8", benchDatagram()},
		{"flowgen", flowgenDatagram(b)},
	} {
		b.Run(in.name+"/flowpipe", func(b *testing.B) { benchOurs(b, in.pkt) })
		b.Run(in.name+"/goflow2", func(b *testing.B) { benchGoflow2(b, in.pkt) })
	}
}

// BenchmarkBin compares flowcollect's bin path before (message: Decode,
// then flowpb's AppendDelimited per flow) and after (direct:
// AppendRecords), on the flowgen datagram, filling 64 KiB batches.
func BenchmarkBin(b *testing.B) {
	pkt := flowgenDatagram(b)
	for _, direct := range []bool{false, true} {
		name := map[bool]string{false: "message", true: "direct"}[direct]
		b.Run(name, func(b *testing.B) {
			d := NewDecoder(Config{})
			batch := make([]byte, 0, 68<<10)
			samples := 0
			emit := func(m *flowpb.FlowMessage) { samples++; batch = m.AppendDelimited(batch) }
			p := decode.Packet{Data: pkt, Exporter: testExporter, ReceivedNs: 1}
			b.ReportAllocs()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := proc.ThreadCPU()
			for b.Loop() {
				if direct {
					var n int
					batch, n, _ = d.AppendRecords(batch, p)
					samples += n
				} else {
					_ = d.Decode(p, emit)
				}
				if len(batch) >= 64<<10 {
					batch = batch[:0]
				}
			}
			reportSamples(b, samples, proc.ThreadCPU()-cpu)
		})
	}
}

func flowgenDatagram(tb testing.TB) []byte {
	g, err := flowgen.New(flowgen.Config{Seed: 1, Protocol: flowgen.SFlow, SamplingRate: 1024})
	if err != nil {
		tb.Fatal(err)
	}
	pkt, _ := g.Next()
	return pkt
}

func benchOurs(b *testing.B, pkt []byte) {
	d := NewDecoder(Config{})
	w := framing.NewWriter(io.Discard)
	var werr error
	samples := 0
	emit := func(m *flowpb.FlowMessage) {
		samples++
		if err := w.WriteMessage(m); err != nil {
			werr = err
		}
	}
	p := decode.Packet{Data: pkt, Exporter: testExporter, ReceivedNs: uint64(time.Now().UnixNano())}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := proc.ThreadCPU()
	for b.Loop() {
		if err := d.Decode(p, emit); err != nil {
			b.Fatal(err)
		}
	}
	if werr != nil {
		b.Fatal(werr)
	}
	reportSamples(b, samples, proc.ThreadCPU()-cpu)
}

func benchGoflow2(b *testing.B, pkt []byte) {
	prod := newGoflow2Producer(b)
	args := &gfproducer.ProduceArgs{
		Src: testExporter, SamplerAddress: testExporter.Addr(), TimeReceived: time.Now(),
	}
	var out bytes.Buffer
	samples := 0
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := proc.ThreadCPU()
	for b.Loop() {
		var packet gfsflow.Packet
		if err := gfsflow.DecodeMessageVersion(bytes.NewBuffer(pkt), &packet); err != nil {
			b.Fatal(err)
		}
		msgs, err := prod.Produce(&packet, args)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			buf, err := m.(*gfproto.ProtoProducerMessage).MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			out.Write(buf)
			samples++
		}
		prod.Commit(msgs)
		out.Reset()
	}
	reportSamples(b, samples, proc.ThreadCPU()-cpu)
}

// reportSamples reports per-sample figures from the benchmark thread's CPU
// time, so that they hold on a machine busy with other work (the GC's
// background work on other threads is not counted; allocs/op shows it).
func reportSamples(b *testing.B, samples int, cpu time.Duration) {
	if samples == 0 || cpu <= 0 {
		return
	}
	b.ReportMetric(float64(samples)/cpu.Seconds(), "samples/cpu-s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(samples), "cpu-ns/sample")
}

// newGoflow2Producer builds goflow2's producer as its CLI does without a
// mapping file.
func newGoflow2Producer(tb testing.TB) gfproducer.ProducerInterface {
	var cfg *gfproto.ProducerConfig
	cfgm, err := cfg.Compile()
	if err != nil {
		tb.Fatal(err)
	}
	prod, err := gfproto.CreateProtoProducer(cfgm, gfproto.CreateSamplingSystem)
	if err != nil {
		tb.Fatal(err)
	}
	return prod
}

// TestZeroAllocs pins the hot path at zero allocations per datagram once
// the reused message has grown.
func TestZeroAllocs(t *testing.T) {
	d := NewDecoder(Config{OnCounters: func(*CounterRecord) {}})
	w := framing.NewWriter(io.Discard)
	emit := func(m *flowpb.FlowMessage) { _ = w.WriteMessage(m) }
	for _, pkt := range [][]byte{benchDatagram(), flowgenDatagram(t), v6AgentDatagram()} {
		p := decode.Packet{Data: pkt, Exporter: testExporter, ReceivedNs: 1}
		if err := d.Decode(p, emit); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() { _ = d.Decode(p, emit) }); n != 0 {
			t.Errorf("%v allocs per datagram, want 0", n)
		}
	}
}

func v6AgentDatagram() []byte {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	h := cat(ethHdr(1, 2, 0x86dd), ipv6Hdr(src, dst, 17, 0, 64, 5, 100), udpHdr(53, 5353, 100))
	return newDatagram(netip.MustParseAddr("2001:db8::99"), 1, 7).
		expanded(100, 0, 3, 0, 4, recHeader(headerEthernet, 158, h), recSwitch(10, 20),
			recRouter(netip.MustParseAddr("2001:db8::fe"), 48, 64),
			recGateway(netip.MustParseAddr("2001:db8::fe"), 65000, 65001, []uint32{1, 2}, []uint32{65002, 65003})).
		bytes()
}
