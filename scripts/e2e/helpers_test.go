package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// proc is a started binary whose exit is awaited in the background.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *tools.Output // stderr, and stdout when it is not data
	done chan struct{}
	err  error
}

// start starts cmd (whose Stdin/Stdout the caller may have set) with its
// stderr, and stdout when unset, captured. The process is killed when the
// test ends if it is still running, and its log is printed if the test
// failed.
func start(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, log: &tools.Output{}, done: make(chan struct{})}
	cmd.Stderr = p.log
	if cmd.Stdout == nil {
		cmd.Stdout = p.log
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s log:\n%s", name, tail(p.log.String(), 4000))
		}
	})
	return p
}

// wait waits for the process to exit, at most timeout, and returns its
// exit code (-1 when it had to be killed).
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Errorf("%s did not exit within %v; killing it", p.name, timeout)
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Errorf("%s: %v", p.name, p.err)
	return -1
}

func (p *proc) signal(sig os.Signal) { _ = p.cmd.Process.Signal(sig) }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// freeTCP returns a free loopback TCP address.
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freeUDP returns a free loopback UDP port.
func freeUDP(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startBroker starts the dev broker on a free port with its data in a
// temporary directory and returns its address once it accepts connections.
func startBroker(t *testing.T, topic string, partitions int) string {
	t.Helper()
	cmd := exec.Command(bin("devbroker"), "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "kafka"),
		"--topic", topic, "--partitions", strconv.Itoa(partitions))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := start(t, "devbroker", cmd)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.log.Write([]byte(sc.Text() + "\n"))
			if a, ok := strings.CutPrefix(sc.Text(), "devbroker: listening on "); ok {
				addr <- strings.TrimSpace(a)
			}
		}
	}()
	t.Cleanup(func() { p.signal(syscall.SIGTERM) })
	select {
	case a := <-addr:
		return a
	case <-time.After(20 * time.Second):
		t.Fatalf("devbroker did not start\n%s", p.log.String())
	}
	return ""
}

// httpGet returns the body of a 200 response, or "".
func httpGet(u string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

// metric sums the samples of an exposition whose series text starts with
// prefix (a name, or a name and the start of its labels).
func metric(exposition, prefix string) float64 {
	var sum float64
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, prefix) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(prefix):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{' && rest[0] != ',' && rest[0] != '}') {
			continue // a longer metric name
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// startPrometheus runs Debian's prometheus in the foreground, scraping
// targets every second, and returns its listen address once ready.
func startPrometheus(t *testing.T, targets ...string) string {
	t.Helper()
	prom := interop.Require(t, "prometheus")
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for _, tg := range targets {
		name, addr, _ := strings.Cut(tg, "=")
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n", name, addr)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeTCP(t)
	p := start(t, "prometheus", exec.Command(prom, "--config.file="+path,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr))
	t.Cleanup(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	})
	if !waitFor(20*time.Second, func() bool { return httpGet("http://"+addr+"/-/ready") != "" }) {
		t.Fatalf("prometheus not ready\n%s", p.log.String())
	}
	return addr
}

// promVector runs an instant query and returns the samples keyed by their
// labels rendered as "k=v,k=v" in the order of by.
func promVector(addr, query string, by ...string) (map[string]float64, error) {
	body := httpGet("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if body == "" {
		return nil, fmt.Errorf("query %s failed", query)
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		var k []string
		for _, l := range by {
			k = append(k, l+"="+s.Metric[l])
		}
		text, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, err
		}
		out[strings.Join(k, ",")] = v
	}
	return out, nil
}

// runSoftflowd has softflowd export a pcap (with its timestamps, -a) as
// NetFlow version 5, 9 or IPFIX (10) to addr.
func runSoftflowd(t *testing.T, pcap, addr string, version int) error {
	bin, err := exec.LookPath("softflowd")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), interop.ToolTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-r", pcap, "-n", addr, "-v", strconv.Itoa(version), "-a", "-D",
		"-p", filepath.Join(t.TempDir(), "softflowd.pid")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("softflowd -v %d: %v\n%s", version, err, tail(string(out), 2000))
	}
	return nil
}

// runPmacctd has pmacctd read a pcap with one export plugin configured by
// config (plugins, receiver, ...). pmacctd keeps running after the file
// (pcap_savefile_wait), so it is interrupted once it logs the end of the
// file; SIGINT to its process group makes the plugin flush.
func runPmacctd(t *testing.T, pcap, config string) error {
	bin, err := exec.LookPath("pmacctd")
	if err != nil {
		return err
	}
	conf := filepath.Join(t.TempDir(), "pmacctd.conf")
	text := fmt.Sprintf("daemonize: false\npcap_savefile: %s\npcap_savefile_wait: true\n"+
		"aggregate: src_host, dst_host, src_port, dst_port, proto, tos\n%s\n", pcap, config)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return err
	}
	_, err = interop.RunPmacctd(bin, conf, time.Second) // the core hands the last flows to the plugin through a pipe
	return err
}

// kcatRecords reads every record of topic with Debian's kcat (librdkafka,
// an independent client) and decodes each value, which must be exactly
// one varint-framed FlowMessage.
func kcatRecords(t *testing.T, broker, topic string) []*flowpb.FlowMessage {
	t.Helper()
	kcat := interop.Require(t, "kcat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Each record as "<value length>:<value>", so that record boundaries
	// are kcat's, not re-derived from the frames.
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", broker, "-t", topic, "-e", "-q", "-f", "%S:%s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.String())
	}
	var msgs []*flowpb.FlowMessage
	for len(out) > 0 {
		n, rest, ok := bytes.Cut(out, []byte(":"))
		size, err := strconv.Atoi(string(n))
		if !ok || err != nil || size > len(rest) {
			t.Fatalf("kcat output: bad record header at %d", len(msgs))
		}
		value := rest[:size]
		out = rest[size:]
		r := framing.NewReader(bytes.NewReader(value), framing.DefaultMaxSize)
		frame, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", len(msgs), err)
		}
		m := &flowpb.FlowMessage{}
		if err := m.UnmarshalVT(frame); err != nil {
			t.Fatalf("record %d: %v", len(msgs), err)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("record %d: value holds more than one frame (%v)", len(msgs), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}
