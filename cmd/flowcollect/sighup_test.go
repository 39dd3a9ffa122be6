package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// sendPaced sends packets at about rate packets/s from one socket; it
// reports its error instead of failing the test, as it runs beside it.
func sendPaced(to netip.AddrPort, packets [][]byte, rate int) error {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return err
	}
	defer conn.Close()
	start := time.Now()
	for i, p := range packets {
		if _, err := conn.Write(p); err != nil {
			return err
		}
		if i%10 == 9 {
			if ahead := time.Duration(i+1)*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	return nil
}

func (p *proc) waitLog(t *testing.T, what string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.stderr.Count(what) < n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("%q not logged %d times (process exited: %v):\n%s", what, n, p.cmd.ProcessState != nil, p.stderr.Bytes())
		}
	}
}

// waitMetric waits until the exposition contains text.
func (p *proc) waitMetric(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte(text)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the exposition after 10s:\n%s", text, body)
		}
	}
}

func (p *proc) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// TestSIGHUPUnderLoad sends NetFlow v5 at 10 000 packets/s (300 000
// records/s) while SIGHUP comes again and again: with --output the file is
// moved away before every other SIGHUP, as logrotate does, and reopened;
// on stdout SIGHUP is logged. The process lives through every one, and
// once SIGTERM has drained it every record sent is in the files (or on
// stdout), with no kernel drop: records in = records out.
func TestSIGHUPUnderLoad(t *testing.T) {
	for _, toFile := range []bool{true, false} {
		t.Run(map[bool]string{true: "output-file", false: "stdout"}[toFile], func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "flows.bin")
			args := []string{"--listen", "netflow://127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--flush-interval", "10ms"}
			logged := "output is stdout: nothing to reopen"
			if toFile {
				args = append(args, "--output", out)
				logged = "output reopened"
			}
			p := start(t, args...)
			_, packets, flows := generate(t, flowgen.NetFlowV5, 5, 4000)
			sent := make(chan error, 1)
			go func() { sent <- sendPaced(p.addr(t, "netflow://127.0.0.1:0"), packets, 10000) }()
			hups := 0
		load:
			for {
				select {
				case err := <-sent:
					if err != nil {
						t.Fatal(err)
					}
					break load
				case <-time.After(15 * time.Millisecond):
				}
				if toFile && hups%2 == 0 {
					if err := os.Rename(out, fmt.Sprintf("%s.%d", out, hups)); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				hups++
				p.waitLog(t, logged, hups) // alive, and each SIGHUP handled
			}
			if hups < 5 {
				t.Fatalf("only %d SIGHUPs during the load", hups)
			}
			// Every datagram read: then SIGTERM drains the rest.
			for deadline := time.Now().Add(10 * time.Second); p.metric(t, `flowcollect_records_total{exporter="127.0.0.1",protocol="netflow_v5"}`) < float64(len(flows)); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					break
				}
			}
			if drops := p.metric(t, `flowcollect_kernel_drops_total{listener="netflow://127.0.0.1:0"}`); drops != 0 {
				t.Errorf("%v kernel drops", drops)
			}
			p.stop(t)
			var all []byte
			if toFile {
				files, _ := filepath.Glob(out + "*")
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err != nil {
						t.Fatal(err)
					}
					all = append(all, b...)
				}
				if len(files) != hups/2+1+hups%2 {
					t.Errorf("%d files for %d SIGHUPs", len(files), hups)
				}
			} else {
				all = p.stdout.Bytes()
			}
			checkFlows(t, readStream(t, all), flows)
			t.Logf("%d SIGHUPs, %d records in, %d out", hups, len(flows), len(readStream(t, all)))
		})
	}
}

var summaryRe = regexp.MustCompile(`flowcollect: read (\d+) packets, (\d+) records`)

// TestReadStopsWhenOutputCloses: `flowcollect -r big.pcap | head` ends as
// soon as head has gone, with exit 0, instead of decoding the whole file
// for nobody. The capture takes seconds to decode in full; with head the
// reading stops within a few hundred packets.
func TestReadStopsWhenOutputCloses(t *testing.T) {
	bin := tools.Build(t, ".")
	bash := tools.Require(t, "bash")
	tools.Require(t, "head")
	const packets = 40000
	pcap := filepath.Join(t.TempDir(), "big.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	pw, err := flowgen.NewPcapWriter(bw, netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.100:4739"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := flowgen.New(flowgen.Config{Seed: 3, Protocol: flowgen.IPFIX})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := pw.WritePacket(g.Templates(), ts); err != nil {
		t.Fatal(err)
	}
	for i := range packets {
		pkt, _ := g.Next()
		if err := pw.WritePacket(pkt, ts.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	run := func(pipeline string) (code int, stderr string, took time.Duration) {
		t.Helper()
		errFile := filepath.Join(t.TempDir(), "stderr")
		start := time.Now()
		out, err := exec.Command(bash, "-c", fmt.Sprintf("%s --metrics-listen '' -r %s 2>%s %s; echo ${PIPESTATUS[0]}", bin, pcap, errFile, pipeline)).Output()
		took = time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", pipeline, err)
		}
		b, _ := os.ReadFile(errFile)
		code, _ = strconv.Atoi(strings.TrimSpace(string(out[bytes.LastIndexByte(bytes.TrimSpace(out), '\n')+1:])))
		return code, string(b), took
	}
	readCount := func(stderr string) int {
		m := summaryRe.FindStringSubmatch(stderr)
		if m == nil {
			t.Fatalf("no summary line: %q", stderr)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}

	code, stderr, full := run(">/dev/null")
	if code != 0 || readCount(stderr) != packets+1 {
		t.Fatalf("whole file: exit %d, %s", code, stderr)
	}
	code, stderr, short := run("| head -c 1000 >/dev/null")
	if code != 0 {
		t.Fatalf("| head: exit %d, %s", code, stderr)
	}
	read := readCount(stderr)
	t.Logf("whole file: %d packets in %s; | head: %d packets in %s", packets+1, full.Round(time.Millisecond), read, short.Round(time.Millisecond))
	if read > packets/10 {
		t.Errorf("read %d of %d packets after head had gone", read, packets+1)
	}
	if short > full/2 {
		t.Errorf("| head took %s, the whole file %s", short, full)
	}
	if strings.Contains(stderr, "level=ERROR") || strings.Contains(stderr, "broken pipe") {
		t.Errorf("a closed pipe is no error: %s", stderr)
	}
}
