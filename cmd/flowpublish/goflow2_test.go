package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// TestGoflow2NewlineBinAndMappingKey feeds flowpublish what goflow2 v2.2.6
// itself writes with -format=bin and its default -transport.file.sep="\n"
// (each frame followed by a newline), with goflow2's own mapping.yaml given
// to both: every record arrives in Kafka as one frame without the
// separator, equal to goflow2's, keyed by formatter.key (sampler_address):
// one key for the one exporter.
func TestGoflow2NewlineBinAndMappingKey(t *testing.T) {
	mappingFile := filepath.Join(interop.Goflow2Dir(t), "cmd", "goflow2", "mapping.yaml")
	gf := interop.StartGoflow2(t, "sflow", "-format=bin", "-mapping="+mappingFile)
	g, err := flowgen.New(flowgen.Config{Seed: 3, Protocol: flowgen.SFlow, RecordsPerPacket: 5})
	if err != nil {
		t.Fatal(err)
	}
	var dgs [][]byte
	for range 40 {
		pkt, _ := g.Next()
		dgs = append(dgs, bytes.Clone(pkt))
	}
	const n = 200
	interop.Send(t, gf.Port, dgs)
	countSep := func(b []byte) int { return len(frameBodies(b)) }
	out := gf.WaitRecords(t, countSep, n, 30*time.Second)
	gf.Stop(t)
	theirs := frameBodies(out)

	c := cluster(t)
	addr := c.ListenAddrs()[0]
	code, stderr := runApp(t, bytes.NewReader(out), "--brokers", addr, "--mapping", mappingFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("flows"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for deadline := time.Now().Add(20 * time.Second); len(recs) < n && time.Now().Before(deadline); {
		cl.PollFetches(t.Context()).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	if len(recs) != n || len(theirs) != n {
		t.Fatalf("%d records in Kafka, goflow2 wrote %d, want %d", len(recs), len(theirs), n)
	}
	keys := map[string]bool{}
	seen := map[string]int{}
	for _, b := range theirs {
		seen[string(b)]++
	}
	for i, r := range recs {
		b, end, _, _ := wire.NextFrame(r.Value, 0, len(r.Value))
		if end != len(r.Value) {
			t.Fatalf("record %d: value % x is not one frame", i, r.Value)
		}
		body := [][]byte{b}
		if seen[string(body[0])] == 0 {
			t.Fatalf("record %d: value is none of goflow2's records", i)
		}
		seen[string(body[0])]--
		var m flowpb.FlowMessage
		if err := m.UnmarshalVT(body[0]); err != nil {
			t.Fatal(err)
		}
		keys[string(r.Key)] = true
	}
	if len(keys) != 1 || keys[""] {
		t.Fatalf("keys %v: want one key (formatter.key sampler_address, one exporter)", keys)
	}
}

// frameBodies reads a bin stream with flowpipe's reader (which detects
// goflow2's newline separator).
func frameBodies(b []byte) [][]byte {
	r := framing.NewReader(bytes.NewReader(b), 0)
	var out [][]byte
	for {
		f, err := r.Next()
		if err != nil {
			return out
		}
		out = append(out, bytes.Clone(f))
	}
}
