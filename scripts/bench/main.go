// Command bench measures flowpipe on this machine and writes the figures
// the README shows: flowcollect side by side with goflow2 v2.2.6 (through
// scripts/bench/benchcollect), a received-vs-offered rate series drawn as a PNG,
// each stage's throughput on a pre-generated file, and the whole chain
// flowcollect | flowenrich | flowpublish fed over loopback UDP, with the
// highest loss-free rate of a short search.
//
// scripts/bench/bench.sh builds the binaries and runs it:
//
//	scripts/bench/bench.sh                 # ~5-8 minutes
//	BENCH_QUICK=1 scripts/bench/bench.sh   # ~1-2 minutes, fewer and shorter runs
//
// It writes scripts/bench/results.md and scripts/bench/plot.png and prints
// the Markdown on stdout; progress goes to stderr. A section that fails is
// reported in the Markdown and makes the exit code 1.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// profile is how long and how wide each measurement is.
type profile struct {
	Quick        bool
	Protocols    []string
	CollectRate  float64
	CollectDur   time.Duration
	SearchRates  []float64
	SearchDur    time.Duration
	JSONProtocol string
	JSONSearch   []float64
	SeriesRates  []float64
	SeriesDur    time.Duration
	StageRecords int
	ChainRate    float64
	ChainDur     time.Duration
	ChainUp      []float64 // tried after a loss-free goal run, until a loss
	ChainDown    []float64 // tried after a lossy goal run, until no loss
	ChainStepDur time.Duration
	EnrichShown  []string // flowenrich's database flags, as shown in the report
	ChainCollect []string // extra flowcollect flags in the chain
}

func fullProfile() profile {
	return profile{
		Protocols:    []string{"ipfix", "netflow9", "netflow5", "sflow"},
		CollectRate:  200000,
		CollectDur:   4 * time.Second,
		SearchRates:  []float64{100000, 200000, 400000, 800000, 1200000},
		SearchDur:    2 * time.Second,
		JSONProtocol: "ipfix",
		JSONSearch:   []float64{100000, 200000, 400000, 800000},
		SeriesRates:  []float64{50000, 100000, 200000, 400000, 800000, 1200000},
		SeriesDur:    3 * time.Second,
		StageRecords: 2000000,
		ChainRate:    500000,
		ChainDur:     10 * time.Second,
		ChainUp:      []float64{700000, 1000000},
		ChainDown:    []float64{400000, 300000, 200000, 100000},
		ChainStepDur: 5 * time.Second,
	}
}

func quickProfile() profile {
	return profile{
		Quick:        true,
		Protocols:    []string{"ipfix"},
		CollectRate:  200000,
		CollectDur:   time.Second,
		SearchRates:  []float64{200000, 800000},
		SearchDur:    time.Second,
		JSONProtocol: "ipfix",
		SeriesRates:  []float64{100000, 400000, 1200000},
		SeriesDur:    time.Second,
		StageRecords: 300000,
		ChainRate:    500000,
		ChainDur:     3 * time.Second,
		ChainUp:      []float64{800000},
		ChainDown:    []float64{250000, 100000},
		ChainStepDur: 2 * time.Second,
	}
}

var sections = []string{"collect", "json", "series", "stages", "chain"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "bin", "directory of flowcollect, flowenrich, flowpublish, flowexport, devbroker, flowgen and benchcollect")
	goflow2 := fs.String("goflow2", "", "goflow2 v2.2.6 binary (empty: flowcollect alone)")
	quick := fs.Bool("quick", false, "short runs, fewer protocols and steps (~1-2 minutes)")
	geo := fs.String("geo", "scripts/.geo", "directory of the free geo databases (scripts/dev/fetch-geo-db.sh)")
	networks := fs.String("networks", "scripts/dev/demo/networks.yaml", "flowenrich networks file, used when there are no geo databases")
	outDir := fs.String("out", "scripts/bench", "directory for results.md and plot.png")
	work := fs.String("work", "", "scratch directory (default: a new temporary one, removed at the end)")
	only := fs.String("only", strings.Join(sections, ","), "sections to run: "+strings.Join(sections, ","))
	chainCollect := fs.String("chain-flowcollect-args", "", "extra flowcollect flags in the chain, space-separated (e.g. \"--workers 0\")")
	chainSpool := fs.Bool("chain-spool", false, "flowpublish spools (--spool-dir) in the chain")
	chainDown := fs.Bool("chain-broker-down", false, "the chain with flowpublish spooling to a broker that is down: what the spool takes")
	command := fs.String("command", "", "command line shown in the report (default: scripts/bench/bench.sh)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(sections, s) {
				return fmt.Errorf("--only: unknown section %q", s)
			}
			want[s] = true
		}
	}
	prof := fullProfile()
	if *quick {
		prof = quickProfile()
	}
	if *command == "" {
		*command = "scripts/bench/bench.sh"
		if *quick {
			*command = "BENCH_QUICK=1 scripts/bench/bench.sh"
		}
	}
	if *work == "" {
		dir, err := os.MkdirTemp("", "flowpipe-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		*work = dir
	}
	b := bins{Goflow2: *goflow2}
	for name, dst := range map[string]*string{"flowcollect": &b.Flowcollect, "flowenrich": &b.Flowenrich,
		"flowpublish": &b.Flowpublish, "flowexport": &b.Flowexport, "devbroker": &b.Devbroker,
		"flowgen": &b.Flowgen, "benchcollect": &b.Benchcollect} {
		p, err := filepath.Abs(filepath.Join(*binDir, name))
		if err != nil {
			return err
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("--bin: %w", err)
		}
		*dst = p
	}
	enrichArgs, enrichNote := enrichFlags(*geo, *networks)
	prof.EnrichShown = enrichArgs
	prof.ChainCollect = strings.Fields(*chainCollect)

	rep := &report{Date: time.Now(), Command: *command, Profile: prof, Machine: readMachine(), Versions: readVersions(b.Goflow2)}
	t0 := time.Now()
	fmt.Fprintf(stderr, "bench: %d CPUs, load average %s; scratch in %s\n", rep.Machine.CPUs, rep.Machine.LoadStart, *work)

	rep.Machine.noteLoad(want, "collect")
	if want["collect"] {
		for _, proto := range prof.Protocols {
			rows, err := collectSide(ctx, b, prof, proto, "bin", prof.SearchRates, *work, stderr)
			if err != nil {
				rep.problem("collectors, "+proto, err)
				continue
			}
			rep.Collect = append(rep.Collect, rows...)
		}
	}
	rep.Machine.noteLoad(want, "json")
	if want["json"] && ctx.Err() == nil {
		rows, err := collectSide(ctx, b, prof, prof.JSONProtocol, "json", prof.JSONSearch, *work, stderr)
		if err != nil {
			rep.problem("collectors, JSON", err)
		}
		rep.Collect = append(rep.Collect, rows...)
	}
	rep.Machine.noteLoad(want, "series")
	if want["series"] && ctx.Err() == nil {
		var steps []sendStep
		for _, rate := range prof.SeriesRates {
			out, err := runBenchcollect(ctx, b.Benchcollect, benchcollectArgs(b, prof, "ipfix", rate, prof.SeriesDur, nil, prof.SeriesDur), stderr)
			if err != nil {
				rep.problem(fmt.Sprintf("series at %s records/s", humanRate(rate)), err)
				continue
			}
			steps = append(steps, out.Steps...)
		}
		rep.SeriesNames, rep.Series = series(steps)
		if len(steps) > 0 {
			path := filepath.Join(*work, "plot.png") // copied to --out at the end
			title := fmt.Sprintf("IPFIX over loopback UDP, %d CPUs: received vs offered records/s", rep.Machine.CPUs)
			if err := writePlot(path, title, rep.SeriesNames, rep.Series); err != nil {
				rep.problem("plot", err)
			} else {
				rep.Plot = "plot.png"
			}
		}
	}
	rep.Machine.noteLoad(want, "stages")
	if want["stages"] && ctx.Err() == nil {
		st, err := runStages(ctx, stagesConfig{Bins: b, Work: filepath.Join(*work, "stages"), Records: prof.StageRecords,
			EnrichArgs: enrichArgs, EnrichNote: enrichNote, Log: stderr})
		rep.Stages = st
		if err != nil {
			rep.problem("stages", err)
		}
	}
	rep.Machine.noteLoad(want, "chain")
	if want["chain"] && ctx.Err() == nil {
		runs, err := chainSearch(ctx, chainConfig{Bins: b, Work: filepath.Join(*work, "chain"), EnrichArgs: enrichArgs,
			CollectArgs: prof.ChainCollect, Log: stderr, Spool: *chainSpool, BrokerDown: *chainDown}, prof)
		rep.Chain = runs
		if err != nil {
			rep.problem("chain", err)
		}
	}
	if ctx.Err() != nil {
		rep.problem("bench", errors.New("interrupted"))
	}
	rep.Elapsed = time.Since(t0)
	rep.Machine.LoadEnd = loadAvg()

	var md bytes.Buffer
	render(&md, rep)
	stdout.Write(md.Bytes())
	// A partial run (--only, Ctrl-C) does not replace the committed
	// results unless --out says where it goes.
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	if (len(want) == len(sections) && ctx.Err() == nil) || outSet {
		if err := writeOutputs(*outDir, md.Bytes(), rep.Plot != "", *work); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: wrote %s\n", filepath.Join(*outDir, "results.md"))
	} else {
		fmt.Fprintf(stderr, "bench: partial run: %s left as it was (give --out to write)\n", filepath.Join(*outDir, "results.md"))
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%d sections had problems (see the report)", len(rep.Problems))
	}
	return nil
}

// writeOutputs writes results.md and copies the plot drawn in work.
func writeOutputs(dir string, md []byte, plot bool, work string) error {
	if plot {
		b, err := os.ReadFile(filepath.Join(work, "plot.png"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "plot.png"), b, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), md, 0o644)
}

// enrichFlags picks flowenrich's data: the real free databases when
// present, else the networks file.
func enrichFlags(geo, networks string) ([]string, string) {
	var args, names []string
	if p := filepath.Join(geo, "asn.mmdb"); exists(p) {
		args = append(args, "--asn-db", p)
		names = append(names, "ASN (ip-location-db asn)")
	}
	for _, f := range []string{"dbip-country.mmdb", "geo-whois-asn-country.mmdb"} {
		if p := filepath.Join(geo, f); exists(p) {
			args = append(args, "--country-db", p)
			names = append(names, "country ("+strings.TrimSuffix(f, ".mmdb")+")")
			break
		}
	}
	if len(args) > 0 {
		return args, "real free databases: " + strings.Join(names, ", ")
	}
	return []string{"--networks", networks}, "no geo databases (run scripts/dev/fetch-geo-db.sh): networks file " + networks + " only"
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// benchcollectArgs is benchcollect's command line for one protocol.
func benchcollectArgs(b bins, prof profile, proto string, rate float64, d time.Duration, search []float64, searchDur time.Duration) []string {
	rates := make([]string, len(search))
	for i, r := range search {
		rates[i] = strconv.FormatFloat(r, 'f', 0, 64)
	}
	args := []string{"--flowcollect", b.Flowcollect, "--protocols", proto,
		"--rate", strconv.FormatFloat(rate, 'f', 0, 64), "--duration", d.String(),
		"--search-rates", strings.Join(rates, ","), "--search-duration", searchDur.String()}
	if b.Goflow2 != "" {
		args = append(args, "--goflow2", b.Goflow2)
	}
	return args
}

// collectSide runs benchcollect for one protocol and output format.
func collectSide(ctx context.Context, b bins, prof profile, proto, format string, search []float64, work string, log io.Writer) ([]collectRow, error) {
	fmt.Fprintf(log, "bench: collectors: %s, %s output\n", proto, format)
	if format == "json" && b.Goflow2 != "" {
		wrapper, err := goflow2JSON(work, b.Goflow2)
		if err != nil {
			return nil, err
		}
		b.Goflow2 = wrapper
	}
	args := benchcollectArgs(b, prof, proto, prof.CollectRate, prof.CollectDur, search, prof.SearchDur)
	if format == "json" {
		args = append(args, "--flowcollect-args", "--format json")
	}
	out, err := runBenchcollect(ctx, b.Benchcollect, args, log)
	if err != nil {
		return nil, err
	}
	return collectRows(out.Table, format, out.RSS)
}

// chainSearch runs the chain at the goal rate, then up while it loses
// nothing or down until it does not.
func chainSearch(ctx context.Context, c chainConfig, prof profile) ([]chainRun, error) {
	seq := 0
	one := func(rate float64, d time.Duration) (chainRun, error) {
		seq++
		return runChain(ctx, c, rate, d, seq)
	}
	goal, err := one(prof.ChainRate, prof.ChainDur)
	if err != nil {
		return nil, err
	}
	runs := []chainRun{goal}
	steps, stopOnLoss := prof.ChainDown, false
	if goal.LossFree() {
		steps, stopOnLoss = prof.ChainUp, true
	}
	for _, rate := range steps {
		if ctx.Err() != nil {
			break
		}
		r, err := one(rate, prof.ChainStepDur)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
		if r.LossFree() != stopOnLoss {
			break
		}
	}
	// One bisection step between the best loss-free rate and the lowest
	// lossy one above it, when they are far apart.
	lo, hi := 0.0, 0.0
	for _, r := range runs {
		if r.LossFree() {
			lo = max(lo, r.Rate)
		}
	}
	for _, r := range runs {
		if !r.LossFree() && r.Rate > lo && (hi == 0 || r.Rate < hi) {
			hi = r.Rate
		}
	}
	if lo > 0 && hi > 1.2*lo && ctx.Err() == nil && !prof.Quick {
		r, err := one(math.Round((lo+hi)/2/10000)*10000, prof.ChainStepDur)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}
