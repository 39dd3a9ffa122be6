package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// bins are the binaries bench runs, built by scripts/bench/bench.sh.
type bins struct {
	Flowcollect, Flowenrich, Flowpublish, Flowexport string
	Devbroker, Flowgen, Benchcollect, Goflow2        string
}

// stageResult is one stage run alone on a pre-generated input.
type stageResult struct {
	Stage      string
	Records    float64
	Wall       time.Duration
	Startup    time.Duration // of Wall, before records flow (databases, group join)
	StartupCPU float64       // CPU seconds spent in Startup
	Usage      usage
	Note       string
}

// Rate is records/s once started.
func (s stageResult) Rate() float64 {
	return s.Records / max((s.Wall-s.Startup).Seconds(), 1e-9)
}

// CPUPerM is CPU seconds per million records, startup excluded.
func (s stageResult) CPUPerM() float64 {
	return max(s.Usage.CPU-s.StartupCPU, 0) / (s.Records / 1e6)
}

// stagesConfig says what runStages feeds the stages with.
type stagesConfig struct {
	Bins       bins
	Work       string   // scratch directory
	Records    int      // about this many IPFIX records
	EnrichArgs []string // databases or networks file for flowenrich
	EnrichNote string
	Log        io.Writer
}

// runStages generates an IPFIX pcap with flowgen, then runs each stage as a
// process on the previous stage's output: flowcollect -r, flowenrich,
// flowpublish into a dev broker, flowexport out of it.
func runStages(ctx context.Context, c stagesConfig) ([]stageResult, error) {
	logDir := filepath.Join(c.Work, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	pcap := filepath.Join(c.Work, "stages.pcap")
	// 28 records per data packet, one template packet every 20 data packets.
	packets := c.Records/28*21/20 + 1
	fmt.Fprintf(c.Log, "bench: stages: flowgen writes %d IPFIX packets to %s\n", packets, pcap)
	g, err := start(logDir, "stages-flowgen", nil, nil, c.Bins.Flowgen,
		"--protocol", "ipfix", "--count", fmt.Sprint(packets), "--pcap", pcap)
	if err != nil {
		return nil, err
	}
	if err := g.wait(5 * time.Minute); err != nil {
		return nil, err
	}

	var results []stageResult
	// flowcollect -r: pcap decode and bin encode.
	flows := filepath.Join(c.Work, "flows.bin")
	r, err := fileStage(c, "flowcollect -r (pcap decode)", "stages-flowcollect", "", flows, c.Bins.Flowcollect,
		"-r", pcap, "--metrics-listen", "", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	frames, err := countFile(flows, countFrames)
	if err != nil {
		return nil, err
	}
	r.Records = float64(frames)
	r.Note = fmt.Sprintf("IPFIX pcap of %d packets (28 records each) from flowgen, bin to a file", packets)
	results = append(results, r)
	n := r.Records

	// flowenrich: its database load is timed alone on empty input, then
	// taken out of the rate.
	enrichArgs := append(append([]string{}, c.EnrichArgs...), "--reload-interval", "0", "--log-level", "warn")
	empty, err := fileStage(c, "", "stages-flowenrich-empty", "", "", c.Bins.Flowenrich, enrichArgs...)
	if err != nil {
		return nil, err
	}
	enriched := filepath.Join(c.Work, "enriched.bin")
	r, err = fileStage(c, "flowenrich", "stages-flowenrich", flows, enriched, c.Bins.Flowenrich, enrichArgs...)
	if err != nil {
		return nil, err
	}
	r.Records, r.Startup, r.StartupCPU = n, empty.Wall, empty.Usage.CPU
	r.Note = c.EnrichNote + "; startup (database load) timed on empty input and excluded"
	results = append(results, r)

	// flowpublish into a dev broker with a data dir.
	broker, addr, err := startBroker(c.Bins.Devbroker, c.Work, logDir, "stages-devbroker", "stages")
	if err != nil {
		return nil, err
	}
	defer broker.stop(15 * time.Second)
	brokerBefore, err := liveUsage(broker.pid())
	if err != nil {
		return nil, err
	}
	r, err = fileStage(c, "flowpublish → dev broker", "stages-flowpublish", enriched, "", c.Bins.Flowpublish,
		"--brokers", addr, "--topic", "stages", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	brokerAfter, err := liveUsage(broker.pid())
	if err != nil {
		return nil, err
	}
	inBroker, err := endOffsets(ctx, addr, "stages")
	if err != nil {
		return nil, err
	}
	r.Records = n
	r.Note = fmt.Sprintf("bin pass-through, acks=all, 4 partitions; %.0f records in the broker; the broker used %.2f CPU s per M records meanwhile",
		inBroker, (brokerAfter.CPU-brokerBefore.CPU)/(n/1e6))
	if inBroker != n {
		r.Note += fmt.Sprintf(" (MISMATCH: %.0f written)", n)
	}
	results = append(results, r)

	// flowexport consuming the topic from the start.
	r, err = exportStage(ctx, c, addr, n)
	if err != nil {
		return nil, err
	}
	results = append(results, r)
	return results, nil
}

// fileStage runs one process from in (a file, or empty input) to out (a
// file, or /dev/null) and times it.
func fileStage(c stagesConfig, stage, logName, in, out, bin string, args ...string) (stageResult, error) {
	r := stageResult{Stage: stage}
	var stdin io.Reader
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return r, err
		}
		defer f.Close()
		stdin = f
	}
	var stdout io.Writer
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return r, err
		}
		defer f.Close()
		stdout = f
	}
	if stage != "" {
		fmt.Fprintf(c.Log, "bench: stages: %s\n", stage)
	}
	t0 := time.Now()
	p, err := start(filepath.Join(c.Work, "logs"), logName, stdin, stdout, bin, args...)
	if err != nil {
		return r, err
	}
	if err := p.wait(10 * time.Minute); err != nil {
		return r, err
	}
	r.Wall = time.Since(t0)
	r.Usage = p.usage()
	return r, nil
}

// exportStage starts flowexport on the topic and times it until its
// flowexport_records_consumed_total reaches n.
func exportStage(ctx context.Context, c stagesConfig, broker string, n float64) (stageResult, error) {
	r := stageResult{Stage: "flowexport ← dev broker", Records: n}
	fmt.Fprintf(c.Log, "bench: stages: %s\n", r.Stage)
	maddr, err := freeAddr()
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	p, err := start(filepath.Join(c.Work, "logs"), "stages-flowexport", nil, nil, c.Bins.Flowexport,
		"--brokers", broker, "--topic", "stages", "--group", "bench", "--start-offset", "earliest",
		"--asn", "64500", "--metrics-listen", maddr, "--log-level", "warn")
	if err != nil {
		return r, err
	}
	defer p.stop(15 * time.Second)
	deadline := t0.Add(10 * time.Minute)
	for {
		if p.exited() {
			return r, fmt.Errorf("flowexport ended early: %v", p.exitErr())
		}
		if time.Now().After(deadline) {
			return r, errors.New("bench: flowexport did not consume every record within 10 minutes")
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		m, err := scrape(ctx, maddr)
		if err == nil {
			// Records it cannot read are counted apart, and consumed too.
			got := metric(m, "flowexport_records_consumed_total") + metric(m, "flowexport_records_invalid_total")
			if got > 0 && r.Startup == 0 {
				r.Startup = time.Since(t0)
				u, err := liveUsage(p.pid())
				if err != nil {
					return r, err
				}
				r.StartupCPU = u.CPU
			}
			if got >= n {
				r.Wall = time.Since(t0)
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	u, err := liveUsage(p.pid())
	if err != nil {
		return r, err
	}
	r.Usage = u
	if m, err := scrape(ctx, maddr); err == nil {
		if bad := metric(m, "flowexport_records_invalid_total"); bad > 0 {
			r.Note = fmt.Sprintf("**%.0f records counted invalid** (see its log); ", bad)
		}
	}
	r.Note += "consumer group from the earliest offset, flow-exporter mode (--asn 64500); timed from the first record consumed (group join excluded) to the last, polling flowexport_records_consumed_total"
	return r, p.stop(15 * time.Second)
}

// startBroker starts scripts/dev/devbroker on a free port with a data dir.
func startBroker(bin, work, logDir, name string, topics ...string) (*proc, string, error) {
	dataDir, err := os.MkdirTemp(work, "kafka-")
	if err != nil {
		return nil, "", err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	p, err := start(logDir, name, nil, pw, bin, "--listen", "127.0.0.1:0", "--data-dir", dataDir,
		"--topic", strings.Join(topics, ","), "--partitions", "4")
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, "", err
	}
	addr := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "devbroker: listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return p, a, nil
	case <-p.done:
		return nil, "", fmt.Errorf("devbroker ended: %v", p.exitErr())
	case <-time.After(30 * time.Second):
		p.stop(5 * time.Second)
		return nil, "", errors.New("bench: devbroker not listening after 30s")
	}
}

// endOffsets sums the end offsets of topic's partitions: the records in it.
func endOffsets(ctx context.Context, broker, topic string) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := offs.Error(); err != nil {
		return 0, err
	}
	var sum float64
	offs.Each(func(o kadm.ListedOffset) { sum += float64(o.Offset) })
	return sum, nil
}
