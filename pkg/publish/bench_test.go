package publish

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/spool"
)

// benchFlow is a 200-byte framed record (prefix included), the size
// the benchmarks against a bare producer use.
func benchFlow(i int) *flowpb.FlowMessage {
	m := testFlow(i, 16)
	m.TimeFlowStartNs = m.TimeReceivedNs - 5e9
	m.TimeFlowEndNs = m.TimeReceivedNs - 1e9
	m.SrcMac, m.DstMac = 0x0a0b0c0d0e0f, 0x0f0e0d0c0b0a
	m.NextHop = []byte{192, 0, 2, 254}
	m.BgpNextHop = []byte{192, 0, 2, 253}
	m.SrcNet, m.DstNet = 24, 24
	m.TcpFlags, m.IpTtl, m.ForwardingStatus = 0x18, 64, 64
	m.AsPath = []uint32{64500, 64510, 64520, 64501}
	m.BgpCommunities = []uint32{0xfde80001, 0xfde80002}
	m.DstCountry = "US"
	m.SrcCountry = "FR"
	if n := m.SizeVT(); n < 197 {
		m.SrcCountry += strings.Repeat(" ", 197-n) // value: 2-byte prefix + 198-byte body
	}
	return m
}

func benchStream(b *testing.B, n int) []byte {
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	for i := 0; i < n; i++ {
		if err := w.WriteMessage(benchFlow(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkPublish is stdin -> Kafka: a bin stream of 200-byte records
// read, copied and produced into an in-process kfake with DataDir (the dev
// broker's setup), acks=all and idempotence, no key. One op is one record.
// The broker shares the CPU with the producer here; scripts/bench/bench-publish.sh
// runs them as separate processes next to a bare franz-go producer.
//
// spool=on writes every record to a spool in a temporary directory first
// and produces it from there (--spool-dir), fsynced every second.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct{ key, spool string }{{"none", "off"}, {"none", "on"}, {"sampler_address", "off"}, {"sampler_address", "on"}} {
		key := bc.key
		b.Run("key="+key+"/spool="+bc.spool, func(b *testing.B) {
			c := newCluster(b, kfake.DataDir(b.TempDir()))
			cfg := DefaultConfig()
			if bc.spool == "on" {
				cfg = spoolConfig(b.TempDir())
				cfg.Spool.SegmentBytes = spool.DefaultSegmentBytes
			}
			k, err := ParseKey(key)
			if err != nil {
				b.Fatal(err)
			}
			cfg.Key = k
			p, _ := newPublisher(b, c.ListenAddrs(), cfg)
			stream := benchStream(b, b.N)
			b.SetBytes(int64(len(stream) / b.N))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if err := p.Run(context.Background(), bytes.NewReader(stream)); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			if st := p.Stats(); st.Produced != uint64(b.N) {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}

// BenchmarkBareProducer is the reference: the same stream's frames, split
// in memory before the clock starts, produced as values by a franz-go
// client with the same options.
func BenchmarkBareProducer(b *testing.B) {
	c := newCluster(b, kfake.DataDir(b.TempDir()))
	opts, err := DefaultConfig().ProducerOpts()
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(c.ListenAddrs()...))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	stream := benchStream(b, b.N)
	values := make([][]byte, 0, b.N)
	for len(stream) > 0 {
		size, n := binary.Uvarint(stream)
		end := n + int(size)
		values = append(values, stream[:end:end])
		stream = stream[end:]
	}
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	recs := make([]kgo.Record, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range recs {
		recs[i].Value = values[i]
		cl.Produce(context.Background(), &recs[i], promise)
	}
	if err := cl.Flush(context.Background()); err != nil || failed.Load() > 0 {
		b.Fatal(err, failed.Load())
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}
