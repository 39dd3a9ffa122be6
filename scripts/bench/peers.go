package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// The peers section runs flowcollect, goflow2 v2.2.6, nfdump's
// nfcapd/sfcapd and pmacct's nfacctd/sfacctd on the same flowgen load over
// loopback UDP, one collector at a time, each writing a real file. For
// every protocol and rate it runs every collector once in turn, then again
// in a rotated order, so that what else the machine does hits all of them
// alike; the report shows medians. CPU is that of the collector's whole
// process tree (a cgroup of its own), from the first data datagram to the
// end of the tree after SIGTERM (the final writes included, startup not);
// records are counted from each collector's output after it has ended.

// peerRcvbuf is the socket receive buffer asked of every collector that
// has a setting for it (the kernel may cap it at net.core.rmem_max).
const peerRcvbuf = 32 << 20

// peer is one collector as the sweep runs it.
type peer struct {
	Key    string // as --peers-collectors names it
	Output string // what it writes: bin, json, nfcapd, csv
	// Name is the program that runs for a protocol.
	Name func(p flowgen.Protocol) string
	// Start writes any configuration into dir and returns the command
	// line of a collector listening on 127.0.0.1:port that writes into dir,
	// sized for records/s.
	Start func(p flowgen.Protocol, port int, dir string, records float64) (bin string, args []string, err error)
	// Count counts the records in dir once the collector has ended.
	Count func(ctx context.Context, dir string) (int64, error)
	// Stop is the signal that makes it flush and exit.
	Stop syscall.Signal
}

// peerTools are the other collectors' binaries ("" when missing).
type peerTools struct {
	Goflow2, Nfcapd, Sfcapd, Nfdump, Nfacctd, Sfacctd string
}

// findPeerTools looks the Debian tools up in PATH and in the sbin
// directories (nfacctd lives in /usr/sbin, not always in a user's PATH).
func findPeerTools(goflow2 string) peerTools {
	look := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
			if p := filepath.Join(d, name); exists(p) {
				return p
			}
		}
		return ""
	}
	return peerTools{Goflow2: goflow2, Nfcapd: look("nfcapd"), Sfcapd: look("sfcapd"), Nfdump: look("nfdump"),
		Nfacctd: look("nfacctd"), Sfacctd: look("sfacctd")}
}

// allPeers lists the collectors the sweep knows, in their order.
var allPeers = []string{"flowcollect", "flowcollect-json", "goflow2", "goflow2-json", "nfdump", "pmacct"}

// defaultPeers are the collectors swept by default: goflow2's JSON output
// only when asked, since at about 70 µs/record it needs minutes of CPU to
// drain one 16 000-datagram/s run (the json section compares it).
var defaultPeers = []string{"flowcollect", "flowcollect-json", "goflow2", "nfdump", "pmacct"}

// peerLabels are the column titles of the summary table.
var peerLabels = map[string]string{
	"flowcollect":      "flowcollect",
	"flowcollect-json": "flowcollect JSON",
	"goflow2":          "goflow2",
	"goflow2-json":     "goflow2 JSON",
	"nfdump":           "nfcapd / sfcapd",
	"pmacct":           "nfacctd / sfacctd",
}

func scheme(p flowgen.Protocol) string {
	if p == flowgen.SFlow {
		return "sflow"
	}
	return "netflow"
}

// makePeers builds the collectors asked for; a missing tool is an error
// that names it.
func makePeers(keys []string, flowcollect string, t peerTools) ([]peer, error) {
	var out []peer
	for _, key := range keys {
		var p peer
		switch key {
		case "flowcollect", "flowcollect-json":
			format, file := "bin", "flows.bin"
			if key == "flowcollect-json" {
				format, file = "json", "flows.json"
			}
			count := countFrames
			if format == "json" {
				count = countLines
			}
			p = peer{Key: key, Output: format, Name: func(flowgen.Protocol) string { return "flowcollect" }, Stop: syscall.SIGTERM,
				Start: func(pr flowgen.Protocol, port int, dir string, records float64) (string, []string, error) {
					return flowcollect, []string{"--listen", fmt.Sprintf("%s://127.0.0.1:%d", scheme(pr), port),
						"--format", format, "--output", filepath.Join(dir, file), "--rcvbuf", fmt.Sprint(peerRcvbuf),
						"--metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, nil
				},
				Count: func(_ context.Context, dir string) (int64, error) { return countFile(filepath.Join(dir, file), count) },
			}
		case "goflow2", "goflow2-json":
			if t.Goflow2 == "" {
				return nil, errors.New("goflow2: no binary (--goflow2)")
			}
			format, file, sep := "bin", "flows.bin", "" // no separator: a pure length-prefixed stream
			if key == "goflow2-json" {
				format, file, sep = "json", "flows.json", "\n"
			}
			count := countFrames
			if format == "json" {
				count = countLines
			}
			p = peer{Key: key, Output: format, Name: func(flowgen.Protocol) string { return "goflow2" }, Stop: syscall.SIGTERM,
				Start: func(pr flowgen.Protocol, port int, dir string, records float64) (string, []string, error) {
					addr, err := freeAddr()
					if err != nil {
						return "", nil, err
					}
					// goflow2 has no receive buffer setting: it gets the system default.
					return t.Goflow2, []string{"-listen", fmt.Sprintf("%s://127.0.0.1:%d", scheme(pr), port), "-addr", addr,
						"-format=" + format, "-transport=file", "-transport.file=" + filepath.Join(dir, file),
						"-transport.file.sep=" + sep, "-loglevel", "warn"}, nil
				},
				Count: func(_ context.Context, dir string) (int64, error) { return countFile(filepath.Join(dir, file), count) },
			}
		case "nfdump":
			if t.Nfcapd == "" || t.Sfcapd == "" || t.Nfdump == "" {
				return nil, errors.New("nfdump: nfcapd, sfcapd or nfdump missing (Debian packages nfdump, nfdump-sflow)")
			}
			p = peer{Key: key, Output: "nfcapd", Stop: syscall.SIGTERM,
				Name: func(pr flowgen.Protocol) string {
					if pr == flowgen.SFlow {
						return "sfcapd"
					}
					return "nfcapd"
				},
				Start: func(pr flowgen.Protocol, port int, dir string, records float64) (string, []string, error) {
					bin := t.Nfcapd
					if pr == flowgen.SFlow {
						bin = t.Sfcapd
					}
					return bin, []string{"-b", "127.0.0.1", "-p", fmt.Sprint(port), "-w", dir, "-B", fmt.Sprint(peerRcvbuf)}, nil
				},
				Count: func(ctx context.Context, dir string) (int64, error) { return countNfdump(ctx, t.Nfdump, dir) },
			}
		case "pmacct":
			if t.Nfacctd == "" || t.Sfacctd == "" {
				return nil, errors.New("pmacct: nfacctd or sfacctd missing (Debian package pmacct)")
			}
			// pmacct flushes its caches and exits on SIGINT; on SIGTERM its plugin lingers.
			p = peer{Key: key, Output: "csv", Stop: syscall.SIGINT,
				Name: func(pr flowgen.Protocol) string {
					if pr == flowgen.SFlow {
						return "sfacctd"
					}
					return "nfacctd"
				},
				Start: func(pr flowgen.Protocol, port int, dir string, records float64) (string, []string, error) {
					conf := filepath.Join(dir, "pmacct.conf")
					if err := os.WriteFile(conf, []byte(pmacctConfig(pr, port, filepath.Join(dir, "flows.csv"), records)), 0o644); err != nil {
						return "", nil, err
					}
					bin := t.Nfacctd
					if pr == flowgen.SFlow {
						bin = t.Sfacctd
					}
					return bin, []string{"-f", conf}, nil
				},
				Count: func(_ context.Context, dir string) (int64, error) {
					return countFile(filepath.Join(dir, "flows.csv"), countCSVRecords)
				},
			}
		default:
			return nil, fmt.Errorf("unknown collector %q (want %s)", key, strings.Join(allPeers, ", "))
		}
		out = append(out, p)
	}
	return out, nil
}

// pmacctConfig is nfacctd's (sfacctd's) configuration: the print plugin
// writing CSV, one line per record. pmacct aggregates records with equal
// keys, so the key holds every primitive that tells flowgen's records
// apart (for NetFlow/IPFIX the flow times; sFlow has none, the datagram
// sequence number stands in), and the cache is purged every second into an
// appended file. The cache is sized as pmacct's documentation says, for
// the records of one purge interval (records/s) with a margin.
func pmacctConfig(p flowgen.Protocol, port int, out string, records float64) string {
	daemon, key := "nfacctd", "timestamp_start, timestamp_end, export_proto_seqno"
	if p == flowgen.SFlow {
		daemon, key = "sfacctd", "src_mac, dst_mac, vlan, export_proto_seqno"
	}
	return fmt.Sprintf(`! written by scripts/bench (peers section)
daemonize: false
%[1]s_ip: 127.0.0.1
%[1]s_port: %[2]d
%[1]s_pipe_size: %[3]d
plugins: print
aggregate: peer_src_ip, src_host, dst_host, src_port, dst_port, proto, tos, tcpflags, in_iface, out_iface, src_as, dst_as, src_mask, dst_mask, %[4]s
print_output: csv
print_output_file: %[5]s
print_output_file_append: true
print_refresh_time: 1
print_cache_entries: %[6]d
plugin_pipe_size: 67108864
plugin_buffer_size: 65536
timestamps_since_epoch: true
`, daemon, port, peerRcvbuf, key, out, pmacctBuckets(records))
}

// pmacctBuckets sizes the print plugin's cache: a prime number of buckets
// of about 10 entries each (CONFIG-KEYS: 259991 for 2 M entries), for 1.5
// times the entries of one 1-second purge, and no fewer than pmacct's
// default 16411.
func pmacctBuckets(entries float64) int {
	return nextPrime(max(16411, int(entries*1.5/8)))
}

// nextPrime is the smallest prime >= n.
func nextPrime(n int) int {
	for ; ; n++ {
		prime := n >= 2
		for d := 2; d*d <= n && prime; d++ {
			prime = n%d != 0
		}
		if prime {
			return n
		}
	}
}

// peersConfig is what a sweep runs.
type peersConfig struct {
	Flowcollect string
	Tools       peerTools
	Collectors  []string
	Protocols   []string
	Rates       []float64 // datagrams/s
	Duration    time.Duration
	Rounds      int
	Work        string
	Cgroups     cgroupParent
	Log         io.Writer
}

// peerRun is one collector's run at one protocol and rate.
type peerRun struct {
	Protocol  string
	Rate      float64 // datagrams/s asked
	Key       string  // peer key
	Collector string  // program name
	Round     int

	Datagrams, Sent, Counted int64 // datagrams and records sent, records counted
	SendElapsed              time.Duration
	CPU                      float64 // seconds, whole tree, first datagram to the tree's end
	PeakRSS                  uint64
	OutputBytes              int64
	KernelDrops              uint64 // datagrams the kernel dropped at the collector's socket
	Method                   string // CPU accounting
	Err                      string
}

// CPUPerRecord is CPU microseconds per record written (0 if none).
func (r peerRun) CPUPerRecord() float64 {
	if r.Counted <= 0 {
		return 0
	}
	return r.CPU * 1e6 / float64(r.Counted)
}

// DatagramRate is the rate the sender achieved.
func (r peerRun) DatagramRate() float64 {
	return float64(r.Datagrams) / max(r.SendElapsed.Seconds(), 1e-9)
}

// rotate returns s starting at its i-th element.
func rotate[T any](s []T, i int) []T {
	if len(s) == 0 {
		return s
	}
	i %= len(s)
	return append(slices.Clone(s[i:]), s[:i]...)
}

// peerSweep runs the alternating sweep: per protocol and rate, Rounds
// rounds of every collector once, each round in a rotated order.
func peerSweep(ctx context.Context, c peersConfig, loads *[]string) ([]peerRun, error) {
	peers, err := makePeers(c.Collectors, c.Flowcollect, c.Tools)
	if err != nil {
		return nil, err
	}
	var runs []peerRun
	seq := 0
	for _, ps := range c.Protocols {
		proto, err := flowgen.ParseProtocol(ps)
		if err != nil {
			return runs, err
		}
		for _, rate := range c.Rates {
			*loads = append(*loads, fmt.Sprintf("%s at %s datagrams/s: %s", proto, humanRate(rate), strings.Fields(loadAvg())[0]))
			for round := 1; round <= c.Rounds; round++ {
				for _, p := range rotate(peers, round-1) {
					if ctx.Err() != nil {
						return runs, ctx.Err()
					}
					seq++
					r := runPeer(ctx, c, p, proto, rate, round, seq)
					fmt.Fprintf(c.Log, "bench: peers: %s %s at %.0f datagrams/s, round %d: sent %d records (%.0f datagrams/s), counted %d, %.3f CPU s, %.3f µs/record, peak %s MiB%s\n",
						r.Collector, proto, rate, round, r.Sent, r.DatagramRate(), r.Counted, r.CPU, r.CPUPerRecord(), mib(r.PeakRSS), errSuffix(r.Err))
					runs = append(runs, r)
				}
			}
		}
	}
	return runs, nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "; error: " + s
}

// runPeer runs one collector once: start it in its own cgroup, wait until
// its socket is bound, send the templates, then the load for c.Duration;
// wait until it is idle, stop it, count its output.
func runPeer(ctx context.Context, c peersConfig, p peer, proto flowgen.Protocol, rate float64, round, seq int) peerRun {
	r := peerRun{Protocol: proto.String(), Rate: rate, Key: p.Key, Collector: p.Name(proto), Round: round}
	if p.Output == "json" {
		r.Collector += " JSON"
	}
	fail := func(err error) peerRun {
		r.Err = err.Error()
		return r
	}
	dir := filepath.Join(c.Work, fmt.Sprintf("%03d-%s-%s-%.0f", seq, p.Key, proto, rate))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir) // output files reach hundreds of MB at 16 000 datagrams/s
	port, err := freePort("udp")
	if err != nil {
		return fail(err)
	}
	g, err := flowgen.New(flowgen.Config{Seed: uint64(seq), Protocol: proto, FlowPool: 1024, BaseTime: time.Now()})
	if err != nil {
		return fail(err)
	}
	bin, args, err := p.Start(proto, port, dir, rate*float64(g.Config().RecordsPerPacket))
	if err != nil {
		return fail(err)
	}
	logPath := filepath.Join(c.Work, fmt.Sprintf("%03d-%s.log", seq, r.Collector))
	m, err := startMetered(c.Cgroups, strings.ReplaceAll(r.Collector, " ", "-"), logPath, bin, args...)
	if err != nil {
		return fail(err)
	}
	r.Method = m.method
	defer m.close()
	stopped := false
	defer func() {
		if !stopped {
			m.kill()
		}
	}()
	if err := waitBound(ctx, m, port, 15*time.Second); err != nil {
		return fail(fmt.Errorf("%w (log: %s)", err, logTail(logPath)))
	}

	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	// Templates first, and time to store them and to finish starting up
	// (pmacct's plugins, goflow2's workers), outside the measurement.
	if t := g.Templates(); t != nil {
		conn.Write(t)
	}
	time.Sleep(500 * time.Millisecond)
	cpu0, err := m.cpu()
	if err != nil {
		return fail(err)
	}
	st, err := flowgen.Send(ctx, conn, g, flowgen.SendOptions{Rate: rate, Duration: c.Duration})
	if err != nil {
		return fail(err)
	}
	r.Datagrams, r.Sent, r.SendElapsed = int64(st.Packets), int64(st.Records), st.Elapsed
	m.settle(60 * time.Second)
	if b, err := os.ReadFile("/proc/net/udp"); err == nil {
		_, r.KernelDrops = udpSockets(string(b), port)
	}
	stopped = true
	if err := m.stop(p.Stop, 120*time.Second); err != nil {
		return fail(fmt.Errorf("%w (log: %s)", err, logTail(logPath)))
	}
	cpu1, err := m.cpu()
	if err != nil {
		return fail(err)
	}
	r.CPU, r.PeakRSS, r.OutputBytes = cpu1-cpu0, m.peakRSS(), dirSize(dir)
	if r.Counted, err = p.Count(ctx, dir); err != nil {
		return fail(err)
	}
	return r
}

// waitBound waits until the collector's UDP socket is bound.
func waitBound(ctx context.Context, m *treeMeter, port int, d time.Duration) error {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if m.exited() {
			return fmt.Errorf("ended before listening: %v", m.err)
		}
		if b, err := os.ReadFile("/proc/net/udp"); err == nil && udpBound(string(b), port) {
			return nil
		}
	}
	return fmt.Errorf("not listening on 127.0.0.1:%d after %s", port, d)
}

// peerCell is the summary of one collector's runs at one protocol and rate.
type peerCell struct {
	Protocol, Key, Collector string
	Rate                     float64
	Runs                     int     // runs without error
	Sent, Counted            int64   // summed over those runs
	CPUPerRecord             float64 // µs, median
	PerRun                   []float64
	PeakRSS                  uint64  // highest of the runs
	KernelDrops              uint64  // summed over the runs
	DatagramRate             float64 // achieved by the sender, median
	RecordRate               float64 // records/s sent, median
	OutputBytesPerRecord     float64
	Errors                   []string
}

// LossPct is the share of the records sent that are not in the output.
func (c peerCell) LossPct() float64 {
	if c.Sent == 0 {
		return 0
	}
	return 100 * float64(c.Sent-c.Counted) / float64(c.Sent)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize groups runs into cells, in the order they were first run
// (protocol, rate) and in the collectors' order.
func summarize(runs []peerRun, keys []string) []peerCell {
	type id struct {
		proto, key string
		rate       float64
	}
	type load struct {
		proto string
		rate  float64
	}
	var loadOrder []load
	by := map[id][]peerRun{}
	for _, r := range runs {
		if l := (load{r.Protocol, r.Rate}); !slices.Contains(loadOrder, l) {
			loadOrder = append(loadOrder, l)
		}
		k := id{r.Protocol, r.Key, r.Rate}
		by[k] = append(by[k], r)
	}
	var order []id
	for _, l := range loadOrder {
		for _, key := range keys {
			if k := (id{l.proto, key, l.rate}); len(by[k]) > 0 {
				order = append(order, k)
			}
		}
	}
	var cells []peerCell
	for _, k := range order {
		c := peerCell{Protocol: k.proto, Key: k.key, Rate: k.rate}
		var rates, recRates []float64
		var bytes, counted int64
		for _, r := range by[k] {
			c.Collector = r.Collector
			if r.Err != "" {
				c.Errors = append(c.Errors, fmt.Sprintf("round %d: %s", r.Round, r.Err))
				continue
			}
			c.Runs++
			c.Sent += r.Sent
			c.Counted += r.Counted
			c.PerRun = append(c.PerRun, r.CPUPerRecord())
			c.PeakRSS = max(c.PeakRSS, r.PeakRSS)
			c.KernelDrops += r.KernelDrops
			rates = append(rates, r.DatagramRate())
			recRates = append(recRates, float64(r.Sent)/max(r.SendElapsed.Seconds(), 1e-9))
			bytes += r.OutputBytes
			counted += r.Counted
		}
		c.CPUPerRecord = median(c.PerRun)
		c.DatagramRate = median(rates)
		c.RecordRate = median(recRates)
		if counted > 0 {
			c.OutputBytesPerRecord = float64(bytes) / float64(counted)
		}
		cells = append(cells, c)
	}
	return cells
}
