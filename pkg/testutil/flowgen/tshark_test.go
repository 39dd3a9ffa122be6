package flowgen

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// runTshark runs tshark with args and returns its stdout lines, one per
// frame.
func runTshark(t *testing.T, tshark string, args ...string) []string {
	t.Helper()
	cmd := exec.Command(tshark, args...)
	cmd.Env = append(os.Environ(), "TZ=UTC", "HOME="+t.TempDir()) // no user preferences
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	out := strings.TrimRight(stdout.String(), "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// TestTshark has Wireshark's dissectors decode the packets: no malformed
// packet or error, and the addresses, ports, bytes, packets, times and
// sampling rates of the ground truth.
func TestTshark(t *testing.T) {
	tshark := tools.Require(t, "tshark")
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g, c := generate(t, tc.cfg, 12)
			cfg := g.Config()
			src, dst := netip.MustParseAddrPort("192.0.2.1:50000"), netip.AddrPortFrom(netip.MustParseAddr("192.0.2.100"), cfg.Protocol.Port())
			if cfg.Exporter.Is6() {
				src = netip.AddrPortFrom(cfg.Exporter, 50000)
				dst = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::100"), cfg.Protocol.Port())
			}
			file := filepath.Join(t.TempDir(), tc.name+".pcap")
			var buf bytes.Buffer
			if err := WritePcap(&buf, c.pkts, src, dst, cfg.BaseTime); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			dissector := "cflow"
			if cfg.Protocol == SFlow {
				dissector = "sflow"
			}
			common := []string{"-r", file, "-d", fmt.Sprintf("udp.port==%d,%s", dst.Port(), dissector), "-o", "udp.check_checksum:TRUE"}

			// One run: the dissection's health in the first two columns,
			// then the values to compare.
			args := append(common, "-T", "fields", "-E", "aggregator=|", "-e", "_ws.malformed", "-e", "_ws.expert.severity")
			if cfg.Protocol == SFlow {
				args = append(args, "-e", "sflow_245.numsamples", "-e", "ip.src", "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "udp.dstport",
					"-e", "sflow_245.header.frame_length", "-e", "sflow.flow_sample.sampling_rate")
			} else {
				args = append(args, "-e", "cflow.count", "-e", "cflow.srcaddr", "-e", "cflow.dstaddrv6", "-e", "cflow.srcport", "-e", "cflow.dstport",
					"-e", "cflow.octets", "-e", "cflow.packets", "-e", "cflow.timestart", "-e", "cflow.abstimeend", "-e", "cflow.sampling_interval")
			}
			lines := runTshark(t, tshark, args...)
			if len(lines) != len(c.pkts) {
				t.Fatalf("tshark decoded %d packets, want %d", len(lines), len(c.pkts))
			}
			for i, line := range lines {
				cols := strings.Split(line, "\t")
				if cols[0] != "" {
					t.Fatalf("packet %d: tshark reports a malformed packet", i)
				}
				for _, sev := range strings.Split(cols[1], "|") {
					// Expert severities: chat 0x200000, note 0x400000, warning 0x600000, error 0x800000.
					if v, _ := strconv.ParseUint(sev, 0, 32); v >= 0x800000 {
						t.Fatalf("packet %d: tshark reports an error (expert severities %s)", i, cols[1])
					}
				}
				lines[i] = strings.Join(cols[2:], "\t")
			}
			if cfg.Protocol == SFlow {
				checkTsharkSFlow(t, lines, c, dst)
			} else {
				checkTsharkCflow(t, lines, c, cfg)
			}
		})
	}
}

func checkTsharkCflow(t *testing.T, lines []string, c capture, cfg Config) {
	t.Helper()
	bootMs := cfg.BaseTime.UnixMilli() - 3600_000
	for i, line := range lines {
		cols := strings.Split(line, "\t")
		flows := c.flows[i]
		if len(flows) == 0 { // templates: the sampling rate alone
			if cfg.SamplingRate > 0 && cfg.Protocol != NetFlowV5 && cols[9] != strconv.Itoa(int(cfg.SamplingRate)) {
				t.Fatalf("packet %d: sampling interval %q", i, cols[9])
			}
			continue
		}
		want := make([][]string, 9)
		want[0] = []string{strconv.Itoa(len(flows))}
		if cfg.Protocol == IPFIX {
			want[0] = nil // IPFIX has no count
		}
		for _, f := range flows {
			if f.SrcAddr.Is4() {
				want[1] = append(want[1], f.SrcAddr.String())
			} else {
				want[2] = append(want[2], f.DstAddr.String())
			}
			want[3] = append(want[3], strconv.Itoa(int(f.SrcPort)))
			want[4] = append(want[4], strconv.Itoa(int(f.DstPort)))
			want[5] = append(want[5], strconv.FormatUint(f.Bytes, 10))
			want[6] = append(want[6], strconv.FormatUint(f.Packets, 10))
			if cfg.Protocol == IPFIX {
				want[8] = append(want[8], f.End.Format("Jan _2, 2006 15:04:05.000000000 UTC"))
			} else {
				ms := f.Start.UnixMilli() - bootMs
				want[7] = append(want[7], fmt.Sprintf("%d.%03d000000", ms/1000, ms%1000))
			}
		}
		for col, w := range want {
			if got := cols[col]; got != strings.Join(w, "|") {
				t.Fatalf("packet %d, column %d: tshark says\n%s\nwant\n%s", i, col, got, strings.Join(w, "|"))
			}
		}
	}
}

func checkTsharkSFlow(t *testing.T, lines []string, c capture, dst netip.AddrPort) {
	t.Helper()
	for i, line := range lines {
		cols := strings.Split(line, "\t")
		flows := c.flows[i]
		want := make([][]string, 7)
		want[0] = []string{strconv.Itoa(len(flows) + 1)}
		// The datagram's own IP and UDP headers come first.
		if dst.Addr().Is4() {
			want[1] = []string{"192.0.2.1"}
		} else {
			want[2] = []string{dst.Addr().String()}
		}
		want[4] = []string{strconv.Itoa(int(dst.Port()))}
		for _, f := range flows {
			if f.SrcAddr.Is4() {
				want[1] = append(want[1], f.SrcAddr.String())
			} else {
				want[2] = append(want[2], f.DstAddr.String())
			}
			switch f.Proto {
			case 6:
				want[3] = append(want[3], strconv.Itoa(int(f.SrcPort)))
			case 17:
				want[4] = append(want[4], strconv.Itoa(int(f.DstPort)))
			}
			want[5] = append(want[5], strconv.FormatUint(f.Bytes, 10))
			want[6] = append(want[6], strconv.Itoa(int(f.SamplingRate)))
		}
		for col, w := range want {
			if got := cols[col]; got != strings.Join(w, "|") {
				t.Fatalf("datagram %d, column %d: tshark says\n%s\nwant\n%s", i, col, got, strings.Join(w, "|"))
			}
		}
	}
}
