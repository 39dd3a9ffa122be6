package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// chainRun is one run of flowcollect | flowenrich | flowpublish fed over
// loopback UDP by flowgen at a paced rate.
type chainRun struct {
	Rate        float64 // records/s asked
	Sent        float64 // records flowgen sent
	SendElapsed time.Duration
	Collected   float64 // flowcollect_records_total, during the run
	Dropped     float64 // flowcollect_packets_dropped_total (datagrams)
	KernelDrops float64 // flowcollect_kernel_drops_total (datagrams)
	InBroker    float64 // records that reached the broker (end offsets)
	CPU         map[string]float64
	PeakRSS     map[string]uint64
}

// chainProcs is the order in which a chain run's processes are shown.
var chainProcs = []string{"flowgen", "flowcollect", "flowenrich", "flowpublish", "devbroker"}

// SentRate is the rate flowgen achieved.
func (r chainRun) SentRate() float64 { return r.Sent / max(r.SendElapsed.Seconds(), 1e-9) }

// Lost is what was sent and is not in the broker.
func (r chainRun) Lost() float64 { return max(r.Sent-r.InBroker, 0) }

func (r chainRun) LossPct() float64 { return 100 * r.Lost() / max(r.Sent, 1) }

func (r chainRun) LossFree() bool { return r.Sent > 0 && r.InBroker >= r.Sent }

type chainConfig struct {
	Bins        bins
	Work        string
	EnrichArgs  []string
	CollectArgs []string
	Log         io.Writer
	// Spool gives flowpublish a fresh --spool-dir in each run.
	Spool bool
	// BrokerDown points flowpublish (with a spool) at an address where no
	// broker listens: the run measures what goes into the spool, counted
	// by flowpublish_spool_records instead of the broker's offsets.
	BrokerDown bool
}

// runChain starts a fresh broker and chain, primes it with a few records
// (templates, database load, topic metadata), sends rate records/s of IPFIX
// for d, waits until the broker's end offsets stop moving and stops
// everything in order (SIGTERM to flowcollect; the others end at EOF).
func runChain(ctx context.Context, c chainConfig, rate float64, d time.Duration, seq int) (chainRun, error) {
	run := chainRun{Rate: rate, CPU: map[string]float64{}, PeakRSS: map[string]uint64{}}
	logDir := filepath.Join(c.Work, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return run, err
	}
	tag := fmt.Sprintf("chain%d", seq)
	fmt.Fprintf(c.Log, "bench: chain: %.0f records/s for %s\n", rate, d)

	broker, baddr, err := startBroker(c.Bins.Devbroker, c.Work, logDir, tag+"-devbroker", "flows")
	if err != nil {
		return run, err
	}
	defer broker.stop(15 * time.Second)
	port, err := freePort("udp")
	if err != nil {
		return run, err
	}
	var maddr [3]string
	for i := range maddr {
		if maddr[i], err = freeAddr(); err != nil {
			return run, err
		}
	}
	r1, w1, err := os.Pipe()
	if err != nil {
		return run, err
	}
	r2, w2, err := os.Pipe()
	if err != nil {
		return run, err
	}
	pubBroker := baddr
	if c.BrokerDown {
		if pubBroker, err = freeAddr(); err != nil {
			return run, err
		}
	}
	pubArgs := []string{"--brokers", pubBroker, "--topic", "flows", "--metrics-listen", maddr[2], "--log-level", "warn"}
	if c.Spool || c.BrokerDown {
		pubArgs = append(pubArgs, "--spool-dir", filepath.Join(c.Work, tag+"-spool"), "--flush-timeout", "1s")
	}
	// count is what reached Kafka (or, broker down, the spool).
	count := func(ctx context.Context) (float64, error) { return endOffsets(ctx, baddr, "flows") }
	if c.BrokerDown {
		count = func(ctx context.Context) (float64, error) {
			m, err := scrape(ctx, maddr[2])
			return metric(m, "flowpublish_spool_records"), err
		}
	}
	pub, err := start(logDir, tag+"-flowpublish", r2, nil, c.Bins.Flowpublish, pubArgs...)
	r2.Close()
	if err != nil {
		w2.Close()
		r1.Close()
		w1.Close()
		return run, err
	}
	enr, err := start(logDir, tag+"-flowenrich", r1, w2, c.Bins.Flowenrich,
		append(append([]string{}, c.EnrichArgs...), "--reload-interval", "0", "--metrics-listen", maddr[1], "--log-level", "warn")...)
	r1.Close()
	w2.Close()
	if err != nil {
		w1.Close()
		return run, err
	}
	col, err := start(logDir, tag+"-flowcollect", nil, w1, c.Bins.Flowcollect,
		append([]string{"--listen", fmt.Sprintf("netflow://127.0.0.1:%d", port), "--metrics-listen", maddr[0], "--log-level", "warn"},
			c.CollectArgs...)...)
	w1.Close()
	if err != nil {
		return run, err
	}
	procs := map[string]*proc{"flowcollect": col, "flowenrich": enr, "flowpublish": pub, "devbroker": broker}
	stopped := false
	stopChain := func() error {
		if stopped {
			return nil
		}
		stopped = true
		err := col.stop(30 * time.Second)
		err = errors.Join(err, enr.wait(60*time.Second), pub.wait(60*time.Second))
		return err
	}
	defer stopChain()
	for i, p := range []*proc{col, enr, pub} {
		if err := waitHTTP(ctx, p, maddr[i], 60*time.Second); err != nil {
			return run, err
		}
	}

	// Prime: templates and a first 560 records through to the broker.
	send := func(name string, args ...string) (sent float64, elapsed time.Duration, u usage, err error) {
		g, err := start(logDir, tag+"-"+name, nil, nil, c.Bins.Flowgen, append([]string{"--protocol", "ipfix",
			"--send", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
		if err != nil {
			return 0, 0, u, err
		}
		if err := g.wait(d + time.Minute); err != nil {
			return 0, 0, u, err
		}
		log, _ := os.ReadFile(filepath.Join(logDir, tag+"-"+name+".log"))
		sent, elapsed, err = parseFlowgenSent(string(log))
		return sent, elapsed, g.usage(), err
	}
	primed, _, _, err := send("flowgen-prime", "--seed", "2", "--count", "21", "--rate", "20000")
	if err != nil {
		return run, err
	}
	base, err := settleOffsets(ctx, count, primed, 60*time.Second)
	if err != nil {
		return run, fmt.Errorf("bench: chain did not deliver its first records: %w", err)
	}
	before := map[string]usage{}
	for name, p := range procs {
		if before[name], err = liveUsage(p.pid()); err != nil {
			return run, err
		}
	}
	m0, err := scrape(ctx, maddr[0])
	if err != nil {
		return run, err
	}

	var gu usage
	run.Sent, run.SendElapsed, gu, err = send("flowgen", "--seed", "1", "--rate", fmt.Sprint(rate), "--duration", d.String())
	if err != nil {
		return run, err
	}
	run.CPU["flowgen"], run.PeakRSS["flowgen"] = gu.CPU, gu.PeakRSS
	end, err := settleOffsets(ctx, count, base+run.Sent, 2*time.Minute)
	if err != nil {
		return run, err
	}
	run.InBroker = end - base
	for name, p := range procs {
		u, err := liveUsage(p.pid())
		if err != nil {
			return run, err
		}
		run.CPU[name] = u.CPU - before[name].CPU
	}
	m1, err := scrape(ctx, maddr[0])
	if err != nil {
		return run, err
	}
	for _, f := range []struct {
		dst  *float64
		name string
	}{{&run.Collected, "flowcollect_records_total"}, {&run.Dropped, "flowcollect_packets_dropped_total"}, {&run.KernelDrops, "flowcollect_kernel_drops_total"}} {
		*f.dst = metric(m1, f.name) - metric(m0, f.name)
	}
	if err := stopChain(); err != nil {
		return run, err
	}
	for name, p := range procs {
		if name != "devbroker" {
			run.PeakRSS[name] = p.usage().PeakRSS
		}
	}
	if u, err := liveUsage(broker.pid()); err == nil {
		run.PeakRSS["devbroker"] = u.PeakRSS
	}
	fmt.Fprintf(c.Log, "bench: chain: sent %.0f at %.0f records/s, flowcollect decoded %.0f (dropped %.0f datagrams, kernel %.0f), broker got %.0f: loss %.3f%%\n",
		run.Sent, run.SentRate(), run.Collected, run.Dropped, run.KernelDrops, run.InBroker, run.LossPct())
	return run, nil
}

// flowgen: ipfix: sent 21 packets (560 records, 29120 bytes) to 127.0.0.1:2055 in 1ms: ...
var flowgenSent = regexp.MustCompile(`sent \d+ packets \((\d+) records, \d+ bytes\) to \S+ in (\S+):`)

func parseFlowgenSent(log string) (float64, time.Duration, error) {
	m := flowgenSent.FindStringSubmatch(log)
	if m == nil {
		return 0, 0, fmt.Errorf("bench: no \"sent\" line in flowgen's output: %q", log)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, 0, err
	}
	d, err := time.ParseDuration(m[2])
	return n, d, err
}

// settleOffsets polls count (the broker's records, or the spool's) until
// it reaches at least want and has not grown for a second, or until it
// stops moving for 5 s short of want (records lost), or timeout.
func settleOffsets(ctx context.Context, count func(context.Context) (float64, error), want float64, timeout time.Duration) (float64, error) {
	deadline := time.Now().Add(timeout)
	last, since := -1.0, time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := count(ctx)
		if err != nil {
			return 0, err
		}
		if n != last {
			last, since = n, time.Now()
		}
		still := time.Since(since)
		if (n >= want && still >= time.Second) || still >= 5*time.Second {
			return n, nil
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("bench: %.0f of %.0f records arrived after %s", n, want, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
