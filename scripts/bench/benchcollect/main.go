// Command benchcollect runs flowcollect and goflow2 side by side on the same
// generated UDP load on loopback and prints, per protocol, the CPU each
// needs per million records and the highest rate it receives without loss.
// scripts/bench/bench-collect.sh builds the binaries and calls it.
//
// Each collector runs alone (one after the other) with its output going to
// /dev/null. Records received are read from each tool's own metrics; CPU is
// utime+stime of the collector process from /proc/PID/stat.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchcollect:", err)
		os.Exit(1)
	}
}

type collector struct {
	name string
	bin  string
	// args returns the command line for a listener on port and metrics on addr.
	args func(proto flowgen.Protocol, port int, metrics string) []string
	// records sums the records decoded from an exposition.
	records func(exposition string) float64
}

func run() error {
	flowcollectBin := flag.String("flowcollect", "bin/flowcollect", "flowcollect binary")
	flowcollectArgs := flag.String("flowcollect-args", "", "extra flowcollect flags, space-separated (e.g. \"--workers 0\")")
	goflow2Bin := flag.String("goflow2", "", "goflow2 v2.2.6 binary")
	protos := flag.String("protocols", "ipfix,netflow9,netflow5,sflow", "protocols to test")
	rate := flag.Float64("rate", 200000, "records/s of the CPU measurement run")
	duration := flag.Duration("duration", 10*time.Second, "length of the CPU measurement run")
	search := flag.String("search-rates", "100000,200000,400000,800000,1600000", "records/s steps of the loss-free search (ascending; empty: no search)")
	searchDur := flag.Duration("search-duration", 5*time.Second, "length of each search step")
	flag.Parse()

	flowcollect := func(name string, extra ...string) collector {
		return collector{
			name: name,
			bin:  *flowcollectBin,
			args: func(p flowgen.Protocol, port int, metrics string) []string {
				scheme := "netflow"
				if p == flowgen.SFlow {
					scheme = "sflow"
				}
				args := []string{"--listen", fmt.Sprintf("%s://127.0.0.1:%d", scheme, port), "--metrics-listen", metrics,
					"--output", "/dev/null", "--format", "bin", "--log-level", "warn"}
				return append(append(args, extra...), strings.Fields(*flowcollectArgs)...)
			},
			records: func(s string) float64 { return sumMetric(s, "flowcollect_records_total", "") },
		}
	}
	// The default (--workers 0: decoding on the socket reader, no hand-off)
	// and --workers 2 (decoding goroutines, exporters hashed to them).
	cols := []collector{flowcollect("flowcollect"), flowcollect("flowcollect --workers 2", "--workers", "2")}
	if *goflow2Bin != "" {
		cols = append(cols, collector{
			name: "goflow2",
			bin:  *goflow2Bin,
			args: func(p flowgen.Protocol, port int, metrics string) []string {
				scheme := "netflow"
				if p == flowgen.SFlow {
					scheme = "sflow"
				}
				return []string{"-listen", fmt.Sprintf("%s://127.0.0.1:%d", scheme, port), "-addr", metrics,
					"-format=bin", "-transport=file", "-transport.file=/dev/null", "-transport.file.sep=", "-loglevel", "warn"}
			},
			records: func(s string) float64 {
				// v5 records are counted in flowset_total (one "set" per record).
				return sumMetric(s, "goflow2_flow_process_nf_flowset_records_total", `type="DataFlowSet"`) +
					sumMetric(s, "goflow2_flow_process_nf_flowset_total", `type="DataFlowSet",version="5"`) +
					sumMetric(s, "goflow2_flow_process_sf_samples_total", `type="FlowSample"`) +
					sumMetric(s, "goflow2_flow_process_sf_samples_total", `type="ExpandedFlowSample"`)
			},
		})
	}
	var steps []float64
	for _, s := range strings.Split(*search, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("--search-rates: %w", err)
		}
		steps = append(steps, v)
	}

	fmt.Printf("Load: flowgen packets over loopback UDP, CPU run at %.0f records/s for %s; search steps %v records/s, %s each.\n\n",
		*rate, *duration, steps, *searchDur)
	fmt.Println("| protocol | collector | sent | received | loss | CPU s | CPU s per M records | highest loss-free rate, records/s (\">=\": the sender was the limit) |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	ratios := map[string]map[string]float64{}
	for _, ps := range strings.Split(*protos, ",") {
		p, err := flowgen.ParseProtocol(strings.TrimSpace(ps))
		if err != nil {
			return err
		}
		for _, c := range cols {
			res, err := measure(c, p, *rate, *duration, steps, *searchDur)
			if err != nil {
				return fmt.Errorf("%s %s: %w", c.name, p, err)
			}
			perM := res.cpu / (res.received / 1e6)
			lossFree := "below " + fmt.Sprint(steps)
			if res.lossFree > 0 {
				lossFree = fmt.Sprintf("%.0f", res.lossFree)
				if res.lossFree >= 0.9*steps[len(steps)-1] || res.sendLimited {
					lossFree = ">= " + lossFree
				}
			} else if len(steps) == 0 {
				lossFree = "-"
			}
			fmt.Printf("| %s | %s | %.0f | %.0f | %.2f%% | %.2f | %.3f | %s |\n", p, c.name, res.sent, res.received,
				100*(res.sent-res.received)/res.sent, res.cpu, perM, lossFree)
			if ratios[p.String()] == nil {
				ratios[p.String()] = map[string]float64{}
			}
			ratios[p.String()][c.name] = perM
		}
	}
	if *goflow2Bin != "" {
		fmt.Println()
		for _, ps := range strings.Split(*protos, ",") {
			r := ratios[strings.TrimSpace(ps)]
			for _, c := range cols[:len(cols)-1] {
				if r[c.name] > 0 {
					fmt.Printf("- %s: goflow2 needs %.1fx the CPU per record of %s\n", strings.TrimSpace(ps), r["goflow2"]/r[c.name], c.name)
				}
			}
		}
	}
	return nil
}

type result struct {
	sent, received, cpu float64
	lossFree            float64 // records/s achieved by the fastest loss-free step
	sendLimited         bool    // the sender could not reach the next step's rate
}

// measure starts the collector, runs the CPU measurement, then the search
// steps until the first one with loss.
func measure(c collector, p flowgen.Protocol, rate float64, d time.Duration, steps []float64, stepDur time.Duration) (result, error) {
	var res result
	port, err := freePort("udp")
	if err != nil {
		return res, err
	}
	mport, err := freePort("tcp")
	if err != nil {
		return res, err
	}
	metrics := fmt.Sprintf("127.0.0.1:%d", mport)
	cmd := exec.Command(c.bin, c.args(p, port, metrics)...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	if err := waitReady(metrics); err != nil {
		return res, err
	}
	seed := uint64(1)
	var elapsed time.Duration // of the last run
	one := func(rate float64, d time.Duration) (sent, received, cpu float64, err error) {
		g, err := flowgen.New(flowgen.Config{Seed: seed, Protocol: p})
		seed++
		if err != nil {
			return 0, 0, 0, err
		}
		conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			return 0, 0, 0, err
		}
		// Templates first, so that neither collector loses data to a
		// template that another of its workers has not stored yet.
		if t := g.Templates(); t != nil {
			conn.Write(t)
			time.Sleep(300 * time.Millisecond)
		}
		before, err := scrape(metrics)
		if err != nil {
			return 0, 0, 0, err
		}
		cpu0, err := cpuSeconds(cmd.Process.Pid)
		if err != nil {
			return 0, 0, 0, err
		}
		st, err := flowgen.Send(context.Background(), conn, g, flowgen.SendOptions{Rate: rate, PerRecord: true, Duration: d})
		conn.Close()
		if err != nil {
			return 0, 0, 0, err
		}
		// Wait until the collector is idle (its CPU time stops moving: all
		// it queued is decoded) before reading the CPU time, and scrape
		// only then: a scrape costs CPU that is not decoding.
		cpu1, err := settleCPU(cmd.Process.Pid)
		if err != nil {
			return 0, 0, 0, err
		}
		after, err := settle(metrics, c.records)
		if err != nil {
			return 0, 0, 0, err
		}
		fmt.Fprintf(os.Stderr, "benchcollect: %s %s at %.0f records/s: sent %d in %s, received %.0f, %.2f CPU s\n",
			c.name, p, rate, st.Records, st.Elapsed.Round(time.Millisecond), after-c.records(before), cpu1-cpu0)
		elapsed = st.Elapsed
		return float64(st.Records), after - c.records(before), cpu1 - cpu0, nil
	}
	if res.sent, res.received, res.cpu, err = one(rate, d); err != nil {
		return res, err
	}
	for _, r := range steps {
		sent, got, _, err := one(r, stepDur)
		if err != nil {
			return res, err
		}
		if got < sent {
			break
		}
		// The rate achieved, which a loaded sender may keep below r.
		res.lossFree = max(res.lossFree, sent/elapsed.Seconds())
		if sent/elapsed.Seconds() < 0.9*r {
			res.sendLimited = true
			break // the sender is the limit: higher steps say nothing more
		}
	}
	return res, nil
}

// settle waits until the collector's record count stops moving: everything
// queued inside it has been decoded.
func settle(addr string, records func(string) float64) (float64, error) {
	last := -1.0
	for i := 0; i < 100; i++ {
		time.Sleep(300 * time.Millisecond)
		s, err := scrape(addr)
		if err != nil {
			return 0, err
		}
		v := records(s)
		if v == last {
			return v, nil
		}
		last = v
	}
	return last, nil
}

// settleCPU waits until the process used no CPU for 300 ms and returns its
// CPU time then.
func settleCPU(pid int) (float64, error) {
	last := -1.0
	for i := 0; i < 200; i++ {
		time.Sleep(300 * time.Millisecond)
		v, err := cpuSeconds(pid)
		if err != nil {
			return 0, err
		}
		if v == last {
			return v, nil
		}
		last = v
	}
	return last, nil
}

func waitReady(addr string) error {
	for i := 0; i < 100; i++ {
		if _, err := scrape(addr); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("metrics endpoint not up after 10s")
}

func scrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// sumMetric adds every sample of a metric whose labels contain filter.
func sumMetric(exposition, name, filter string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) <= len(name) || (line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		if filter != "" && !strings.Contains(line, filter) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// cpuSeconds is utime+stime of pid (fields 14 and 15 of /proc/PID/stat).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15.
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	const clkTck = 100 // USER_HZ on Linux
	return (ut + st) / clkTck, nil
}

func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
