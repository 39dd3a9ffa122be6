package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// sumSeries adds up every sample of a metric family in an exposition.
func sumSeries(exposition, family string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if strings.HasPrefix(line, family+"{") {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += v
		}
	}
	return sum
}

// TestSIGHUPUnderLoad counts records produced in batches while SIGHUP
// comes between every batch. Each SIGHUP reloads --asn-db; the database is
// replaced halfway (renamed as an update does), and an AS first seen after
// that carries its new name. The process lives through every SIGHUP, and
// the counters hold every record produced: records in = records counted.
func TestSIGHUPUnderLoad(t *testing.T) {
	bin := tools.Build(t, ".")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nets := map[string]uint32{"8.8.8.0/24": 15169, "1.1.1.0/24": 13335}
	asnDB := filepath.Join(t.TempDir(), "asn.mmdb")
	writeASNDBAt(t, asnDB, nets, "name")
	metricsAddr := freePort(t)
	cmd := exec.Command(bin, "--broker", c.ListenAddrs()[0], "--topic", topic, "--asn", "64500", "--group", "sighup",
		"--start-offset", "earliest", "--metrics-listen", metricsAddr, "--asn-db", asnDB)
	logs := &tools.Output{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs.WaitFor(t, "msg=consuming", 1, 20*time.Second)

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const batches, perBatch = 12, 500
	var wantBytes uint64
	for b := range batches {
		src := uint32(15169)
		if b >= batches/2 {
			src = 13335 // first seen after the database changed
		}
		recs := make([]*kgo.Record, perBatch)
		for i := range recs {
			bytes, rate := uint64(100+i), uint64(1+i%3)
			recs[i] = &kgo.Record{Value: flowValue(src, 64500, bytes, 1, rate, "192.0.2.1")}
			wantBytes += bytes * rate
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if b == batches/2-1 {
			next := asnDB + ".new"
			writeASNDBAt(t, next, nets, "renamed")
			if err := os.Rename(next, asnDB); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.WaitFor(t, "msg=\"reloaded AS names\"", b+1, 20*time.Second)
	}
	var expo string
	waitFor(t, 30*time.Second, "every record counted", func() bool {
		expo, _ = scrape(metricsAddr)
		return sumSeries(expo, "flow_receive_flows_total") == batches*perBatch
	})
	if got := sumSeries(expo, "flow_receive_bytes_total"); got != float64(wantBytes) {
		t.Errorf("received bytes %v, want %d", got, wantBytes)
	}
	for _, series := range []string{`source_as="15169",source_as_name="AS15169 name"`, `source_as="13335",source_as_name="AS13335 renamed"`} {
		if !strings.Contains(expo, series) {
			t.Errorf("no series with %s", series)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tools.WaitExit(t, cmd, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, logs.String())
	}
}
