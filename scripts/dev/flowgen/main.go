// Command flowgen writes synthetic NetFlow v5/v9, IPFIX or sFlow v5 export
// packets to a pcap file or sends them over UDP, for tests, demos and
// benchmarks of collectors.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

func main() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) }

// defaultSendFlowPool is --flow-pool for --send: 1024 IPFIX packets hold
// 28672 flows (10 MB with the packets), and reusing them costs a fifth of
// drawing new ones.
const defaultSendFlowPool = 1024

// usageError marks bad flags: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run is main without os.Exit, so that tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(args)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, syscall.EPIPE):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "flowgen: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "flowgen: %v\n", err)
		return 1
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "flowgen",
		Usage: "generate synthetic NetFlow v5/v9, IPFIX and sFlow v5 export packets",
		UsageText: `flowgen --protocol ipfix --count 100 --pcap ipfix.pcap
   flowgen --protocol sflow --ipv6-ratio 0.3 --sampling-rate 1024 --pcap - | tshark -r - -d udp.port==6343,sflow
   flowgen --protocol netflow9 --send 127.0.0.1:2055 --rate 100000 --duration 10s

Packets are deterministic from --seed and --flow-pool (--send reuses flows after 1024
data packets, --pcap draws them all). Exit codes: 0 ok, 1 runtime error, 2 bad usage.`,
		Writer:          stderr,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // run decides the exit code
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "protocol", Value: "ipfix", Usage: "netflow5, netflow9, ipfix or sflow", EnvVars: []string{"FLOWGEN_PROTOCOL"}},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed: same seed, same packets", EnvVars: []string{"FLOWGEN_SEED"}},
			&cli.IntFlag{Name: "records-per-packet", Usage: "flow records (sFlow: flow samples) per packet, 0 for the protocol's default (30, 28, 28, 8)", EnvVars: []string{"FLOWGEN_RECORDS_PER_PACKET"}},
			&cli.Float64Flag{Name: "ipv6-ratio", Usage: "share of IPv6 flows, 0 to 1", EnvVars: []string{"FLOWGEN_IPV6_RATIO"}},
			&cli.UintFlag{Name: "sampling-rate", Usage: "advertised 1-in-N sampling rate, 0 for unsampled", EnvVars: []string{"FLOWGEN_SAMPLING_RATE"}},
			&cli.StringFlag{Name: "exporter", Value: "192.0.2.1", Usage: "sFlow agent address, and source address of pcap frames", EnvVars: []string{"FLOWGEN_EXPORTER"}},
			&cli.UintFlag{Name: "domain", Usage: "v9 source ID, IPFIX observation domain, sFlow sub-agent ID", EnvVars: []string{"FLOWGEN_DOMAIN"}},
			&cli.IntFlag{Name: "template-interval", Value: 20, Usage: "v9/IPFIX data packets between template packets, 0 for the first packet only", EnvVars: []string{"FLOWGEN_TEMPLATE_INTERVAL"}},
			&cli.BoolFlag{Name: "ipfix-extra-ies", Usage: "add a variable-length and an enterprise-specific IE to IPFIX templates", EnvVars: []string{"FLOWGEN_IPFIX_EXTRA_IES"}},
			&cli.IntFlag{Name: "header-size", Value: 128, Usage: "sFlow sampled header bytes", EnvVars: []string{"FLOWGEN_HEADER_SIZE"}},
			&cli.IntFlag{Name: "flow-pool", Usage: "data packets whose flows are drawn at random; later ones reuse them with fresh addresses and times, for a fraction of the CPU (default 1024 with --send, 0 with --pcap: every flow drawn)", EnvVars: []string{"FLOWGEN_FLOW_POOL"}},
			&cli.TimestampFlag{Name: "base-time", Layout: time.RFC3339, Usage: "export time of the first packet (default: 2024-01-01T00:00:00Z for --pcap, now for --send)", EnvVars: []string{"FLOWGEN_BASE_TIME"}},
			&cli.StringFlag{Name: "pcap", Usage: "write packets to this pcap `FILE` (- for stdout)", EnvVars: []string{"FLOWGEN_PCAP"}},
			&cli.StringFlag{Name: "dst", Usage: "destination `ADDR:PORT` of pcap frames (default 192.0.2.100 or 2001:db8::100 on the protocol's port)", EnvVars: []string{"FLOWGEN_DST"}},
			&cli.StringFlag{Name: "send", Usage: "send packets over UDP to `HOST:PORT`", EnvVars: []string{"FLOWGEN_SEND"}},
			&cli.Float64Flag{Name: "rate", Usage: "send pace in flow records per second, 0 for as fast as possible", EnvVars: []string{"FLOWGEN_RATE"}},
			&cli.IntFlag{Name: "count", Usage: "packets to write or send, templates included (default 100 for --pcap, no limit for --send)", EnvVars: []string{"FLOWGEN_COUNT"}},
			&cli.DurationFlag{Name: "duration", Usage: "stop sending after this long", EnvVars: []string{"FLOWGEN_DURATION"}},
		},
		Action: func(c *cli.Context) error { return action(c, stdout, stderr) },
	}
}

func action(c *cli.Context, stdout, stderr io.Writer) error {
	if c.NArg() > 0 {
		return usagef("unexpected argument %q", c.Args().First())
	}
	pcapFile, sendAddr := c.String("pcap"), c.String("send")
	if (pcapFile == "") == (sendAddr == "") {
		return usagef("give one of --pcap or --send")
	}
	proto, err := flowgen.ParseProtocol(c.String("protocol"))
	if err != nil {
		return usageError{err}
	}
	exporter, err := netip.ParseAddr(c.String("exporter"))
	if err != nil {
		return usagef("--exporter: %v", err)
	}
	cfg := flowgen.Config{
		Seed:              c.Uint64("seed"),
		Protocol:          proto,
		RecordsPerPacket:  c.Int("records-per-packet"),
		IPv6Ratio:         c.Float64("ipv6-ratio"),
		SamplingRate:      uint32(c.Uint("sampling-rate")),
		Exporter:          exporter,
		ObservationDomain: uint32(c.Uint("domain")),
		TemplateInterval:  c.Int("template-interval"),
		VariableLengthIE:  c.Bool("ipfix-extra-ies"),
		EnterpriseIE:      c.Bool("ipfix-extra-ies"),
		HeaderSize:        c.Int("header-size"),
		FlowPool:          c.Int("flow-pool"),
	}
	if !c.IsSet("flow-pool") && sendAddr != "" {
		cfg.FlowPool = defaultSendFlowPool
	}
	if t := c.Timestamp("base-time"); t != nil {
		cfg.BaseTime = *t
	} else if sendAddr != "" {
		cfg.BaseTime = time.Now()
	}
	if cfg.TemplateInterval == 0 {
		cfg.TemplateInterval = math.MaxInt // in Config, 0 means the default
	}
	g, err := flowgen.New(cfg)
	if err != nil {
		return usageError{err}
	}
	if pcapFile != "" {
		return writePcap(c, g, exporter, pcapFile, stdout, stderr)
	}
	return send(c, g, sendAddr, stderr)
}

func writePcap(c *cli.Context, g *flowgen.Generator, exporter netip.Addr, file string, stdout, stderr io.Writer) error {
	proto := g.Config().Protocol
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 100}), proto.Port())
	if exporter.Is6() {
		dst = netip.AddrPortFrom(netip.MustParseAddr("2001:db8::100"), proto.Port())
	}
	if s := c.String("dst"); s != "" {
		var err error
		if dst, err = netip.ParseAddrPort(s); err != nil {
			return usagef("--dst: %v", err)
		}
	}
	count := c.Int("count")
	if !c.IsSet("count") {
		count = 100
	}
	if count < 0 {
		return usagef("--count must be >= 0, got %d", count)
	}

	out := stdout
	if file != "-" {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	bw := bufio.NewWriter(out)
	pw, err := flowgen.NewPcapWriter(bw, netip.AddrPortFrom(exporter, 50000), dst)
	if err != nil {
		return usageError{err}
	}
	var records, bytes int
	for range count {
		pkt, flows := g.Next()
		if err := pw.WritePacket(pkt, g.Time()); err != nil {
			return err
		}
		records += len(flows)
		bytes += len(pkt)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && file != "-" {
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "flowgen: %s: wrote %d packets (%d records, %d bytes of payload) to %s\n", proto, count, records, bytes, file)
	return nil
}

func send(c *cli.Context, g *flowgen.Generator, addr string, stderr io.Writer) error {
	opt := flowgen.SendOptions{Rate: c.Float64("rate"), PerRecord: true, Count: c.Int("count"), Duration: c.Duration("duration")}
	if opt.Rate < 0 || opt.Count < 0 || opt.Duration < 0 {
		return usagef("--rate, --count and --duration must be >= 0")
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return usagef("--send: %v", err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := flowgen.Send(ctx, conn, g, opt)
	secs := max(st.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(stderr, "flowgen: %s: sent %d packets (%d records, %d bytes) to %s in %v: %.0f packets/s, %.0f records/s\n",
		g.Config().Protocol, st.Packets, st.Records, st.Bytes, raddr, st.Elapsed.Round(time.Millisecond),
		float64(st.Packets)/secs, float64(st.Records)/secs)
	return err
}
