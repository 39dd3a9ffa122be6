package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A benchcollect run as it prints it: stdout's table, stderr's progress.
const benchcollectStdout = `Load: flowgen packets over loopback UDP, CPU run at 100000 records/s for 1s; search steps [200000 400000] records/s, 1s each.

| protocol | collector | sent | received | loss | CPU s | CPU s per M records | highest loss-free rate, records/s (">=": the sender was the limit) |
|---|---|---:|---:|---:|---:|---:|---:|
| ipfix | flowcollect | 99680 | 99680 | 0.00% | 0.20 | 2.006 | >= 398586 |
| ipfix | flowcollect --workers 0 | 99792 | 99792 | 0.00% | 0.12 | 1.203 | >= 384006 |
| ipfix | goflow2 | 99736 | 96012 | 3.73% | 0.66 | 6.874 | below [200000 400000] |

- ipfix: goflow2 needs 3.4x the CPU per record of flowcollect
`

const benchcollectStderr = `benchcollect: flowcollect ipfix at 100000 records/s: sent 99680 in 1s, received 99680, 0.20 CPU s
benchcollect: flowcollect --workers 0 ipfix at 200000 records/s: sent 199472 in 1.001s, received 199472, 0.17 CPU s
something else
benchcollect: goflow2 ipfix at 200000 records/s: sent 193592 in 1.001s, received 171276, 1.14 CPU s`

func TestCollectRows(t *testing.T) {
	rows, err := collectRows(benchcollectStdout, "bin", map[string]uint64{"goflow2": 60 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3: %+v", len(rows), rows)
	}
	want := collectRow{Protocol: "ipfix", Collector: "goflow2", Format: "bin", Sent: 99736, Received: 96012,
		LossPct: 3.73, CPU: 0.66, CPUPerM: 6.874, LossFree: "below [200000 400000]", PeakRSS: 60 << 20}
	if rows[2] != want {
		t.Errorf("row 3:\n got %+v\nwant %+v", rows[2], want)
	}
	if rows[1].Collector != "flowcollect --workers 0" || rows[1].LossFree != ">= 384006" || rows[1].PeakRSS != 0 {
		t.Errorf("row 2: %+v", rows[1])
	}
}

func TestCollectRowsErrors(t *testing.T) {
	if _, err := collectRows("no table here\n", "bin", nil); err == nil {
		t.Error("no table: no error")
	}
	// A renamed column is reported, not read as zero.
	renamed := strings.Replace(benchcollectStdout, "| received |", "| got |", 1)
	if _, err := collectRows(renamed, "bin", nil); err == nil || !strings.Contains(err.Error(), "received") {
		t.Errorf("renamed column: err = %v", err)
	}
}

func TestParseStep(t *testing.T) {
	var steps []sendStep
	for _, line := range strings.Split(benchcollectStderr, "\n") {
		if s, ok := parseStep(line); ok {
			steps = append(steps, s)
		}
	}
	if len(steps) != 3 {
		t.Fatalf("got %d steps, want 3", len(steps))
	}
	want := sendStep{Collector: "flowcollect --workers 0", Protocol: "ipfix", Offered: 200000, Sent: 199472,
		Elapsed: 1001 * time.Millisecond, Received: 199472, CPU: 0.17}
	if steps[1] != want {
		t.Errorf("got %+v\nwant %+v", steps[1], want)
	}
	names, points := series(steps)
	if strings.Join(names, ",") != "flowcollect,flowcollect --workers 0,goflow2" {
		t.Errorf("names %q", names)
	}
	if p := points["goflow2"][0]; p.Asked != 200000 || p.Received < 171000 || p.Received > 171200 {
		t.Errorf("goflow2 point %+v", p)
	}
}

func TestParseFlowgenSent(t *testing.T) {
	n, d, err := parseFlowgenSent("flowgen: ipfix: sent 21 packets (560 records, 29120 bytes) to 127.0.0.1:2055 in 1.5ms: 14000 packets/s, 373333 records/s\n")
	if err != nil || n != 560 || d != 1500*time.Microsecond {
		t.Errorf("got %v %v %v", n, d, err)
	}
	if _, _, err := parseFlowgenSent("flowgen: error\n"); err == nil {
		t.Error("no error for a log without the sent line")
	}
}

func TestCollectorName(t *testing.T) {
	for _, c := range []struct {
		exe  string
		args []string
		want string
	}{
		{"/tmp/x/bin/goflow2", []string{"goflow2", "-format=json"}, "goflow2"},
		{"/tmp/x/bin/flowcollect", []string{"flowcollect", "--format", "bin"}, "flowcollect"},
		{"/tmp/x/bin/flowcollect", []string{"flowcollect", "--workers", "0", "--format", "json"}, "flowcollect --workers 0"},
		{"/tmp/x/bin/flowcollect", []string{"flowcollect", "--workers", "4"}, "flowcollect --workers 4"},
		{"/tmp/x/bin/flowcollect", []string{"flowcollect", "--format", "json"}, "flowcollect"},
	} {
		if got := collectorName(c.exe, c.args); got != c.want {
			t.Errorf("collectorName(%q, %q) = %q, want %q", c.exe, c.args, got, c.want)
		}
	}
}

func TestHumanRate(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 950: "950", 50000: "50k", 100000: "100k", 498812: "498.8k", 1200000: "1.2M", 1e6: "1M"} {
		if got := humanRate(v); got != want {
			t.Errorf("humanRate(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestChainVerdict(t *testing.T) {
	lossy := chainRun{Rate: 500000, Sent: 1000, SendElapsed: time.Millisecond, Collected: 900, InBroker: 850, KernelDrops: 3,
		CPU: map[string]float64{"flowgen": 0.0002, "flowcollect": 0.001, "flowenrich": 0.001}}
	ok := chainRun{Rate: 250000, Sent: 500, SendElapsed: 2 * time.Millisecond, Collected: 500, InBroker: 500}
	v := strings.Join(chainVerdict([]chainRun{lossy, ok}, 500000, 2), "\n")
	for _, want := range []string{"missed", "150 of 1000", "100 before flowcollect", "3 by the kernel", "50 after", "**250k records/s**",
		"flowgen 0.10, flowcollect 0.50, flowenrich 0.50", "1.10 in all, of 2", "alone need 1.00"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdict lacks %q:\n%s", want, v)
		}
	}
	v = strings.Join(chainVerdict([]chainRun{ok}, 250000, 2), "\n")
	if !strings.Contains(v, "met") {
		t.Errorf("verdict: %s", v)
	}
}

// TestReport renders every section and draws the plot: a PNG of the
// advertised size, and the tables the README links to.
func TestReport(t *testing.T) {
	rows, err := collectRows(benchcollectStdout, "bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	var steps []sendStep
	for _, line := range strings.Split(benchcollectStderr, "\n") {
		if s, ok := parseStep(line); ok {
			steps = append(steps, s)
		}
	}
	r := &report{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Command: "scripts/bench/bench.sh", Profile: fullProfile(),
		Machine: machine{CPUs: 2, Model: "test CPU", LoadStart: "0.10 0.20 0.30", LoadEnd: "1.0 0.5 0.3"},
		Collect: rows,
		Stages:  []stageResult{{Stage: "flowenrich", Records: 2e6, Wall: 3 * time.Second, Startup: time.Second, StartupCPU: 1, Usage: usage{CPU: 3, PeakRSS: 100 << 20}}},
		Chain:   []chainRun{{Rate: 500000, Sent: 5e6, SendElapsed: 10 * time.Second, Collected: 5e6, InBroker: 5e6, CPU: map[string]float64{"flowcollect": 2}}},
	}
	r.SeriesNames, r.Series = series(steps)
	dir := t.TempDir()
	if err := writePlot(filepath.Join(dir, "plot.png"), "test", r.SeriesNames, r.Series); err != nil {
		t.Fatal(err)
	}
	r.Plot = "plot.png"
	f, err := os.Open(filepath.Join(dir, "plot.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Width != plotWidth || cfg.Height != plotHeight {
		t.Errorf("plot is %dx%d, want %dx%d", cfg.Width, cfg.Height, plotWidth, plotHeight)
	}

	var md bytes.Buffer
	render(&md, r)
	out := md.String()
	for _, want := range []string{
		"2026-01-02 03:04 UTC", "2 CPUs, test CPU", "load average at start 0.10 0.20 0.30",
		"| ipfix | bin | goflow2 | 99736 | 96012 | 3.73% | 6.874 | < 200k | - |",
		"| ipfix | bin | flowcollect --workers 0 | 99792 | 99792 | 0.00% | 1.203 | >= 384k | - |",
		"ipfix, bin output: goflow2 needs 3.4x the CPU of flowcollect, 5.7x the CPU of flowcollect --workers 0",
		"![received vs offered records/s](plot.png)",
		"| 200k | - | 199.3k of 199.3k (100.0%) | 171.1k of 193.4k (88.5%) |",
		"| flowenrich | 2000000 | 1M | 1.000 | 1.00 | 100 |",
		"**Goal of 500k flows/s with no loss: met**",
		"- goflow2 v2.2.6 needs 3.4x the CPU per record of flowcollect with bin output (1 protocol).",
		"- At 200k IPFIX records/s offered: flowcollect --workers 0 received 100.0%, goflow2 received 88.5%.",
		"- Each stage alone runs at 1M records/s or more (the slowest: flowenrich).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "busy") {
		t.Error("an idle machine reported busy")
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--only", "collect,nope"},
		{"--bin", t.TempDir()}, // no binaries there
		{"extra"},
	} {
		var out, errs bytes.Buffer
		if err := run(t.Context(), args, &out, &errs); err == nil {
			t.Errorf("run(%q): no error", args)
		}
		if out.Len() > 0 {
			t.Errorf("run(%q) wrote a report: %s", args, out.String())
		}
	}
}
