package collect

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// TestDirectBinMatchesMessages: the default bin output, written straight
// by the decoders (decode.Appender), is byte for byte what encoding each
// decoded FlowMessage with AppendFrame writes, for every protocol, with
// workers and without, across batch boundaries.
func TestDirectBinMatchesMessages(t *testing.T) {
	for _, p := range []flowgen.Protocol{flowgen.IPFIX, flowgen.NetFlowV9, flowgen.NetFlowV5, flowgen.SFlow} {
		cfg := flowgen.Config{Protocol: p, Seed: 4, IPv6Ratio: 0.3, SamplingRate: 64, TemplateInterval: 10}
		if p == flowgen.NetFlowV5 {
			cfg.IPv6Ratio = 0
		}
		g, err := flowgen.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var packets [][]byte
		if tp := g.Templates(); tp != nil {
			packets = append(packets, bytes.Clone(tp))
		}
		for range 400 { // several 64 KiB batches
			pkt, _ := g.Next()
			packets = append(packets, bytes.Clone(pkt))
		}
		var pcap bytes.Buffer
		ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := flowgen.WritePcap(&pcap, packets, netip.MustParseAddrPort("192.0.2.7:5000"), netip.MustParseAddrPort("192.0.2.1:2055"), ts); err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{0, 1} {
			t.Run(fmt.Sprintf("%s/workers=%d", p, workers), func(t *testing.T) {
				direct := runPcap(t, pcap.Bytes(), workers, nil)
				message := runPcap(t, pcap.Bytes(), workers, AppendFrame)
				if len(direct) == 0 || !bytes.Equal(direct, message) {
					t.Fatalf("direct output (%d bytes) differs from the message path's (%d bytes)", len(direct), len(message))
				}
			})
		}
	}
}

func runPcap(t *testing.T, pcap []byte, workers int, enc Encoder) []byte {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Workers = workers
	cfg.Encode = enc
	cfg.NewDecoders = NewStandardDecoders(DecoderConfig{}).New
	out := &syncBuffer{}
	c, err := New(cfg, out, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	if _, err := c.ReadPcap(context.Background(), bytes.NewReader(pcap)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
