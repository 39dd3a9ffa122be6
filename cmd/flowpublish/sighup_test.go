package main

import (
	"bytes"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// TestSIGHUPUnderLoad streams records into the built binary while SIGHUP
// comes between every chunk: flowpublish has nothing to reload, so it logs
// each one and goes on (before, SIGHUP killed it with nothing flushed).
// At end of input it exits 0 with every record read acknowledged, and
// Kafka holds each record once: records in = records produced.
func TestSIGHUPUnderLoad(t *testing.T) {
	bin := tools.Build(t, ".")
	c := cluster(t)
	addr := c.ListenAddrs()[0]
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--brokers", addr, "--topic", "flows")
	cmd.Stdin = r
	logs := &tools.Output{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer cmd.Process.Kill()
	const chunks, perChunk = 15, 2000
	for i := range chunks {
		if _, err := w.Write(stream(t, i*perChunk, (i+1)*perChunk)); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.WaitFor(t, "SIGHUP: nothing to reload", i+1, 20*time.Second)
	}
	w.Close()
	if code := tools.WaitExit(t, cmd, 60*time.Second); code != 0 {
		t.Fatalf("exit %d at end of input\n%s", code, logs.String())
	}
	m := doneLine.FindStringSubmatch(logs.String())
	if m == nil || m[1] != "30000" || m[2] != "30000" || m[3] != "0" {
		t.Fatalf("summary %q\n%s", m, logs.String())
	}
	checkFlows(t, decodeSorted(t, bytes.Join(consume(t, chunks*perChunk, "flows", kgo.SeedBrokers(addr)), nil)), chunks*perChunk)
}
