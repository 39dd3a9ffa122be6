package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// TestSamplingRateSurvivesRestart: a collector learns an exporter's
// sampling rate from options data, is restarted with the same
// --templates-file, and sets that rate on the very first data records,
// the exporter sending neither templates nor options again.
func TestSamplingRateSurvivesRestart(t *testing.T) {
	tf := filepath.Join(t.TempDir(), "templates.json")
	g, err := flowgen.New(flowgen.Config{Seed: 21, Protocol: flowgen.IPFIX, TemplateInterval: -1, SamplingRate: 2048})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := bytes.Clone(g.Templates()) // templates, options template and options data
	var data [][]byte
	for range 5 {
		pkt, _ := g.Next()
		data = append(data, bytes.Clone(pkt))
	}

	p := start(t, "--listen", "ipfix://127.0.0.1:0", "--metrics-listen", "", "--templates-file", tf)
	sendUDP(t, p.addr(t, "ipfix://127.0.0.1:0"), [][]byte{tmpl})
	time.Sleep(100 * time.Millisecond)
	p.stop(t)
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("templates file not written: %v", err)
	}

	p = start(t, "--listen", "ipfix://127.0.0.1:0", "--metrics-listen", "", "--templates-file", tf)
	sendUDP(t, p.addr(t, "ipfix://127.0.0.1:0"), data)
	p.stop(t)
	msgs := readStream(t, p.stdout.Bytes())
	if len(msgs) == 0 {
		t.Fatal("no records after the restart")
	}
	for i, m := range msgs {
		if m.SamplingRate != 2048 {
			t.Fatalf("record %d of %d: sampling_rate %d, want 2048", i, len(msgs), m.SamplingRate)
		}
	}
}
