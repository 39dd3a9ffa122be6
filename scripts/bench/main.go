// Command bench measures flowpipe on this machine and writes the figures
// the README shows: flowcollect side by side with goflow2 v2.2.6 (through
// scripts/bench/benchcollect), a received-vs-offered rate series drawn as a PNG,
// each stage's throughput on a pre-generated file, and the whole chain
// flowcollect | flowenrich | flowpublish fed over loopback UDP, with the
// highest loss-free rate of a short search, and the peers sweep:
// flowcollect, goflow2, nfdump's nfcapd/sfcapd and pmacct's
// nfacctd/sfacctd on the same loads, CPU per record of each collector's
// whole process tree.
//
// scripts/bench/bench.sh builds the binaries and runs it:
//
//	scripts/bench/bench.sh                 # ~5-8 minutes
//	BENCH_QUICK=1 scripts/bench/bench.sh   # ~1-2 minutes, fewer and shorter runs
//	scripts/bench/bench.sh --only peers    # the peers sweep alone (~15-20 minutes)
//	scripts/bench/bench.sh --only profile  # CPU profiles of flowcollect
//
// It writes scripts/bench/results.md and scripts/bench/plot.png and prints
// the Markdown on stdout; progress goes to stderr. A section that fails is
// reported in the Markdown and makes the exit code 1. The peers section
// run alone replaces its own section of results.md; the profile section
// (never part of the default run) writes scripts/bench/profiles.md.
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

	PeerProtocols  []string
	PeerRates      []float64 // datagrams/s
	PeerDur        time.Duration
	PeerRounds     int
	ProfileRate    float64 // datagrams/s
	ProfileSeconds int
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

		PeerProtocols:  []string{"ipfix", "netflow9", "netflow5", "sflow"},
		PeerRates:      []float64{4000, 16000},
		PeerDur:        5 * time.Second,
		PeerRounds:     2,
		ProfileRate:    16000,
		ProfileSeconds: 20,
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

		PeerProtocols:  []string{"ipfix", "sflow"},
		PeerRates:      []float64{4000},
		PeerDur:        2 * time.Second,
		PeerRounds:     1,
		ProfileRate:    16000,
		ProfileSeconds: 3,
	}
}

// sections run by default, in this order; extraSections only when named
// by --only.
var (
	sections      = []string{"collect", "json", "series", "stages", "chain", "peers"}
	extraSections = []string{"profile"}
)

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
	only := fs.String("only", strings.Join(sections, ","), "sections to run: "+strings.Join(sections, ",")+" (the default), and "+strings.Join(extraSections, ","))
	chainCollect := fs.String("chain-flowcollect-args", "", "extra flowcollect flags in the chain, space-separated (e.g. \"--workers 0\")")
	chainRate := fs.Float64("chain-rate", 0, "chain section: the goal rate in flow records/s, the first run (default 500000)")
	chainDur := fs.Duration("chain-duration", 0, "chain section: send time of the goal run (default 10s)")
	chainSpool := fs.Bool("chain-spool", false, "flowpublish spools (--spool-dir) in the chain")
	chainDown := fs.Bool("chain-broker-down", false, "the chain with flowpublish spooling to a broker that is down: what the spool takes")
	command := fs.String("command", "", "command line shown in the report (default: scripts/bench/bench.sh)")
	peerCollectors := fs.String("peers-collectors", strings.Join(defaultPeers, ","), "peers section: collectors, in this order, of "+strings.Join(allPeers, ","))
	peerProtocols := fs.String("peers-protocols", "", "peers section: protocols (default ipfix,netflow9,netflow5,sflow)")
	peerRates := fs.String("peers-rates", "", "peers section: loads in datagrams/s (default 4000,16000)")
	peerDur := fs.Duration("peers-duration", 0, "peers section: send time of each run (default 5s)")
	peerRounds := fs.Int("peers-rounds", 0, "peers section: rounds; the report shows medians (default 2)")
	profileProtocols := fs.String("profile-protocols", "", "profile section: protocols (default ipfix,netflow9,netflow5,sflow)")
	profileRate := fs.Float64("profile-rate", 0, "profile section: load in datagrams/s (default 16000)")
	profileSeconds := fs.Int("profile-seconds", 0, "profile section: profile length per protocol (default 20)")
	profilesDir := fs.String("profiles-dir", "", "profile section: keep the raw CPU profiles in this directory (for go tool pprof -diff_base)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(sections, s) && !slices.Contains(extraSections, s) {
				return fmt.Errorf("--only: unknown section %q", s)
			}
			want[s] = true
		}
	}
	prof := fullProfile()
	if *quick {
		prof = quickProfile()
	}
	if err := prof.override(*peerProtocols, *peerRates, *peerDur, *peerRounds, *profileRate, *profileSeconds); err != nil {
		return err
	}
	profileProtos := prof.Protocols
	if !*quick {
		profileProtos = prof.PeerProtocols
	}
	if *profileProtocols != "" {
		profileProtos = splitList(*profileProtocols)
	}
	keys := splitList(*peerCollectors)
	for _, k := range keys {
		if !slices.Contains(allPeers, k) {
			return fmt.Errorf("--peers-collectors: unknown collector %q (want %s)", k, strings.Join(allPeers, ", "))
		}
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
	if *chainRate > 0 {
		prof.ChainRate = *chainRate
	}
	if *chainDur > 0 {
		prof.ChainDur = *chainDur
	}

	rep := &report{Date: time.Now(), Command: *command, Profile: prof, Machine: readMachine(), Versions: readVersions(b.Goflow2)}
	t0 := time.Now()
	fmt.Fprintf(stderr, "bench: %d CPUs, load average %s; scratch in %s\n", rep.Machine.CPUs, rep.Machine.LoadStart, *work)

	cgroups := cgroupParent{why: "not needed"}
	if want["peers"] || want["profile"] {
		cgroups = newCgroupParent()
		defer cgroups.close()
		if cgroups.dir == "" {
			fmt.Fprintf(stderr, "bench: no cgroup v2 to measure process trees in (%s): CPU from /proc instead\n", cgroups.why)
		}
	}

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
	rep.Machine.noteLoad(want, "peers")
	if want["peers"] && ctx.Err() == nil {
		pr := &peersReport{Date: time.Now(), Command: *command, CPUs: rep.Machine.CPUs, LoadStart: loadAvg(),
			Duration: prof.PeerDur, Rounds: prof.PeerRounds, Collectors: keys}
		t := time.Now()
		runs, err := peerSweep(ctx, peersConfig{Flowcollect: b.Flowcollect, Tools: findPeerTools(b.Goflow2), Collectors: keys,
			Protocols: prof.PeerProtocols, Rates: prof.PeerRates, Duration: prof.PeerDur, Rounds: prof.PeerRounds,
			Work: filepath.Join(*work, "peers"), Cgroups: cgroups, Log: stderr}, &pr.Loads)
		pr.Runs, pr.Elapsed, pr.LoadEnd = runs, time.Since(t), loadAvg()
		if err != nil {
			pr.Problem = err.Error()
			rep.problem("peers", err)
		}
		rep.Peers = pr
	}
	var profiles *profilesReport
	if want["profile"] && ctx.Err() == nil {
		profiles = &profilesReport{Date: time.Now(), Command: *command, Version: rep.Versions.Flowpipe, CPUs: rep.Machine.CPUs, LoadStart: loadAvg()}
		profiles.Profiles = runProfiles(ctx, profileConfig{Flowcollect: b.Flowcollect, Protocols: profileProtos, Rate: prof.ProfileRate,
			Seconds: prof.ProfileSeconds, Work: *work, Keep: *profilesDir, Cgroups: cgroups, Log: stderr})
		profiles.LoadEnd = loadAvg()
		for _, pp := range profiles.Profiles {
			if pp.Err != "" {
				rep.problem("profile, "+pp.Protocol, errors.New(pp.Err))
			}
		}
	}
	if ctx.Err() != nil {
		rep.problem("bench", errors.New("interrupted"))
	}
	rep.Elapsed = time.Since(t0)
	rep.Machine.LoadEnd = loadAvg()

	var md bytes.Buffer
	onlyExtra := !slices.ContainsFunc(sections, func(s string) bool { return want[s] })
	if !onlyExtra {
		render(&md, rep)
	}
	if profiles != nil {
		var pmd bytes.Buffer
		renderProfiles(&pmd, profiles)
		md.Write(pmd.Bytes())
		if ctx.Err() == nil {
			path := filepath.Join(*outDir, "profiles.md")
			if err := os.WriteFile(path, pmd.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "bench: wrote %s\n", path)
		}
	}
	stdout.Write(md.Bytes())
	// A partial run (--only, Ctrl-C) does not replace the committed
	// results unless --out says where it goes; the peers section, which
	// says when and how it was measured, replaces its own part.
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	full := ctx.Err() == nil && !slices.ContainsFunc(sections, func(s string) bool { return !want[s] })
	results := filepath.Join(*outDir, "results.md")
	switch {
	case full || (outSet && !onlyExtra):
		if err := writeOutputs(*outDir, md.Bytes(), rep.Plot != "", *work); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: wrote %s\n", results)
	case want["peers"] && rep.Peers != nil && ctx.Err() == nil:
		var sec bytes.Buffer
		renderPeers(&sec, rep.Peers)
		old, err := os.ReadFile(results)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(results, spliceSection(old, sec.Bytes()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: replaced the peers section of %s\n", results)
	case !onlyExtra:
		fmt.Fprintf(stderr, "bench: partial run: %s left as it was (give --out to write)\n", results)
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%d sections had problems (see the report)", len(rep.Problems))
	}
	return nil
}

// override applies the flags that change the peers and profile sections.
func (p *profile) override(protocols, rates string, d time.Duration, rounds int, profileRate float64, profileSeconds int) error {
	if protocols != "" {
		p.PeerProtocols = splitList(protocols)
	}
	if rates != "" {
		p.PeerRates = nil
		for _, s := range splitList(rates) {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v <= 0 {
				return fmt.Errorf("--peers-rates: bad rate %q", s)
			}
			p.PeerRates = append(p.PeerRates, v)
		}
	}
	if d > 0 {
		p.PeerDur = d
	}
	if rounds > 0 {
		p.PeerRounds = rounds
	}
	if profileRate > 0 {
		p.ProfileRate = profileRate
	}
	if profileSeconds > 0 {
		p.ProfileSeconds = profileSeconds
	}
	return nil
}

// splitList splits a comma-separated flag value.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
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
