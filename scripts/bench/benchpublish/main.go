// Command benchpublish is the reference side of scripts/bench/bench-publish.sh.
//
//	benchpublish gen -n 2000000 -o flows.bin           # 200-byte framed records
//	benchpublish produce -brokers 127.0.0.1:9092 -i flows.bin
//	benchpublish feed -rate 500000 -i flows.bin | flowpublish ...
//
// gen writes a bin stream of synthetic flows, each frame exactly 200 bytes
// with its prefix. feed writes a bin stream file to stdout at a fixed rate
// of records per second (paced by bytes at the file's mean record size), in
// 256 KiB writes as flowenrich makes them. produce is a bare franz-go
// producer: it loads the frames of -i into memory before the clock starts
// (without -i it builds -n of them) and produces each as one record value,
// with flowpublish's default producer settings (acks=all, idempotent, no
// compression, same linger and buffer), then prints "records wall-seconds
// cpu-seconds" for the production alone (loading excluded).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/publish"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchpublish:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: benchpublish gen|produce [flags]")
	}
	fs := flag.NewFlagSet("benchpublish "+args[0], flag.ContinueOnError)
	n := fs.Int("n", 2_000_000, "records")
	out := fs.String("o", "-", "gen: output file")
	brokers := fs.String("brokers", "127.0.0.1:9092", "produce: seed brokers")
	topic := fs.String("topic", "flows", "produce: topic")
	in := fs.String("i", "", "produce, feed: bin stream whose frames to produce or write (default: build -n)")
	rate := fs.Float64("rate", 500_000, "feed: records per second")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "gen":
		return gen(*out, *n)
	case "feed":
		return feed(*in, *rate)
	case "produce":
		values, err := load(*in, *n)
		if err != nil {
			return err
		}
		return produce(strings.Split(*brokers, ","), *topic, values)
	}
	return fmt.Errorf("unknown mode %q", args[0])
}

// Flow is record i: 16 exporters, 200 bytes framed.
func Flow(i int) *flowpb.FlowMessage {
	m := &flowpb.FlowMessage{
		Type:             flowpb.FlowMessage_IPFIX,
		TimeReceivedNs:   uint64(1_700_000_000_000_000_000 + i),
		TimeFlowStartNs:  uint64(1_700_000_000_000_000_000 + i - 5e9),
		TimeFlowEndNs:    uint64(1_700_000_000_000_000_000 + i - 1e9),
		SequenceNum:      uint32(i / 16),
		SamplingRate:     1000,
		SamplerAddress:   []byte{192, 0, 2, byte(i % 16)},
		SrcAddr:          []byte{10, byte(i >> 16), byte(i >> 8), byte(i)},
		DstAddr:          []byte{10, 1, byte(i >> 8), byte(i)},
		NextHop:          []byte{192, 0, 2, 254},
		BgpNextHop:       []byte{192, 0, 2, 253},
		Bytes:            uint64(1500 + i%100),
		Packets:          uint64(1 + i%10),
		Etype:            0x800,
		Proto:            6,
		SrcPort:          uint32(1024 + i%60000),
		DstPort:          443,
		SrcAs:            64500,
		DstAs:            64501,
		InIf:             1,
		OutIf:            2,
		SrcNet:           24,
		DstNet:           24,
		TcpFlags:         0x18,
		IpTtl:            64,
		ForwardingStatus: 64,
		SrcMac:           0x0a0b0c0d0e0f,
		DstMac:           0x0f0e0d0c0b0a,
		AsPath:           []uint32{64500, 64510, 64520, 64501},
		BgpCommunities:   []uint32{0xfde80001, 0xfde80002},
		SrcCountry:       "FR",
		DstCountry:       "US",
	}
	if n := m.SizeVT(); n < 198 {
		m.SrcCountry += strings.Repeat(" ", 198-n) // 2-byte prefix + 198 bytes
	}
	return m
}

func gen(path string, n int) error {
	f := os.Stdout
	if path != "-" {
		var err error
		if f, err = os.Create(path); err != nil {
			return err
		}
		defer f.Close()
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := framing.NewWriter(bw)
	for i := 0; i < n; i++ {
		if err := w.WriteMessage(Flow(i)); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// feed writes the bin stream file at path to stdout at rate records per
// second.
func feed(path string, rate float64) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	records := 0
	for rest := data; len(rest) > 0; records++ {
		size, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < size {
			return errors.New("bad frame in input")
		}
		rest = rest[k+int(size):]
	}
	if records == 0 || rate <= 0 {
		return errors.New("feed: need records and a positive rate")
	}
	nsPerByte := 1e9 * float64(records) / rate / float64(len(data))
	const chunk = 256 << 10 // flowenrich's write size
	start := time.Now()
	for off := 0; off < len(data); {
		end := min(off+chunk, len(data))
		if _, err := os.Stdout.Write(data[off:end]); err != nil {
			return err
		}
		off = end
		time.Sleep(time.Until(start.Add(time.Duration(float64(off) * nsPerByte))))
	}
	return nil
}

// load returns the frames (prefix included) of a bin stream file, or n
// built ones.
func load(path string, n int) ([][]byte, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, err
		}
	} else {
		var buf bytes.Buffer
		w := framing.NewWriter(&buf)
		for i := 0; i < n; i++ {
			if err := w.WriteMessage(Flow(i)); err != nil {
				return nil, err
			}
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		data = buf.Bytes()
	}
	var values [][]byte
	for len(data) > 0 {
		size, k := binary.Uvarint(data)
		if k <= 0 || uint64(len(data)-k) < size {
			return nil, errors.New("bad frame in input")
		}
		end := k + int(size)
		values = append(values, data[:end:end])
		data = data[end:]
	}
	return values, nil
}

func produce(brokers []string, topic string, values [][]byte) error {
	cfg := publish.DefaultConfig()
	cfg.Topic = topic
	opts, err := cfg.ProducerOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(brokers...), kgo.ClientID("benchpublish"))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed atomic.Int64
	promise := func(_ *kgo.Record, err error) {
		if err != nil && failed.Add(1) == 1 {
			fmt.Fprintln(os.Stderr, "benchpublish: produce:", err)
		}
	}
	n := len(values)
	recs := make([]kgo.Record, n)
	ctx := context.Background()
	cpu0 := cpuTime()
	start := time.Now()
	for i := range recs {
		recs[i].Value = values[i]
		cl.Produce(ctx, &recs[i], promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	if failed.Load() > 0 {
		return fmt.Errorf("%d records failed", failed.Load())
	}
	// One line for bench-publish.sh: records wall_seconds cpu_seconds.
	fmt.Printf("%d %.3f %.3f\n", n, el.Seconds(), cpu.Seconds())
	return nil
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
