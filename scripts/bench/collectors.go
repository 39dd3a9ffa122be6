package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// The collector side by side is scripts/bench/benchcollect's job: bench runs that
// program with flags, reads its Markdown table and its per-run progress
// lines, and adds what it does not measure: the peak RSS of each collector
// process it starts, and a rate series that does not stop at the first loss.

// collectRow is one row of benchcollect's table, plus the peak RSS.
type collectRow struct {
	Protocol, Collector, Format string
	Sent, Received, LossPct     float64
	CPU, CPUPerM                float64
	LossFree                    string // as benchcollect prints it
	PeakRSS                     uint64 // bytes; 0 if not seen
}

// sendStep is one paced run, from a benchcollect progress line.
type sendStep struct {
	Collector, Protocol string
	Offered             float64 // records/s asked for
	Sent                float64
	Elapsed             time.Duration
	Received            float64
	CPU                 float64
}

// SentRate and ReceivedRate are records/s over the sending time.
func (s sendStep) SentRate() float64     { return s.Sent / max(s.Elapsed.Seconds(), 1e-9) }
func (s sendStep) ReceivedRate() float64 { return s.Received / max(s.Elapsed.Seconds(), 1e-9) }

// benchcollect: flowcollect --workers 0 ipfix at 100000 records/s: sent 99792 in 1.001s, received 99792, 0.12 CPU s
var stepLine = regexp.MustCompile(`^benchcollect: (.+) (\S+) at ([0-9.e+]+) records/s: sent (\d+) in (\S+), received ([0-9.e+]+), ([0-9.]+) CPU s`)

func parseStep(line string) (sendStep, bool) {
	m := stepLine.FindStringSubmatch(line)
	if m == nil {
		return sendStep{}, false
	}
	var s sendStep
	var err error
	s.Collector, s.Protocol = m[1], m[2]
	nums := []*float64{&s.Offered, &s.Sent}
	for i, p := range nums {
		if *p, err = strconv.ParseFloat(m[3+i], 64); err != nil {
			return sendStep{}, false
		}
	}
	if s.Elapsed, err = time.ParseDuration(m[5]); err != nil {
		return sendStep{}, false
	}
	if s.Received, err = strconv.ParseFloat(m[6], 64); err != nil {
		return sendStep{}, false
	}
	if s.CPU, err = strconv.ParseFloat(m[7], 64); err != nil {
		return sendStep{}, false
	}
	return s, true
}

// parseTable reads the first Markdown table of text: one map per row,
// keyed by the header cells.
func parseTable(text string) []map[string]string {
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if header != nil {
				break // end of the first table
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == nil:
			header = cells
		case strings.Trim(strings.Join(cells, ""), ":-") == "":
			// the separator row
		default:
			row := map[string]string{}
			for i, h := range header {
				if i < len(cells) {
					row[h] = cells[i]
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// cell finds a column by its header, exactly or else by a unique prefix,
// case-insensitive, so that wording added to a header does not break us.
func cell(row map[string]string, name string) (string, error) {
	name = strings.ToLower(name)
	var found []string
	for k, v := range row {
		lk := strings.ToLower(k)
		if lk == name {
			return v, nil
		}
		if strings.HasPrefix(lk, name) {
			found = append(found, v)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	return "", fmt.Errorf("bench: benchcollect table: no single column %q", name)
}

func cellFloat(row map[string]string, name string) (float64, error) {
	s, err := cell(row, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, fmt.Errorf("bench: benchcollect table: column %q: %w", name, err)
	}
	return v, nil
}

// collectRows turns benchcollect's table into rows.
func collectRows(table, format string, rss map[string]uint64) ([]collectRow, error) {
	var out []collectRow
	for _, row := range parseTable(table) {
		var r collectRow
		var err error
		r.Format = format
		if r.Protocol, err = cell(row, "protocol"); err != nil {
			return nil, err
		}
		if r.Collector, err = cell(row, "collector"); err != nil {
			return nil, err
		}
		for _, f := range []struct {
			name string
			dst  *float64
		}{{"sent", &r.Sent}, {"received", &r.Received}, {"loss", &r.LossPct}, {"cpu s", &r.CPU}, {"cpu s per m", &r.CPUPerM}} {
			if *f.dst, err = cellFloat(row, f.name); err != nil {
				return nil, err
			}
		}
		if r.LossFree, err = cell(row, "highest loss-free"); err != nil {
			return nil, err
		}
		r.PeakRSS = rss[r.Collector]
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: no table in benchcollect's output:\n%s", table)
	}
	return out, nil
}

// benchcollectOutput is what one benchcollect run printed and what bench
// saw of its children.
type benchcollectOutput struct {
	Table string
	Steps []sendStep
	RSS   map[string]uint64 // peak RSS by collector name
}

// runBenchcollect runs the benchcollect binary with args, echoing its
// progress to progress, and watches the peak RSS of the collectors it starts.
func runBenchcollect(ctx context.Context, bin string, args []string, progress io.Writer) (benchcollectOutput, error) {
	var out benchcollectOutput
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout = &stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return out, err
	}
	if err := cmd.Start(); err != nil {
		return out, err
	}
	w := &rssWatch{parent: cmd.Process.Pid, peak: map[string]uint64{}, seen: map[int]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	sc := bufio.NewScanner(stderr)
	var tail []string
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(progress, "  "+line)
		if s, ok := parseStep(line); ok {
			out.Steps = append(out.Steps, s)
		}
		tail = append(tail, line)
		if len(tail) > 10 {
			tail = tail[1:]
		}
	}
	err = cmd.Wait()
	close(w.stop)
	<-w.done
	if ctx.Err() != nil {
		w.killLeft() // benchcollect was killed before it could stop its collector
	}
	out.Table, out.RSS = stdout.String(), w.peak
	if err != nil {
		return out, fmt.Errorf("bench: benchcollect %s: %w: %s", strings.Join(args, " "), err, strings.Join(tail, "\n"))
	}
	return out, nil
}

// rssWatch polls the children of parent for their VmHWM: benchcollect
// stops each collector before bench could read it otherwise. High-water
// marks only grow, so the last reading before exit is the peak, give or
// take the last poll interval.
type rssWatch struct {
	parent     int
	mu         sync.Mutex
	peak       map[string]uint64
	seen       map[int]string // pid: executable
	stop, done chan struct{}
}

func (w *rssWatch) run() {
	defer close(w.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		w.poll()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

func (w *rssWatch) poll() {
	procs, err := procfs.AllProcs()
	if err != nil {
		return
	}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil || st.PPID != w.parent {
			continue
		}
		exe, _ := p.Executable()
		cmdline, _ := p.CmdLine()
		status, err := p.NewStatus()
		if err != nil {
			continue
		}
		name := collectorName(exe, cmdline)
		w.mu.Lock()
		w.peak[name] = max(w.peak[name], status.VmHWM)
		w.seen[p.PID] = exe
		w.mu.Unlock()
	}
}

// killLeft ends the collectors benchcollect started that still run (the
// same pid and executable as seen).
func (w *rssWatch) killLeft() {
	for pid, exe := range w.seen {
		p, err := procfs.NewProc(pid)
		if err != nil {
			continue
		}
		if now, err := p.Executable(); err == nil && now == exe {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// collectorName is the name benchcollect gives the collector running exe
// with cmdline.
func collectorName(exe string, cmdline []string) string {
	base := filepath.Base(exe)
	if strings.Contains(base, "goflow2") {
		return "goflow2"
	}
	for i, a := range cmdline {
		if (a == "--workers" || a == "-workers") && i+1 < len(cmdline) {
			return base + " --workers " + cmdline[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--workers="); ok {
			return base + " --workers " + v
		}
	}
	return base
}

// goflow2JSON writes a wrapper that runs goflow2 with -format=json (the last
// -format wins), so that benchcollect measures goflow2's JSON output with
// the process id and CPU accounting of goflow2 itself (exec).
func goflow2JSON(dir, goflow2 string) (string, error) {
	path := filepath.Join(dir, "goflow2-json")
	script := fmt.Sprintf("#!/bin/sh\nexec %s \"$@\" -format=json\n", shellQuote(goflow2))
	return path, os.WriteFile(path, []byte(script), 0o755)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// seriesPoint is one collector's received rate at one offered rate: the
// rate asked of the sender, and the rate it achieved.
type seriesPoint struct{ Asked, Offered, Received float64 }

// series groups steps by collector, in the order collectors first appear.
func series(steps []sendStep) (names []string, points map[string][]seriesPoint) {
	points = map[string][]seriesPoint{}
	for _, s := range steps {
		if !slices.Contains(names, s.Collector) {
			names = append(names, s.Collector)
		}
		points[s.Collector] = append(points[s.Collector], seriesPoint{s.Offered, s.SentRate(), s.ReceivedRate()})
	}
	for _, n := range names {
		slices.SortFunc(points[n], func(a, b seriesPoint) int {
			switch {
			case a.Asked < b.Asked:
				return -1
			case a.Asked > b.Asked:
				return 1
			}
			return 0
		})
	}
	return names, points
}
