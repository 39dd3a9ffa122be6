package export

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/testutil/proc"
)

// benchValues are n records over 1000 AS pairs and 4 samplers, so that after
// the first pass every pair exists.
func benchValues(n int, format Format) [][]byte {
	values := make([][]byte, n)
	for i := range values {
		m := testFlow(64500, uint32(1+i%1000), uint64(64+i%1400), 1, 100, fmt.Sprintf("192.0.2.%d", i%4))
		m.DstAsName = fmt.Sprintf("AS-%d", i%1000)
		switch format {
		case FormatBin:
			values[i] = framed(m)
		case FormatJSON:
			values[i] = jsonFlow(m)
		case FormatPmacct:
			values[i] = fmt.Appendf(nil, `{"event_type":"purge","label":"r%d","as_src":64500,"as_dst":%d,"peer_ip_src":"192.0.2.%d","ip_proto":"tcp","packets":1,"flows":1,"bytes":%d,"sampling_rate":100}`,
				i%4, 1+i%1000, i%4, 64+i%1400)
		}
	}
	return values
}

// BenchmarkConsumeCount is the per-record path of the consumer without the
// network: detect the format, decode, classify and update the pair table
// (one table lock per 1024 records, as a poll does). One op is one record.
func BenchmarkConsumeCount(b *testing.B) {
	for _, f := range []Format{FormatBin, FormatJSON, FormatPmacct} {
		b.Run(f.String(), func(b *testing.B) {
			values := benchValues(10000, f)
			_, c := newTestTable(b, asnConfig())
			countAll(b, c, time.Now(), values...) // every pair exists
			var size int
			for _, v := range values {
				size += len(v)
			}
			b.SetBytes(int64(size / len(values)))
			b.ReportAllocs()
			now := time.Now()
			c.Begin(now)
			i := 0
			start, cpu0 := time.Now(), proc.CPU()
			for b.Loop() {
				if i%1024 == 1023 {
					c.End()
					c.Begin(now)
				}
				if _, _, err := c.Count(values[i%len(values)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			c.End()
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(float64(i)/(proc.CPU()-cpu0).Seconds(), "records/cpu-s")
		})
	}
}

// BenchmarkConsumeCountKfake runs the whole consumer against an in-process
// kfake broker: 200 000 bin records produced beforehand, consumed by a new
// group member per op until all are counted and committed.
func BenchmarkConsumeCountKfake(b *testing.B) {
	const n = 200_000
	c := newCluster(b)
	values := benchValues(n, FormatBin)
	produce(b, c.ListenAddrs(), values)
	b.ReportAllocs()
	iter := 0
	var elapsed, cpu time.Duration
	for b.Loop() {
		iter++
		tbl, err := NewTable(asnConfig())
		if err != nil {
			b.Fatal(err)
		}
		m := NewMetrics(prometheus.NewRegistry())
		cons, err := NewConsumer(ConsumerConfig{
			Topic: testTopic, Group: fmt.Sprintf("bench-%d", iter), Start: StartEarliest,
			Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.FetchMaxWait(50 * time.Millisecond)},
		}, NewCounter(tbl), m)
		if err != nil {
			b.Fatal(err)
		}
		in := &instance{tbl: tbl, m: m}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start, cpu0 := time.Now(), proc.CPU()
		go func() { done <- cons.Run(ctx) }()
		waitFor(b, "all records", func() bool { return in.records() >= n })
		elapsed += time.Since(start)
		cpu += proc.CPU() - cpu0
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*iter)/elapsed.Seconds(), "records/s")
	// The broker runs in this process too: this CPU time includes kfake's.
	b.ReportMetric(float64(n*iter)/cpu.Seconds(), "records/cpu-s")
}

// BenchmarkDistinctPairs offers 1 M distinct AS pairs to a table capped at
// 10 000 and reports the heap in use afterwards, the table still live.
func BenchmarkDistinctPairs(b *testing.B) {
	const offered = 1_000_000
	cfg := asnConfig()
	cfg.AllPairs = true
	values := make([][]byte, 0, 4096)
	for i := range 4096 {
		values = append(values, bare(testFlow(uint32(i), 64500, 100, 1, 1, "192.0.2.1")))
	}
	var heap uint64
	for b.Loop() {
		tbl, c := newTestTable(b, cfg)
		c.Begin(time.Now())
		for i := range offered {
			// Vary the pair through the parsed record: the value bytes are shared.
			if err := c.parser.Parse(values[i%len(values)], &c.rec); err != nil {
				b.Fatal(err)
			}
			c.rec.SrcAS, c.rec.DstAS = uint32(i), uint32(i>>12)
			tbl.addLocked(&c.rec)
		}
		c.End()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = ms.HeapInuse
		if tbl.Len() > cfg.MaxPairs*2+2 {
			b.Fatalf("table grew to %d series", tbl.Len())
		}
		runtime.KeepAlive(tbl)
	}
	b.ReportMetric(float64(heap)/(1<<20), "heap-inuse-MiB")
	b.ReportMetric(offered, "pairs-offered")
}
