package main

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// peersHeading starts the peers section of results.md; a run of that
// section alone replaces the section in place.
const peersHeading = "## Collectors side by side: flowcollect, goflow2, nfdump, pmacct"

// peersReport is the peers section: a sweep and where it ran.
type peersReport struct {
	Date       time.Time
	Elapsed    time.Duration
	Command    string
	CPUs       int
	LoadStart  string
	LoadEnd    string
	Loads      []string // 1-minute load average as each protocol and rate started
	Duration   time.Duration
	Rounds     int
	Collectors []string
	Runs       []peerRun
	Problem    string // why the sweep stopped early, if it did
}

// methods are the CPU accounting methods the runs used.
func (r *peersReport) methods() []string {
	var out []string
	for _, run := range r.Runs {
		if run.Method != "" && !slices.Contains(out, run.Method) {
			out = append(out, run.Method)
		}
	}
	return out
}

// renderPeers writes the peers section as Markdown.
func renderPeers(w io.Writer, r *peersReport) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	cells := summarize(r.Runs, r.Collectors)
	p("%s\n\n", peersHeading)
	p("Measured %s with `%s` in %s. Load average at start %s, at end %s", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command,
		r.Elapsed.Round(time.Second), r.LoadStart, r.LoadEnd)
	if busy(r.LoadStart, r.CPUs) || busy(r.LoadEnd, r.CPUs) {
		p(" (**the machine was busy with other work: figures are noisy**)")
	}
	p("; 1-minute load average as each load started: %s.\n\n", strings.Join(r.Loads, ", "))
	p("Load: flowgen over loopback UDP, %s per run, paced in datagrams/s (IPFIX and NetFlow v9: 28 records per datagram and a template datagram every 20; NetFlow v5: 30; sFlow v5: 8 samples). ", r.Duration)
	p("Each collector writes a real file: flowcollect `--format bin|json --output FILE`; goflow2 v2.2.6 `-format=bin|json -transport=file` (bin with an empty separator); nfcapd/sfcapd 1.7.1 `-w DIR`; nfacctd/sfacctd 1.7.7 the print plugin, CSV, one line per record (the aggregation key holds every primitive that tells records apart; the cache is purged every second into an appended file). ")
	p("Socket receive buffer asked: 32 MiB (flowcollect `--rcvbuf`, nfcapd `-B`, pmacct `*_pipe_size`; the kernel caps the last two at 2 × net.core.rmem_max); goflow2 has no such setting. ")
	p("Records are counted from each collector's own output after it has ended: frames of the bin stream, lines of JSON, `nfdump -R DIR -q -o csv` lines, CSV lines without the title. ")
	p("CPU is that of the collector's whole process tree (pmacct's core, plugin and forked writers) from %s, from the first data datagram to the end of the tree after SIGTERM: the final writes count, startup does not. ", strings.Join(r.methods(), "; "))
	p("Each figure is the median of %d rounds; every round runs each collector once, in an order rotated from round to round, so that other work on the machine hits all of them alike. Peak memory is the highest, over the runs and 100-ms samples, of the tree's Σ Pss (pages shared by a forked writer and its parent count once) and of its largest process's VmHWM.\n\n", r.Rounds)

	// Summary: CPU-µs per record, one column per collector.
	p("CPU-µs per record written (median):\n\n")
	p("| protocol | datagrams/s | records/s |")
	for _, k := range r.Collectors {
		p(" %s |", peerLabels[k])
	}
	ratio := slices.Contains(r.Collectors, "flowcollect") && slices.Contains(r.Collectors, "nfdump")
	if ratio {
		p(" flowcollect / nfdump |")
	}
	p("\n|---|---:|---:|")
	for range r.Collectors {
		p("---:|")
	}
	if ratio {
		p("---:|")
	}
	p("\n")
	for _, l := range peerLoads(cells) {
		p("| %s | %s | %s |", protoTitle(l.proto), groupDigits(l.rate), humanRate(l.recordRate))
		var fc, nf float64
		for _, k := range r.Collectors {
			c, ok := findCell(cells, l.proto, l.rate, k)
			if !ok || c.Runs == 0 {
				p(" failed |")
				continue
			}
			p(" %s |", cpuCell(c))
			switch k {
			case "flowcollect":
				fc = c.CPUPerRecord
			case "nfdump":
				nf = c.CPUPerRecord
			}
		}
		if ratio {
			if fc > 0 && nf > 0 {
				p(" %.2fx |", fc/nf)
			} else {
				p(" - |")
			}
		}
		p("\n")
	}
	p("\n\"lost\": records sent and not in the output; the table below says how many datagrams the kernel dropped at the collector's full socket.\n\n")
	for _, line := range peersSummary(cells) {
		p("- %s\n", line)
	}
	p("\n")

	p("<details><summary>Every collector and load: records, loss, each run, memory</summary>\n\n")
	p("| protocol | datagrams/s (achieved) | collector | runs | sent | counted | loss | datagrams dropped by the kernel | CPU-µs/record: median (each run) | peak memory, MiB | output bytes/record |\n")
	p("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range cells {
		each := make([]string, len(c.PerRun))
		for i, v := range c.PerRun {
			each[i] = fmt.Sprintf("%.3f", v)
		}
		p("| %s | %s (%s) | %s | %d | %d | %d | %.3f%% | %d | %.3f (%s) | %s | %.0f |\n", c.Protocol, groupDigits(c.Rate), humanRate(c.DatagramRate),
			c.Collector, c.Runs, c.Sent, c.Counted, c.LossPct(), c.KernelDrops, c.CPUPerRecord, strings.Join(each, ", "), mib(c.PeakRSS), c.OutputBytesPerRecord)
	}
	p("\n</details>\n\n")
	var errs []string
	for _, c := range cells {
		for _, e := range c.Errors {
			errs = append(errs, fmt.Sprintf("%s, %s at %s datagrams/s, %s", c.Collector, c.Protocol, groupDigits(c.Rate), e))
		}
	}
	if r.Problem != "" {
		errs = append(errs, r.Problem)
	}
	if len(errs) > 0 {
		p("Problems in this sweep:\n\n")
		for _, e := range errs {
			p("- %s\n", e)
		}
		p("\n")
	}
}

// cpuCell is a summary cell: the median, and the loss when there was one.
func cpuCell(c peerCell) string {
	s := fmt.Sprintf("%.2f", c.CPUPerRecord)
	if c.CPUPerRecord < 0.1 {
		s = fmt.Sprintf("%.3f", c.CPUPerRecord)
	}
	if loss := c.LossPct(); loss >= 0.01 {
		s += fmt.Sprintf(", lost %.1f%%", loss)
	} else if c.Sent != c.Counted {
		s += fmt.Sprintf(", lost %d", c.Sent-c.Counted)
	}
	return s
}

type peerLoad struct {
	proto      string
	rate       float64
	recordRate float64 // records/s achieved, median over the load's runs
}

// peerLoads are the distinct protocol and rate pairs of cells, in order.
func peerLoads(cells []peerCell) []peerLoad {
	var out []peerLoad
	for _, c := range cells {
		i := slices.IndexFunc(out, func(l peerLoad) bool { return l.proto == c.Protocol && l.rate == c.Rate })
		if i < 0 {
			out = append(out, peerLoad{proto: c.Protocol, rate: c.Rate})
		}
	}
	for i := range out {
		var rates []float64
		for _, c := range cells {
			if c.Protocol == out[i].proto && c.Rate == out[i].rate && c.RecordRate > 0 {
				rates = append(rates, c.RecordRate)
			}
		}
		out[i].recordRate = median(rates)
	}
	return out
}

func findCell(cells []peerCell, proto string, rate float64, key string) (peerCell, bool) {
	for _, c := range cells {
		if c.Protocol == proto && c.Rate == rate && c.Key == key {
			return c, true
		}
	}
	return peerCell{}, false
}

func protoTitle(p string) string {
	switch p {
	case "ipfix":
		return "IPFIX"
	case "netflow9":
		return "NetFlow v9"
	case "netflow5":
		return "NetFlow v5"
	case "sflow":
		return "sFlow v5"
	}
	return p
}

// groupDigits writes 16000 as "16 000".
func groupDigits(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// peersSummary states flowcollect's CPU per record relative to each other
// collector, as a range over the loads.
func peersSummary(cells []peerCell) []string {
	var out []string
	for _, other := range []string{"nfdump", "pmacct", "goflow2"} {
		var v []float64
		for _, l := range peerLoads(cells) {
			fc, ok1 := findCell(cells, l.proto, l.rate, "flowcollect")
			o, ok2 := findCell(cells, l.proto, l.rate, other)
			if ok1 && ok2 && fc.Runs > 0 && o.Runs > 0 && fc.CPUPerRecord > 0 && o.CPUPerRecord > 0 {
				v = append(v, fc.CPUPerRecord/o.CPUPerRecord)
			}
		}
		if len(v) == 0 {
			continue
		}
		lo, hi := slices.Min(v), slices.Max(v)
		span := fmt.Sprintf("%.2fx to %.2fx", lo, hi)
		if hi-lo < 0.005 {
			span = fmt.Sprintf("%.2fx", lo)
		}
		loads := fmt.Sprintf("the %d loads", len(v))
		if len(v) == 1 {
			loads = "the one load"
		}
		out = append(out, fmt.Sprintf("flowcollect (bin) needs %s the CPU per record of %s over %s.", span, peerLabels[other], loads))
	}
	return out
}

// spliceSection replaces the section of doc that starts with section's
// first line (a "## " heading) up to the next "## " heading; a document
// without it gets the section before its "## Problems" section, or at the
// end.
func spliceSection(doc, section []byte) []byte {
	heading, _, _ := bytes.Cut(section, []byte("\n"))
	section = append(bytes.TrimRight(section, "\n"), '\n', '\n')
	lines := bytes.SplitAfter(doc, []byte("\n"))
	start, end := -1, len(lines)
	for i, l := range lines {
		t := bytes.TrimRight(l, "\n")
		switch {
		case start < 0 && bytes.Equal(t, heading):
			start = i
		case start >= 0 && bytes.HasPrefix(t, []byte("## ")):
			end = i
		}
		if start >= 0 && end < len(lines) {
			break
		}
	}
	if start < 0 {
		start = slices.IndexFunc(lines, func(l []byte) bool { return bytes.HasPrefix(l, []byte("## Problems")) })
		if start < 0 {
			start = len(lines)
		}
		end = start
	}
	var out bytes.Buffer
	for _, l := range lines[:start] {
		out.Write(l)
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n\n")) {
		out.WriteString(strings.Repeat("\n", 2-min(2, trailingNewlines(out.Bytes()))))
	}
	out.Write(section)
	for _, l := range lines[end:] {
		out.Write(l)
	}
	return append(bytes.TrimRight(out.Bytes(), "\n"), '\n')
}

func trailingNewlines(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\n' {
		n++
	}
	return n
}
