package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// machine describes where the figures were taken.
type machine struct {
	CPUs      int
	Model     string
	Kernel    string
	LoadStart string // /proc/loadavg's first three fields
	LoadEnd   string
	// LoadBySection is the 1-minute load average as each section starts:
	// other work on the machine shows here.
	LoadBySection []string
}

// noteLoad records the load average as a section starts, if it runs.
func (m *machine) noteLoad(want map[string]bool, section string) {
	if want[section] {
		m.LoadBySection = append(m.LoadBySection, section+" "+strings.Fields(loadAvg())[0])
	}
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Model: "unknown", LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// versions of what was measured.
type versions struct {
	Go, Flowpipe, Goflow2 string
}

func readVersions(goflow2 string) versions {
	v := versions{Go: runtime.Version(), Flowpipe: "unknown", Goflow2: "not run"}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		v.Flowpipe = strings.TrimSpace(string(out))
	}
	if goflow2 != "" {
		v.Goflow2 = "unknown version"
		// go install leaves -v empty; the build info has the module version.
		if out, err := exec.Command("go", "version", "-m", goflow2).Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
					v.Goflow2 = f[1] + " " + f[2]
				}
			}
		}
	}
	return v
}

// report is everything results.md shows.
type report struct {
	Date     time.Time
	Elapsed  time.Duration
	Command  string
	Profile  profile
	Machine  machine
	Versions versions

	Collect     []collectRow
	SeriesNames []string
	Series      map[string][]seriesPoint
	Stages      []stageResult
	Chain       []chainRun
	Peers       *peersReport
	Plot        string // file name of the plot, relative to results.md
	Problems    []string
}

func (r *report) problem(section string, err error) {
	r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", section, err))
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

// render writes the report as Markdown.
func render(w io.Writer, r *report) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# flowpipe benchmarks\n\n")
	p("Measured %s with `%s` in %s.\n\n", r.Date.UTC().Format("2006-01-02 15:04 MST"), r.Command, r.Elapsed.Round(time.Second))
	p("- Machine: %d CPUs, %s, Linux %s; load average at start %s, at end %s", r.Machine.CPUs, r.Machine.Model, r.Machine.Kernel, r.Machine.LoadStart, r.Machine.LoadEnd)
	if busy(r.Machine.LoadStart, r.Machine.CPUs) {
		p(" (**the machine was busy with other work at the start: figures are pessimistic**)")
	}
	if len(r.Machine.LoadBySection) > 0 {
		p("; 1-minute load average as each section started: %s (bench itself adds up to about 2)", strings.Join(r.Machine.LoadBySection, ", "))
	}
	p(".\n- Versions: flowpipe %s, %s, goflow2 %s.\n", r.Versions.Flowpipe, r.Versions.Go, r.Versions.Goflow2)
	p("- Everything runs on this one machine over loopback; the load generator (flowgen) shares its CPUs.\n")
	if r.Profile.Quick {
		p("- **Quick mode** (BENCH_QUICK=1): short runs, fewer protocols and steps; use the full run for the README.\n")
	}
	p("\n")
	if lines := summary(r); len(lines) > 0 {
		p("## Summary\n\n")
		for _, line := range lines {
			p("- %s\n", line)
		}
		p("\n")
	}

	if len(r.Collect) > 0 {
		p("## Collectors side by side: flowcollect and goflow2 v2.2.6\n\n")
		p("Same flowgen UDP load on loopback for each collector, one collector at a time, output to /dev/null; measured by scripts/bench/benchcollect: a CPU run at %s records/s for %s, then a search over %s records/s (%s each) that stops at the first step with loss. CPU is user+system of the collector process; peak RSS is its VmHWM. flowcollect runs with its defaults (`--workers 0`: decoding on the socket reader) and with `--workers 2` (two decoding goroutines, exporters hashed to them).\n\n",
			humanRate(r.Profile.CollectRate), r.Profile.CollectDur, joinRates(r.Profile.SearchRates), r.Profile.SearchDur)
		p("| protocol | output | collector | sent | received | loss | CPU s per M records | highest loss-free rate, records/s | peak RSS, MiB |\n")
		p("|---|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.Collect {
			p("| %s | %s | %s | %.0f | %.0f | %.2f%% | %.3f | %s | %s |\n", c.Protocol, c.Format, c.Collector, c.Sent, c.Received, c.LossPct, c.CPUPerM, lossFreeText(c.LossFree), mib(c.PeakRSS))
		}
		p("\n\">=\": the sender, not the collector, was the limit. ")
		p("CPU per record, goflow2 relative to flowcollect:\n\n")
		for _, line := range cpuRatios(r.Collect) {
			p("- %s\n", line)
		}
		p("\n")
	}

	if r.Peers != nil {
		renderPeers(w, r.Peers)
	}

	if len(r.SeriesNames) > 0 {
		p("## Received vs offered rate (IPFIX, 28 records per packet)\n\n")
		p("Each point is one %s run of a freshly started collector at that offered rate (benchcollect with no search). Rates are records/s over the sending time.\n\n", r.Profile.SeriesDur)
		if r.Plot != "" {
			p("![received vs offered records/s](%s)\n\n", r.Plot)
		}
		p("| asked records/s |")
		for _, n := range r.SeriesNames {
			p(" %s: received of offered |", n)
		}
		p("\n|---:|")
		for range r.SeriesNames {
			p("---:|")
		}
		p("\n")
		for _, asked := range askedRates(r.SeriesNames, r.Series) {
			p("| %s |", humanRate(asked))
			for _, n := range r.SeriesNames {
				i := slices.IndexFunc(r.Series[n], func(s seriesPoint) bool { return s.Asked == asked })
				if i < 0 {
					p(" - |")
					continue
				}
				pt := r.Series[n][i]
				p(" %s of %s (%.1f%%) |", humanRate(pt.Received), humanRate(pt.Offered), 100*pt.Received/max(pt.Offered, 1))
			}
			p("\n")
		}
		p("\nWhen the offered rate falls short of the asked one, the sender (sharing the CPUs) was the limit.\n\n")
	}

	if len(r.Stages) > 0 {
		p("## Each stage alone\n\n")
		p("Each stage is a process fed by the previous stage's output file (flowgen → IPFIX pcap → `flowcollect -r` → flows.bin → `flowenrich` → enriched.bin → `flowpublish` → dev broker (kfake, `--data-dir`) → `flowexport`). Rates exclude startup; CPU is user+system of the stage's process, startup excluded.\n\n")
		p("| stage | records | records/s | CPU s per M records | startup, s | peak RSS, MiB | notes |\n")
		p("|---|---:|---:|---:|---:|---:|---|\n")
		for _, s := range r.Stages {
			p("| %s | %.0f | %s | %.3f | %.2f | %s | %s |\n", s.Stage, s.Records, humanRate(s.Rate()), s.CPUPerM(), s.Startup.Seconds(), mib(s.Usage.PeakRSS), s.Note)
		}
		p("\n")
	}

	if len(r.Chain) > 0 {
		p("## The whole chain: flowcollect | flowenrich | flowpublish → dev broker\n\n")
		p("flowgen sends IPFIX (28 records per packet) over loopback UDP to `%s | flowenrich %s | flowpublish` into a fresh dev broker; records in the broker are counted from its end offsets once they stop moving. A first short run primes templates and connections and is not counted. CPU is per process during the run, in CPU seconds per million records sent.\n\n",
			strings.Join(append([]string{"flowcollect"}, r.Profile.ChainCollect...), " "), strings.Join(r.Profile.EnrichShown, " "))
		p("| offered records/s | sent | decoded by flowcollect | in the broker | lost | loss |")
		for _, n := range chainProcs {
			p(" %s CPU |", n)
		}
		p(" all, CPU s per M records |\n|---:|---:|---:|---:|---:|---:|")
		for range chainProcs {
			p("---:|")
		}
		p("---:|\n")
		for _, c := range r.Chain {
			p("| %s | %.0f | %.0f | %.0f | %.0f | %.3f%% |", humanRate(c.SentRate()), c.Sent, c.Collected, c.InBroker, c.Lost(), c.LossPct())
			total := 0.0
			for _, n := range chainProcs {
				p(" %.3f |", c.CPU[n]/max(c.Sent/1e6, 1e-9))
				total += c.CPU[n]
			}
			p(" %.3f |\n", total/max(c.Sent/1e6, 1e-9))
		}
		p("\n")
		for _, line := range chainVerdict(r.Chain, r.Profile.ChainRate, r.Machine.CPUs) {
			p("%s\n", line)
		}
		p("\nPeak RSS in the goal run, MiB:")
		if len(r.Chain) > 0 {
			for _, n := range chainProcs {
				p(" %s %s;", n, mib(r.Chain[0].PeakRSS[n]))
			}
		}
		p("\n\n")
	}

	if len(r.Problems) > 0 {
		p("## Problems during this run\n\n")
		for _, s := range r.Problems {
			p("- %s\n", s)
		}
		p("\n")
	}
}

// lossFreeText shortens benchcollect's loss-free cell: ">= 1089024" to
// ">= 1.09M", "below [100000 ...]" to "< 100k" (loss at every step).
func lossFreeText(s string) string {
	if strings.HasPrefix(s, "below") {
		if f := strings.Fields(strings.Trim(strings.TrimPrefix(s, "below"), " []")); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				return "< " + humanRate(v)
			}
		}
		return s
	}
	prefix, num := "", s
	if rest, ok := strings.CutPrefix(s, ">= "); ok {
		prefix, num = ">= ", rest
	}
	if v, err := strconv.ParseFloat(num, 64); err == nil {
		return prefix + humanRate(v)
	}
	return s
}

// askedRates are the distinct asked rates of a series, ascending.
func askedRates(names []string, points map[string][]seriesPoint) []float64 {
	var out []float64
	for _, n := range names {
		for _, pt := range points[n] {
			if !slices.Contains(out, pt.Asked) {
				out = append(out, pt.Asked)
			}
		}
	}
	slices.Sort(out)
	return out
}

// busy says whether a load average string shows more runnable work than
// half the CPUs.
func busy(load string, cpus int) bool {
	var one float64
	if _, err := fmt.Sscan(load, &one); err != nil {
		return false
	}
	return one > float64(cpus)/2
}

func joinRates(rates []float64) string {
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = humanRate(r)
	}
	return strings.Join(s, ", ")
}

// cpuRatios compares goflow2's CPU per record with each flowcollect mode,
// per protocol and output format.
func cpuRatios(rows []collectRow) []string {
	type key struct{ proto, format string }
	var keys []key
	by := map[key]map[string]float64{}
	for _, r := range rows {
		k := key{r.Protocol, r.Format}
		if by[k] == nil {
			by[k] = map[string]float64{}
			keys = append(keys, k)
		}
		by[k][r.Collector] = r.CPUPerM
	}
	var out []string
	for _, k := range keys {
		g, ok := by[k]["goflow2"]
		if !ok || g == 0 {
			continue
		}
		var parts []string
		names := make([]string, 0, len(by[k]))
		for n := range by[k] {
			if n != "goflow2" {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			if v := by[k][n]; v > 0 {
				parts = append(parts, fmt.Sprintf("%.1fx the CPU of %s", g/v, n))
			}
		}
		out = append(out, fmt.Sprintf("%s, %s output: goflow2 needs %s", k.proto, k.format, strings.Join(parts, ", ")))
	}
	return out
}

// chainVerdict says whether the goal rate was met and what the highest
// loss-free rate found was.
func chainVerdict(runs []chainRun, goal float64, cpus int) []string {
	var out []string
	if len(runs) == 0 {
		return nil
	}
	g := runs[0]
	if g.LossFree() {
		out = append(out, fmt.Sprintf("**Goal of %s flows/s with no loss: met** (%.0f records sent at %s records/s, all %.0f in the broker).",
			humanRate(goal), g.Sent, humanRate(g.SentRate()), g.InBroker))
	} else {
		before := max(g.Sent-g.Collected, 0)
		out = append(out, fmt.Sprintf("**Goal of %s flows/s with no loss: missed**: %.0f of %.0f records lost (%.3f%%): %.0f before flowcollect decoded them (datagrams dropped: %.0f by the kernel's socket buffer, %.0f by flowcollect's queues), %.0f after (pipes, flowenrich, flowpublish, broker).",
			humanRate(goal), g.Lost(), g.Sent, g.LossPct(), before, g.KernelDrops, g.Dropped, max(g.Lost()-before, 0)))
	}
	var parts []string
	total, chain := 0.0, 0.0
	for _, n := range chainProcs {
		cores := g.CPU[n] / max(g.Sent, 1) * goal
		total += cores
		if n != "flowgen" && n != "devbroker" {
			chain += cores
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", n, cores))
	}
	out = append(out, fmt.Sprintf("At %s records/s the processes need, in CPUs (CPU s per record × rate): %s; %.2f in all, of %d. "+
		"flowcollect | flowenrich | flowpublish alone need %.2f: on this machine the load generator and the broker share their CPUs.",
		humanRate(goal), strings.Join(parts, ", "), total, cpus, chain))
	best := 0.0
	for _, r := range runs {
		if r.LossFree() {
			best = max(best, r.SentRate())
		}
	}
	if best > 0 {
		out = append(out, fmt.Sprintf("Highest loss-free chain rate found: **%s records/s**.", humanRate(best)))
	} else {
		out = append(out, "No loss-free chain rate found among the rates tried.")
	}
	return out
}

// summary picks the headline figures of each section.
func summary(r *report) []string {
	var out []string
	ratio := map[string][]float64{} // by format: goflow2 / flowcollect CPU per record
	by := map[string]float64{}
	for _, c := range r.Collect {
		by[c.Protocol+"/"+c.Format+"/"+c.Collector] = c.CPUPerM
	}
	for _, c := range r.Collect {
		if c.Collector != "goflow2" {
			continue
		}
		if f := by[c.Protocol+"/"+c.Format+"/flowcollect"]; f > 0 {
			ratio[c.Format] = append(ratio[c.Format], c.CPUPerM/f)
		}
	}
	for _, format := range []string{"bin", "json"} {
		v := ratio[format]
		if len(v) == 0 {
			continue
		}
		lo, hi := slices.Min(v), slices.Max(v)
		span := fmt.Sprintf("%.1fx", lo)
		if hi-lo >= 0.1 {
			span = fmt.Sprintf("%.1fx to %.1fx", lo, hi)
		}
		protos := fmt.Sprintf("%d protocols", len(v))
		if len(v) == 1 {
			protos = "1 protocol"
		}
		out = append(out, fmt.Sprintf("goflow2 v2.2.6 needs %s the CPU per record of flowcollect with %s output (%s).", span, format, protos))
	}
	if len(r.SeriesNames) > 0 {
		asked := askedRates(r.SeriesNames, r.Series)
		top := asked[len(asked)-1]
		var parts []string
		for _, n := range r.SeriesNames {
			if i := slices.IndexFunc(r.Series[n], func(s seriesPoint) bool { return s.Asked == top }); i >= 0 {
				pt := r.Series[n][i]
				parts = append(parts, fmt.Sprintf("%s received %.1f%%", n, 100*pt.Received/max(pt.Offered, 1)))
			}
		}
		out = append(out, fmt.Sprintf("At %s IPFIX records/s offered: %s.", humanRate(top), strings.Join(parts, ", ")))
	}
	if len(r.Stages) > 0 {
		slow := r.Stages[0]
		for _, s := range r.Stages {
			if s.Rate() < slow.Rate() {
				slow = s
			}
		}
		out = append(out, fmt.Sprintf("Each stage alone runs at %s records/s or more (the slowest: %s).", humanRate(slow.Rate()), slow.Stage))
	}
	if v := chainVerdict(r.Chain, r.Profile.ChainRate, r.Machine.CPUs); len(v) > 0 {
		out = append(out, "Whole chain: "+v[0]+" "+v[len(v)-1])
	}
	if r.Peers != nil {
		out = append(out, peersSummary(summarize(r.Peers.Runs, r.Peers.Collectors))...)
	}
	return out
}
