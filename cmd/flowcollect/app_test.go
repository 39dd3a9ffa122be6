package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

var update = flag.Bool("update", false, "rewrite testdata/cli golden files")

func runApp(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = command.Run(context.Background(), newApp(), append([]string{"flowcollect"}, args...), command.Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func readStream(t *testing.T, b []byte) []*flowpb.FlowMessage {
	t.Helper()
	r := framing.NewMessageReader(bytes.NewReader(b), framing.FormatAuto, 0, nil)
	var out []*flowpb.FlowMessage
	for {
		m := &flowpb.FlowMessage{}
		err := r.Read(m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.CloneVT()) // Read may alias its buffer
	}
}

var protocols = []flowgen.Protocol{flowgen.NetFlowV5, flowgen.NetFlowV9, flowgen.IPFIX, flowgen.SFlow}

// TestPcapGolden decodes flowgen captures of each protocol (IPv4 and IPv6,
// sampled) and compares the JSON output with the golden files record by
// record (EqualVT after parsing), and the record count with flowgen's
// ground truth.
func TestPcapGolden(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.String(), func(t *testing.T) {
			cfg := flowgen.Config{Seed: 7, Protocol: p, SamplingRate: 64, RecordsPerPacket: 5}
			if p != flowgen.NetFlowV5 {
				cfg.IPv6Ratio = 0.4
			}
			g, err := flowgen.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var packets [][]byte
			if tp := g.Templates(); tp != nil {
				packets = append(packets, tp)
			}
			want := 0
			for i := 0; i < 6; i++ {
				pkt, flows := g.Next()
				packets = append(packets, bytes.Clone(pkt))
				want += len(flows)
			}
			pcap := filepath.Join(t.TempDir(), "in.pcap")
			f, _ := os.Create(pcap)
			if err := flowgen.WritePcap(f, packets, netip.MustParseAddrPort("192.0.2.1:40000"), netip.AddrPortFrom(netip.MustParseAddr("192.0.2.100"), p.Port()), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			code, out, errs := runApp(t, "--metrics-listen", "", "--workers", "1", "--format", "json", "-r", pcap)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if !regexp.MustCompile(fmt.Sprintf(`flowcollect: read %d packets, %d records in \S+ \(\d+ records/s\), 0 decode errors`, len(packets), want)).MatchString(errs) {
				t.Fatalf("summary line: %q", errs)
			}
			golden := filepath.Join("testdata", "cli", p.String()+".golden.jsonl")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantB, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			got, exp := readStream(t, []byte(out)), readStream(t, wantB)
			if len(got) != want || len(exp) != want {
				t.Fatalf("got %d records, golden %d, flowgen %d", len(got), len(exp), want)
			}
			for i := range got {
				if !got[i].EqualVT(exp[i]) {
					t.Fatalf("record %d:\n got %v\nwant %v", i, got[i], exp[i])
				}
			}
			// Bin output carries the same records.
			code, bin, errs := runApp(t, "--metrics-listen", "", "--workers", "1", pcap)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			gotBin := readStream(t, []byte(bin))
			for i := range gotBin {
				if !gotBin[i].EqualVT(exp[i]) {
					t.Fatalf("bin record %d differs from JSON", i)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--listen", "udp://:2055"},
		{"--format", "xml"},
		{"--allow", "10.0.0.0/33"},
		{"--workers", "-1"},
		{"--mapping", "/nonexistent.yaml"},
		{"--rcvbuf", "-1"},
	} {
		if code, _, errs := runApp(t, append([]string{"--metrics-listen", ""}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
	if code, out, _ := runApp(t, "--help"); code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "FLOWCOLLECT_LISTEN") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	if code, _, errs := runApp(t, "--metrics-listen", "", "-r", "/nonexistent.pcap"); code != 1 || !strings.Contains(errs, "nonexistent") {
		t.Errorf("missing pcap: exit %d, %q", code, errs)
	}
}

// TestEPIPE: a closed downstream ends the tool quietly.
func TestEPIPE(t *testing.T) {
	g, _ := flowgen.New(flowgen.Config{Protocol: flowgen.NetFlowV5})
	var packets [][]byte
	for i := 0; i < 50; i++ {
		p, _ := g.Next()
		packets = append(packets, bytes.Clone(p))
	}
	pcap := filepath.Join(t.TempDir(), "in.pcap")
	f, _ := os.Create(pcap)
	flowgen.WritePcap(f, packets, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2055"), time.Unix(0, 0))
	f.Close()
	var errb bytes.Buffer
	code := command.Run(context.Background(), newApp(), []string{"flowcollect", "--metrics-listen", "", "-r", pcap},
		command.Streams{In: strings.NewReader(""), Out: epipeWriter{}, Err: &errb})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

type epipeWriter struct{}

func (epipeWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// --- tests of the built binary: signals, UDP, metrics ---

type proc struct {
	cmd     *exec.Cmd
	stdout  *tools.Output
	stderr  *tools.Output
	addrs   map[string]netip.AddrPort // listener URI -> bound address
	metrics string
}

var (
	listeningRe = regexp.MustCompile(`msg=listening uri="?([^" ]+)"? addr=(\S+)`)
	metricsRe   = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)
)

// start runs the binary and waits until it listens on every listener.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: &tools.Output{}, stderr: &tools.Output{}, addrs: map[string]netip.AddrPort{}}
	p.cmd = exec.Command(tools.Build(t, "."), args...)
	p.cmd.Stdout = p.stdout
	pr, pw := io.Pipe()
	p.cmd.Stderr = io.MultiWriter(p.stderr, pw)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	want := strings.Count(strings.Join(args, " "), "--listen")
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		n := 0
		for sc.Scan() {
			if m := listeningRe.FindStringSubmatch(sc.Text()); m != nil {
				p.addrs[m[1]] = netip.MustParseAddrPort(m[2])
				n++
			}
			if m := metricsRe.FindStringSubmatch(sc.Text()); m != nil {
				p.metrics = m[1]
			}
			if n == want {
				close(ready)
				io.Copy(io.Discard, pr)
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("not listening after 20s: %s", p.stderr.Bytes())
	}
	return p
}

func (p *proc) addr(t *testing.T, uri string) netip.AddrPort {
	a, ok := p.addrs[uri]
	if !ok {
		t.Fatalf("no listener %s in %v", uri, p.addrs)
	}
	if a.Addr().IsUnspecified() {
		a = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), a.Port())
	}
	return a
}

// stop sends SIGTERM and waits for exit code 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := tools.WaitExit(t, p.cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr.Bytes())
	}
}

func sendUDP(t *testing.T, to netip.AddrPort, packets [][]byte) {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, p := range packets {
		if _, err := conn.Write(p); err != nil {
			t.Fatal(err)
		}
		if i%200 == 199 {
			time.Sleep(time.Millisecond) // stay far below the socket buffer
		}
	}
}

// generate returns a template packet (nil for v5/sFlow) and n data packets
// with their ground-truth flows.
func generate(t *testing.T, p flowgen.Protocol, seed uint64, n int) (templates []byte, packets [][]byte, flows []flowgen.Flow) {
	g, err := flowgen.New(flowgen.Config{Seed: seed, Protocol: p, TemplateInterval: -1, IPv6Ratio: map[bool]float64{true: 0, false: 0.3}[p == flowgen.NetFlowV5]})
	if err != nil {
		t.Fatal(err)
	}
	templates = g.Templates()
	for i := 0; i < n; i++ {
		pkt, f := g.Next()
		packets = append(packets, bytes.Clone(pkt))
		for _, x := range f {
			x.ASPath, x.Communities = nil, nil
			flows = append(flows, x)
		}
	}
	return templates, packets, flows
}

func key(src, dst netip.Addr, sp, dp uint32, b uint64) string {
	return fmt.Sprintf("%s:%d>%s:%d/%d", src, sp, dst, dp, b)
}

func checkFlows(t *testing.T, got []*flowpb.FlowMessage, want []flowgen.Flow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	m := map[string]int{}
	for _, f := range want {
		m[key(f.SrcAddr, f.DstAddr, uint32(f.SrcPort), uint32(f.DstPort), f.Bytes)]++
	}
	for _, r := range got {
		s, _ := netip.AddrFromSlice(r.SrcAddr)
		d, _ := netip.AddrFromSlice(r.DstAddr)
		dp := r.DstPort
		if (r.Proto == 1 || r.Proto == 58) && dp == 0 { // sFlow: type and code from the header
			dp = r.IcmpType<<8 | r.IcmpCode
		}
		k := key(s, d, r.SrcPort, dp, r.Bytes)
		if m[k] == 0 {
			t.Fatalf("record %s was not sent: %v", k, r)
		}
		m[k]--
	}
}

// TestUDPEndToEndDrainOnSIGTERM sends every protocol over loopback, the
// v9/IPFIX templates from another source port than the data (a router
// changing port keeps its templates), then SIGTERM at once: every flow of
// flowgen's ground truth must be in the output, and the exposition must
// pass promtool.
func TestUDPEndToEndDrainOnSIGTERM(t *testing.T) {
	p := start(t, "--listen", "netflow://127.0.0.1:0?count=2", "--listen", "ipfix://[::1]:0", "--listen", "sflow://127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0", "--workers", "2")
	var all []flowgen.Flow
	for _, tc := range []struct {
		proto flowgen.Protocol
		uri   string
	}{
		{flowgen.NetFlowV5, "netflow://127.0.0.1:0?count=2"},
		{flowgen.NetFlowV9, "netflow://127.0.0.1:0?count=2"},
		{flowgen.IPFIX, "ipfix://[::1]:0"},
		{flowgen.SFlow, "sflow://127.0.0.1:0"},
	} {
		tmpl, packets, flows := generate(t, tc.proto, 11, 300)
		to := p.addr(t, tc.uri)
		if tmpl != nil {
			sendUDP(t, to, [][]byte{tmpl}) // from one source port
			time.Sleep(50 * time.Millisecond)
		}
		sendUDP(t, to, packets) // the data from another
		all = append(all, flows...)
	}
	p.waitMetric(t, "flowcollect_packets_received_total{")
	checkMetrics(t, p)
	p.stop(t)
	checkFlows(t, readStream(t, p.stdout.Bytes()), all)
}

func checkMetrics(t *testing.T, p *proc) {
	t.Helper()
	if p.metrics == "" {
		t.Fatal("metrics address not logged")
	}
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"flowcollect_packets_received_total{", "flowcollect_kernel_drops_total{", "flowcollect_templates ", "flowcollect_socket_receive_queue_bytes{"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("exposition lacks %s", want)
		}
	}
	promtool, ok := tools.Optional(t, "promtool")
	if !ok {
		t.Log("promtool missing: lint skipped")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestSIGHUPReopen: after the file is moved away and SIGHUP, new records
// go to a new file at the path; nothing is lost across the two.
func TestSIGHUPReopen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "flows.bin")
	p := start(t, "--listen", "netflow://127.0.0.1:0", "--metrics-listen", "", "--output", out, "--flush-interval", "10ms")
	to := p.addr(t, "netflow://127.0.0.1:0")
	_, first, flows1 := generate(t, flowgen.NetFlowV5, 1, 10)
	sendUDP(t, to, first)
	waitSize(t, out, len(flows1))
	if err := os.Rename(out, out+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFile(t, out)
	_, second, flows2 := generate(t, flowgen.NetFlowV5, 2, 10)
	sendUDP(t, to, second)
	p.stop(t)
	b1, _ := os.ReadFile(out + ".1")
	b2, _ := os.ReadFile(out)
	checkFlows(t, readStream(t, b1), flows1)
	checkFlows(t, readStream(t, b2), flows2)
}

func waitSize(t *testing.T, path string, records int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		if len(readStream(t, b)) >= records {
			return
		}
	}
	t.Fatalf("%s: fewer than %d records after 10s", path, records)
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	t.Fatalf("%s not reopened", path)
}

// TestTemplatesFile: templates learnt by one run are saved at exit and let
// the next run decode data at once, before any template packet.
func TestTemplatesFile(t *testing.T) {
	tf := filepath.Join(t.TempDir(), "templates.json")
	tmpl, packets, flows := generate(t, flowgen.IPFIX, 3, 20)
	p := start(t, "--listen", "ipfix://127.0.0.1:0", "--metrics-listen", "", "--templates-file", tf)
	sendUDP(t, p.addr(t, "ipfix://127.0.0.1:0"), [][]byte{tmpl})
	time.Sleep(100 * time.Millisecond)
	p.stop(t)
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("templates not saved: %v", err)
	}
	p = start(t, "--listen", "ipfix://127.0.0.1:0", "--metrics-listen", "", "--templates-file", tf)
	sendUDP(t, p.addr(t, "ipfix://127.0.0.1:0"), packets)
	p.stop(t)
	checkFlows(t, readStream(t, p.stdout.Bytes()), flows)
}

// TestAllowListBinary: an exporter outside --allow is dropped and counted.
func TestAllowListBinary(t *testing.T) {
	p := start(t, "--listen", "netflow://127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--allow", "10.0.0.0/8,192.0.2.1")
	_, packets, _ := generate(t, flowgen.NetFlowV5, 1, 5)
	sendUDP(t, p.addr(t, "netflow://127.0.0.1:0"), packets)
	want := `flowcollect_packets_dropped_total{reason="not_allowed"} 5`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte(want)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in\n%s", want, body)
		}
	}
	p.stop(t)
	if n := len(p.stdout.Bytes()); n != 0 {
		t.Fatalf("%d bytes written from a refused exporter", n)
	}
	if !strings.Contains(string(p.stderr.Bytes()), "reason=not_allowed") {
		t.Fatalf("drop not explained in the log:\n%s", p.stderr.Bytes())
	}
}

// TestFlagsAfterFiles: `flowcollect -r a.pcap b.pcap --format json` reads
// both captures and takes --format as a flag, not a file (issue 17).
func TestFlagsAfterFiles(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	want := 0
	for i := range 2 {
		_, packets, flows := generate(t, flowgen.NetFlowV5, uint64(i+1), 3)
		want += len(flows)
		p := filepath.Join(dir, fmt.Sprintf("%d.pcap", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := flowgen.WritePcap(f, packets, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2055"), time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	code, out, errs := runApp(t, "-r", paths[0], paths[1], "--format", "json", "--metrics-listen", "")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if n := strings.Count(out, "\n"); n != want || !strings.HasPrefix(out, "{") {
		t.Fatalf("%d JSON lines, want %d: %.200s", n, want, out)
	}
}
