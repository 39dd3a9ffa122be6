// Package interop runs real exporters (softflowd, pmacctd, nfdump) and an
// independent decoder (tshark) on loopback for tests, so that decoders are
// checked against what real tools send and how another tool reads it.
//
// Every helper takes a testing.TB, bounds each tool run with a timeout and
// cleans up after itself. A missing tool skips the test, or fails it when
// the CI environment variable is set (see Require).
package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// ToolTimeout bounds every tool run.
const ToolTimeout = 60 * time.Second

// quiet is how long a listener must stay silent after the exporter exited
// before the capture is considered complete.
const quiet = 300 * time.Millisecond

// Require is tools.Require: the tool's path, or the test skipped (failed
// when the CI environment variable is set).
func Require(t testing.TB, tool string) string {
	t.Helper()
	return tools.Require(t, tool)
}

// Collector receives UDP datagrams on a loopback port.
type Collector struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	last time.Time
	done chan struct{}
	fwd  *net.UDPConn // Relay: where each datagram is sent on
}

// Listen starts a Collector on 127.0.0.1 and an ephemeral port; it is
// closed when the test ends.
func Listen(t testing.TB) *Collector {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("interop: listen: %v", err)
	}
	_ = conn.SetReadBuffer(8 << 20)
	c := &Collector{conn: conn, done: make(chan struct{}), last: time.Now()}
	go c.loop()
	t.Cleanup(func() { c.conn.Close(); <-c.done })
	return c
}

// Relay is a Collector that also sends every datagram on, unchanged, from
// the loopback address source (127.0.0.0/8 holds many) to 127.0.0.1:port.
// Several exporters on one host thus reach a collector as distinct
// exporters, and the test keeps what each one sent.
func Relay(t testing.TB, source netip.Addr, port int) *Collector {
	t.Helper()
	fwd, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(source, 0)),
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("interop: relay: %v", err)
	}
	t.Cleanup(func() { fwd.Close() }) // runs after the listener's cleanup has stopped loop
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("interop: listen: %v", err)
	}
	_ = conn.SetReadBuffer(8 << 20)
	c := &Collector{conn: conn, done: make(chan struct{}), last: time.Now(), fwd: fwd}
	go c.loop()
	t.Cleanup(func() { c.conn.Close(); <-c.done })
	return c
}

func (c *Collector) loop() {
	defer close(c.done)
	buf := make([]byte, 65535)
	for {
		n, _, err := c.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.got = append(c.got, bytes.Clone(buf[:n]))
		c.last = time.Now()
		c.mu.Unlock()
		if c.fwd != nil {
			_, _ = c.fwd.Write(buf[:n])
		}
	}
}

// Port is the UDP port the collector listens on.
func (c *Collector) Port() int { return c.conn.LocalAddr().(*net.UDPAddr).Port }

// Addr is "127.0.0.1:PORT".
func (c *Collector) Addr() string { return fmt.Sprintf("127.0.0.1:%d", c.Port()) }

// Wait waits until no datagram arrived for a quiet period (bounded by
// ToolTimeout), then returns the datagrams received so far, in order.
func (c *Collector) Wait() [][]byte {
	deadline := time.Now().Add(ToolTimeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		idle := time.Since(c.last)
		c.mu.Unlock()
		if idle >= quiet {
			break
		}
		time.Sleep(quiet / 4)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.got...)
}

// Softflowd runs softflowd on a pcap file, exporting NetFlow version 5, 9
// or 10 (IPFIX) with the pcap's timestamps (-a), and returns the datagrams
// it sent. extra are further softflowd flags (e.g. "-b" for IPFIX biflows,
// "-A", "milli" for the absolute time form, "-s", "10" for sampling).
func Softflowd(t testing.TB, pcap string, version int, extra ...string) [][]byte {
	t.Helper()
	bin := Require(t, "softflowd")
	c := Listen(t)
	dir := t.TempDir()
	args := []string{"-r", pcap, "-n", c.Addr(), "-v", strconv.Itoa(version), "-a", "-D",
		"-p", filepath.Join(dir, "softflowd.pid")}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("interop: softflowd %s: %v\n%s", strings.Join(args, " "), err, tail(out.String()))
	}
	got := c.Wait()
	if len(got) == 0 {
		t.Fatalf("interop: softflowd sent nothing\n%s", tail(out.String()))
	}
	return got
}

// Pmacctd runs pmacctd on a pcap file with one export plugin, "nfprobe"
// (version 5, 9 or 10) or "sfprobe" (version ignored), and returns the
// datagrams it sent. extraConfig is appended to the generated config (e.g.
// "pmacctd_ext_sampling_rate: 10"); the default aggregation is the full
// 5-tuple plus tos, which extraConfig may override with its own
// "aggregate:" line.
//
// pmacctd keeps running after the file (pcap_savefile_wait), so it is
// interrupted once it logs the end of the file; SIGINT makes it flush.
func Pmacctd(t testing.TB, pcap, plugin string, version int, extraConfig string) [][]byte {
	t.Helper()
	bin := Require(t, "pmacctd")
	c := Listen(t)
	dir := t.TempDir()
	abs, err := filepath.Abs(pcap)
	if err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "daemonize: false\npcap_savefile: %s\npcap_savefile_wait: true\nplugins: %s\n", abs, plugin)
	switch plugin {
	case "nfprobe":
		fmt.Fprintf(&cfg, "nfprobe_receiver: %s\nnfprobe_version: %d\n", c.Addr(), version)
	case "sfprobe":
		fmt.Fprintf(&cfg, "sfprobe_receiver: %s\n", c.Addr())
	default:
		t.Fatalf("interop: unknown pmacctd plugin %q", plugin)
	}
	if !strings.Contains(extraConfig, "aggregate:") {
		cfg.WriteString("aggregate: src_host, dst_host, src_port, dst_port, proto, tos\n")
	}
	cfg.WriteString(extraConfig)
	cfg.WriteString("\n")
	conf := filepath.Join(dir, "pmacctd.conf")
	if err := os.WriteFile(conf, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	// The core hands the last flows to the plugin through a pipe.
	log, err := RunPmacctd(bin, conf, time.Second)
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	got := c.Wait()
	if len(got) == 0 {
		t.Fatalf("interop: pmacctd sent nothing\nconfig:\n%s\n%s", cfg.String(), tail(log))
	}
	return got
}

// RunPmacctd runs pmacctd with the configuration file conf, which reads a
// pcap_savefile with pcap_savefile_wait: true. pmacctd keeps running after
// the file, so once it logs the end of the file RunPmacctd lets its plugins
// work for settle, then sends SIGINT to its process group (which makes the
// plugins flush) and waits for it, at most ToolTimeout in all. It returns
// pmacctd's log. It reports through its error, not a testing.TB, so that
// tests may run several exporters in goroutines.
func RunPmacctd(bin, conf string, settle time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", conf)
	// Own process group, so that the plugin processes get the signal too.
	ownGroup(cmd)
	cmd.Cancel = func() error { return signalGroup(cmd, syscall.SIGKILL) }
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("pmacctd: %w", err)
	}
	var log bytes.Buffer
	finished := make(chan struct{})
	scanned := make(chan struct{}) // log is only read once the scanner is done with it
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "finished reading PCAP") {
				once = true
				close(finished)
			}
		}
		if !once {
			close(finished)
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	time.Sleep(settle)
	_ = signalGroup(cmd, syscall.SIGINT)
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		<-waited
		err = fmt.Errorf("pmacctd did not stop within %v", ToolTimeout)
	}
	<-scanned
	if err != nil {
		return log.String(), fmt.Errorf("%w\n%s", err, tail(log.String()))
	}
	return log.String(), nil
}

// Nfreplay builds flows from a pcap with nfpcapd and exports them with
// nfreplay as NetFlow version 5 or 9, returning the datagrams sent.
func Nfreplay(t testing.TB, pcap string, version int) [][]byte {
	t.Helper()
	nfpcapd := Require(t, "nfpcapd")
	nfreplay := Require(t, "nfreplay")
	c := Listen(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, nfpcapd, "-r", pcap, "-w", dir).CombinedOutput(); err != nil {
		t.Fatalf("interop: nfpcapd: %v\n%s", err, tail(string(out)))
	}
	var files []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), "nfcapd.") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatalf("interop: nfpcapd wrote no nfcapd file in %s", dir)
	}
	for _, f := range files {
		out, err := exec.CommandContext(ctx, nfreplay, "-v", strconv.Itoa(version), "-H", "127.0.0.1",
			"-p", strconv.Itoa(c.Port()), "-r", f).CombinedOutput()
		if err != nil {
			t.Fatalf("interop: nfreplay: %v\n%s", err, tail(string(out)))
		}
	}
	got := c.Wait()
	if len(got) == 0 {
		t.Fatal("interop: nfreplay sent nothing")
	}
	return got
}

// Loopback addresses WritePcap puts on its frames.
var (
	PcapExporter  = netip.MustParseAddrPort("127.0.0.1:40000")
	pcapCollector = netip.MustParseAddr("127.0.0.1")
	pcapEpoch     = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
)

// WritePcap writes datagrams as Ethernet/IPv4/UDP frames from
// PcapExporter to 127.0.0.1:dstPort, one millisecond apart, so that the
// export packets can be kept as fixtures and read by tshark.
func WritePcap(path string, datagrams [][]byte, dstPort int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("interop: %w", err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return fmt.Errorf("interop: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	for i, d := range datagrams {
		eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, Id: uint16(i),
			SrcIP: PcapExporter.Addr().AsSlice(), DstIP: pcapCollector.AsSlice()}
		udp := &layers.UDP{SrcPort: layers.UDPPort(PcapExporter.Port()), DstPort: layers.UDPPort(dstPort)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			f.Close()
			return fmt.Errorf("interop: %w", err)
		}
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(d)); err != nil {
			f.Close()
			return fmt.Errorf("interop: datagram %d: %w", i, err)
		}
		ts := pcapEpoch.Add(time.Duration(i) * time.Millisecond)
		data := buf.Bytes()
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: len(data)}, data); err != nil {
			f.Close()
			return fmt.Errorf("interop: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("interop: %w", err)
	}
	return nil
}

// Datagram is a UDP payload read from a pcap.
type Datagram struct {
	Src, Dst netip.AddrPort
	Time     time.Time
	Data     []byte
}

// ReadPcap returns the UDP datagrams of a pcap or pcapng file in order.
func ReadPcap(path string) ([]Datagram, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	type source interface {
		ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	}
	var src source
	var link layers.LinkType
	if r, err := pcapgo.NewReader(bytes.NewReader(raw)); err == nil {
		src, link = r, r.LinkType()
	} else if r, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions); err == nil {
		src, link = r, r.LinkType()
	} else {
		return nil, fmt.Errorf("interop: %s: neither pcap nor pcapng", path)
	}
	var out []Datagram
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("interop: %s: %w", path, err)
		}
		pkt := gopacket.NewPacket(data, link, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			continue
		}
		var sa, da netip.Addr
		switch ip := pkt.NetworkLayer().(type) {
		case *layers.IPv4:
			sa, _ = netip.AddrFromSlice(ip.SrcIP)
			da, _ = netip.AddrFromSlice(ip.DstIP)
		case *layers.IPv6:
			sa, _ = netip.AddrFromSlice(ip.SrcIP)
			da, _ = netip.AddrFromSlice(ip.DstIP)
		}
		out = append(out, Datagram{
			Src:  netip.AddrPortFrom(sa, uint16(udp.SrcPort)),
			Dst:  netip.AddrPortFrom(da, uint16(udp.DstPort)),
			Time: ci.Timestamp,
			Data: bytes.Clone(udp.Payload),
		})
	}
}

// Tshark decodes the UDP datagrams to port in a pcap with tshark as
// decodeAs ("cflow" for NetFlow/IPFIX, "sflow") and returns one row per
// flow record: tshark lists the records of a packet as repeated
// occurrences of each field, and row i of a packet holds the i-th
// occurrence of every field (a field absent from some records of a
// packet therefore shifts; ask for fields every record has). Missing
// fields are "".
func Tshark(t testing.TB, pcapPath, decodeAs string, port int, fields ...string) []map[string]string {
	t.Helper()
	bin := Require(t, "tshark")
	const agg = "\x1e" // record separator: values may contain commas
	args := []string{"-r", pcapPath, "-d", fmt.Sprintf("udp.port==%d,%s", port, decodeAs),
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=" + agg}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop: tshark %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String()))
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		n := 0
		split := make([][]string, len(fields))
		for i := range fields {
			if i < len(cols) && cols[i] != "" {
				split[i] = strings.Split(cols[i], agg)
			}
			n = max(n, len(split[i]))
		}
		for r := 0; r < n; r++ {
			row := make(map[string]string, len(fields))
			for i, f := range fields {
				if r < len(split[i]) {
					row[f] = split[i][r]
				} else {
					row[f] = ""
				}
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
