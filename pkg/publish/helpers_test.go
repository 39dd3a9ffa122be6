package publish

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

const testTopic = "flows"

// testFlow is record i of a stream from `samplers` exporters: exporter
// i%samplers, with its own sequence number i/samplers, so order per key
// can be checked downstream.
func testFlow(i, samplers int) *flowpb.FlowMessage {
	s := byte(i % samplers)
	return &flowpb.FlowMessage{
		Type:           flowpb.FlowMessage_IPFIX,
		TimeReceivedNs: uint64(1_700_000_000_000_000_000 + i),
		SequenceNum:    uint32(i / samplers),
		SamplingRate:   1000,
		SamplerAddress: []byte{192, 0, 2, s},
		SrcAddr:        []byte{10, 0, byte(i >> 8), byte(i)},
		DstAddr:        []byte{10, 1, byte(i >> 8), byte(i)},
		Bytes:          uint64(1500 + i%100),
		Packets:        uint64(1 + i%10),
		Etype:          0x800,
		Proto:          6,
		SrcPort:        uint32(1024 + i%60000),
		DstPort:        443,
		SrcAs:          64500,
		DstAs:          64501,
		InIf:           1,
		OutIf:          2,
	}
}

// binStream is n test flows as a bin stream.
func binStream(t testing.TB, n, samplers int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	for i := 0; i < n; i++ {
		if err := w.WriteMessage(testFlow(i, samplers)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, testTopic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func newPublisher(t testing.TB, brokers []string, cfg Config, extra ...kgo.Opt) (*Publisher, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	conn := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, extra...)
	p, err := New(cfg, conn, reg, command.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return p, reg
}

// consumeAll reads want records of the topic from the start.
func consumeAll(t testing.TB, brokers []string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d", len(out), want)
		}
		for _, e := range fs.Errors() {
			t.Logf("fetch error: %v", e.Err)
		}
		out = append(out, fs.Records()...)
	}
	// Anything more would be a duplicate.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	out = append(out, cl.PollFetches(short).Records()...)
	return out
}

// decodeValue checks that v is one varint-framed FlowMessage.
func decodeValue(t testing.TB, v []byte) *flowpb.FlowMessage {
	t.Helper()
	size, n := binary.Uvarint(v)
	if n <= 0 || int(size) != len(v)-n {
		t.Fatalf("value is not one framed message: prefix %d, %d bytes", size, len(v))
	}
	m := &flowpb.FlowMessage{}
	if err := m.UnmarshalVT(v[n:]); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkOrder asserts every (sampler, sequence) pair of n records appears
// exactly once, on one partition per sampler, in sequence order.
func checkOrder(t testing.TB, recs []*kgo.Record, n, samplers int) {
	t.Helper()
	if len(recs) != n {
		t.Errorf("got %d records, want %d", len(recs), n)
	}
	next := map[netip.Addr]uint32{}
	part := map[netip.Addr]int32{}
	for _, r := range recs {
		m := decodeValue(t, r.Value)
		a, _ := netip.AddrFromSlice(m.SamplerAddress)
		if p, ok := part[a]; ok && p != r.Partition {
			t.Fatalf("sampler %s on partitions %d and %d", a, p, r.Partition)
		}
		part[a] = r.Partition
		if m.SequenceNum != next[a] {
			t.Fatalf("sampler %s: got sequence %d, want %d (lost, duplicated or reordered)", a, m.SequenceNum, next[a])
		}
		next[a]++
	}
	if len(next) != samplers {
		t.Errorf("saw %d samplers, want %d", len(next), samplers)
	}
}
