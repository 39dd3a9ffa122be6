package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/collect"
	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/rotate"
)

const description = `flowcollect receives NetFlow v5, NetFlow v9, IPFIX and sFlow v5 export
datagrams over UDP (or reads them from pcap/pcapng captures) and writes one
flow record per flow to stdout (or a file) as a length-delimited protobuf
stream (goflow2's -format=bin) or JSON lines (goflow2's field names).

Listeners are URIs: netflow://[HOST]:PORT (v5, v9 and IPFIX, told apart by
version), ipfix://..., sflow://..., with ?count=N for N SO_REUSEPORT sockets
and ?rcvbuf=BYTES for the socket receive buffer; goflow2's ?workers=N stands
for --workers, its ?blocking= and ?queue_size= are logged with the settings
that stand for them. --mapping takes goflow2's mapping file as it is (custom
fields, sFlow header bits, the JSON formatter). Hosts may be IPv4 or IPv6
([::]). One exporter's packets are always decoded in order by one worker.
Templates are kept per exporter address (not port) and domain; with
--templates-file they survive a restart. --output FILE appends and reopens
the file on SIGHUP (logrotate); a time pattern in the name
(flows-%Y%m%d-%H.json, UTC) starts a new file every period by itself,
between records, and --output-keep N keeps the N newest closed ones. Datagrams from outside --allow, or that find
a full worker queue, are dropped and counted in flowcollect_packets_dropped_total.

Examples:
  flowcollect | flowenrich ... | flowpublish ...
  flowcollect --listen 'netflow://[::]:2055?count=4' --format json --output /var/log/flows.jsonl
  flowcollect --format json --output '/var/log/flowpipe/flows-%Y%m%d-%H.json' --output-keep 48
  flowcollect --allow 10.0.0.0/8 --templates-file /var/lib/flowcollect/templates.json
  flowcollect -r capture.pcap --format json | head
  flowcollect --listen 'sflow://:6343?count=4&workers=8,netflow://:2055' --mapping goflow2-mapping.yaml --format json
  FLOWCOLLECT_LISTEN=netflow://:9995,sflow://:6343 flowcollect`

func newApp() command.App {
	return command.App{
		Name:        "flowcollect",
		Usage:       "receive NetFlow v5/v9, IPFIX and sFlow v5 and write flow records to stdout",
		UsageText:   "flowcollect [--listen URI]... [options]\n   flowcollect [options] -r FILE.pcap [FILE.pcap...]",
		Description: description,
		Args:        true,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "listen", Aliases: []string{"l"}, Value: cli.NewStringSlice(collect.DefaultListen...),
				Usage: "listener URI, repeatable or comma-separated (netflow://:2055, ipfix://:4739, sflow://:6343, ?count=N&rcvbuf=BYTES; goflow2's ?workers=N&blocking=B&queue_size=N accepted)"},
			&cli.StringSliceFlag{Name: "read", Aliases: []string{"r"}, Usage: "read pcap/pcapng `FILE` instead of listening, repeatable (also as arguments)"},
			&cli.StringFlag{Name: "format", Value: "bin", Usage: "output format: bin (length-delimited protobuf) or json (lines)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "output `PATH` (appended, reopened on SIGHUP), or a time pattern rotating by itself (flows-%Y%m%d-%H.json: %Y %y %m %d %j %H %M %S %s, UTC); - is stdout"},
			&cli.IntFlag{Name: "output-keep", Usage: "with a time pattern, keep this many closed files and remove older ones (0: keep all)"},
			&cli.DurationFlag{Name: "flush-interval", Value: 100 * time.Millisecond, Usage: "longest time a decoded record waits before it is written"},
			&cli.StringSliceFlag{Name: "allow", Usage: "accept exporters in this `CIDR` only, repeatable (default: all)"},
			&cli.IntFlag{Name: "workers", Value: 0, Usage: "0 decodes on each socket's reader (least CPU; parallel over ?count= sockets; in order per exporter source port); N spreads decoding over N goroutines, one exporter always on the same one"},
			&cli.IntFlag{Name: "queue", Value: 256, Usage: "per-worker queue, in chunks of up to 64 KiB of datagrams"},
			&cli.DurationFlag{Name: "queue-wait", Value: 100 * time.Millisecond, Usage: "how long a socket reader waits for room in a full worker queue before dropping (the socket buffer fills meanwhile)"},
			&cli.IntFlag{Name: "rcvbuf", Value: 32 << 20, Usage: "socket receive buffer in bytes for listeners without ?rcvbuf= (0: system default)"},
			&cli.PathFlag{Name: "templates-file", Usage: "load templates from this file at start, save them every minute and at exit"},
			&cli.DurationFlag{Name: "template-ttl", Value: 30 * time.Minute, Usage: "forget a template not refreshed for this long (negative: never)"},
			&cli.IntFlag{Name: "max-templates", Value: 65536, Usage: "templates kept in all"},
			&cli.IntFlag{Name: "max-templates-per-exporter", Value: 4096, Usage: "templates kept per exporter address"},
			&cli.IntFlag{Name: "pending-sets", Value: 1024, Usage: "data sets held while waiting for their template"},
			&cli.IntFlag{Name: "pending-bytes", Value: 4 << 20, Usage: "bytes of data sets held while waiting for their template"},
			&cli.DurationFlag{Name: "pending-age", Value: 10 * time.Second, Usage: "how long a data set waits for its template"},
			&cli.PathFlag{Name: "mapping", Usage: "goflow2's mapping `FILE` (-mapping): IPFIX/v9 elements and sFlow header bits into custom or flow.proto fields, JSON fields and renderers (formatter)"},
			&cli.IntFlag{Name: "max-exporter-labels", Value: collect.DefaultMaxExporterLabels, Usage: "distinct exporter label values in metrics; later ones are \"other\""},
		},
		// Loopback by default: the metrics and health endpoints are for the
		// host's own Prometheus agent; --metrics-listen :8080 opens them up.
		MetricsListen: "127.0.0.1:8080",
		Action:        run,
	}
}

// procsKey carries the GOMAXPROCS setter from main to run: only the
// process sets it, not the tests that run the app in theirs.
type procsKey struct{}

// withProcs lets run size GOMAXPROCS (set) unless the environment chose
// it (fixed).
func withProcs(action func(context.Context, *command.Stage) error, fixed bool, set func(int) int) func(context.Context, *command.Stage) error {
	if fixed {
		return action
	}
	return func(ctx context.Context, st *command.Stage) error {
		return action(context.WithValue(ctx, procsKey{}, set), st)
	}
}

// sizeProcs gives the Go runtime as many Ps as goroutines decode
// (collect.Config.Parallelism), at most the CPUs it found. With the default
// of one socket that is one: the socket's reader and the writer then
// take turns on it instead of waking an idle P for each output batch,
// whose spinning in the scheduler cost 10-25% of the CPU per record
// (scripts/bench, 4 000 and 16 000 datagrams/s of every protocol).
func sizeProcs(ctx context.Context, cfg collect.Config, log *slog.Logger) {
	set, ok := ctx.Value(procsKey{}).(func(int) int)
	if !ok {
		return
	}
	n := min(cfg.Parallelism(), set(0))
	set(n)
	log.Debug("GOMAXPROCS sized to the decoding goroutines", "gomaxprocs", n)
}

func run(ctx context.Context, st *command.Stage) error {
	c, log := st.Flags, st.Log
	pcaps := append(c.StringSlice("read"), c.Args().Slice()...)
	var err error

	cfg := collect.DefaultConfig()
	cfg.Log = log
	cfg.Workers = c.Int("workers")
	cfg.QueueChunks = c.Int("queue")
	cfg.QueueWait = c.Duration("queue-wait")
	cfg.FlushInterval = c.Duration("flush-interval")
	cfg.MaxExporterLabels = c.Int("max-exporter-labels")
	if c.Int("rcvbuf") < 0 {
		return command.Usagef("--rcvbuf: must not be negative")
	}
	if cfg.Listens, err = collect.ParseListens(splitList(c.StringSlice("listen")), c.Int("rcvbuf")); err != nil {
		return command.Usagef("--listen: %v", err)
	}
	// goflow2's per-listener ?workers=: flowpipe's workers serve every
	// listener, so the largest asked for stands for --workers when it is
	// not given.
	for _, l := range cfg.Listens {
		for _, n := range l.Notes() {
			log.Warn("goflow2 listen parameter", "uri", l.URI, "note", n)
		}
		if l.Workers == 0 {
			continue
		}
		if c.IsSet("workers") {
			log.Warn("goflow2 listen parameter", "uri", l.URI, "note", fmt.Sprintf("workers=%d ignored: --workers %d serves every listener", l.Workers, cfg.Workers))
		} else if l.Workers > cfg.Workers {
			cfg.Workers = l.Workers
			log.Info("goflow2 listen parameter", "uri", l.URI, "note", fmt.Sprintf("workers=%d: decoding spread over %d workers shared by every listener (--workers)", l.Workers, l.Workers))
		}
	}
	for _, a := range splitList(c.StringSlice("allow")) {
		p, err := parsePrefix(a)
		if err != nil {
			return command.Usagef("--allow: %v", err)
		}
		cfg.Allow = append(cfg.Allow, p)
	}

	var m *mapping.Mapping
	if path := c.Path("mapping"); path != "" {
		if m, err = mapping.LoadFile(path); err != nil {
			return command.Usagef("--mapping: %v", err)
		}
		for _, w := range m.Warnings {
			log.Warn("mapping", "file", path, "note", w)
		}
		if len(m.Formatter.Key) > 0 {
			log.Info("mapping", "file", path, "note", "formatter.key is the Kafka key: give the same file to flowpublish --mapping")
		}
	}
	format, err := framing.ParseFormat(c.String("format"))
	if err != nil || format == framing.FormatAuto {
		return command.Usagef("--format: want bin or json, got %q", c.String("format"))
	}
	if format == framing.FormatJSON {
		opts := m.JSONOptions()
		cfg.Encode = func(dst []byte, msg *flowpb.FlowMessage) []byte { return framing.AppendJSONLine(dst, msg, opts) }
	}
	decs := collect.NewStandardDecoders(collect.DecoderConfig{
		Mapping: m,
		Templates: template.Config{
			MaxPerExporter: c.Int("max-templates-per-exporter"),
			MaxTotal:       c.Int("max-templates"),
			TTL:            c.Duration("template-ttl"),
			PendingSets:    c.Int("pending-sets"),
			PendingBytes:   c.Int("pending-bytes"),
			PendingAge:     c.Duration("pending-age"),
		},
	})
	cfg.NewDecoders = decs.New
	if err := cfg.Validate(); err != nil {
		return command.Usagef("%v", err)
	}
	procs := cfg
	if len(pcaps) > 0 {
		procs.Listens = nil // -r: no sockets, one decoder (or the workers)
	}
	sizeProcs(ctx, procs, log)
	templatesFile := c.Path("templates-file")
	if templatesFile != "" {
		n, err := decs.LoadTemplates(templatesFile)
		if err != nil {
			return err
		}
		log.Info("templates loaded", "file", templatesFile, "templates", n)
	}

	var out io.Writer = st.Out
	if path := c.String("output"); path != "-" && path != "" {
		if c.Int("output-keep") < 0 {
			return command.Usagef("--output-keep: must not be negative")
		}
		if err := rotate.CheckPath(path); err != nil {
			return command.Usagef("--output: %v", err)
		}
		file, err := collect.OpenFileOutput(collect.OutputConfig{
			Path: path, Keep: c.Int("output-keep"), Frames: format == framing.FormatBin,
			OnRotate: func(closed, opened string, removed []string, err error) {
				log.Info("output rotated", "closed", closed, "opened", opened, "removed", removed)
				if err != nil {
					log.Error("output rotation", "err", err)
				}
			},
		})
		if err != nil {
			return err
		}
		defer file.Close()
		out = file
		st.OnReload(func() { reopen(file, log) })
	} else {
		st.OnReload(func() { log.Info("output is stdout: nothing to reopen") })
	}

	st.Metrics.MustRegister(decs.Collector())
	col, err := collect.New(cfg, out, st.Metrics)
	if err != nil {
		return err
	}
	if _, err := st.ServeMetrics(); err != nil {
		return err
	}

	if len(pcaps) > 0 {
		err = readPcaps(ctx, col, pcaps, st.Err)
	} else {
		err = listen(ctx, col, decs, templatesFile, log)
	}
	if templatesFile != "" {
		if serr := decs.SaveTemplates(templatesFile); serr != nil {
			log.Error("templates not saved", "err", serr)
		} else {
			log.Info("templates saved", "file", templatesFile, "templates", decs.Templates().Stats().Templates)
		}
	}
	return err
}

// listen serves the sockets until ctx ends, then drains and flushes.
func listen(ctx context.Context, col *collect.Collector, decs *collect.StandardDecoders, templatesFile string, log *slog.Logger) error {
	if err := col.Open(ctx); err != nil {
		return err
	}
	col.Start()
	bg, stopBg := context.WithCancel(ctx)
	defer stopBg()
	go maintain(bg, decs, templatesFile, log)
	serveErr := col.Serve(ctx)
	closeErr := col.Close()
	t := col.Totals()
	log.Info("stopped", "packets", t.Packets, "records", t.Records, "decode_errors", t.DecodeErrors)
	return errors.Join(serveErr, closeErr)
}

// maintain expires templates and saves them every minute.
func maintain(ctx context.Context, decs *collect.StandardDecoders, templatesFile string, log *slog.Logger) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if templatesFile == "" {
			decs.Templates().Expire(uint64(time.Now().UnixNano()))
			continue
		}
		if err := decs.SaveTemplates(templatesFile); err != nil {
			log.Error("templates not saved", "err", err)
		}
	}
}

// reopen is the SIGHUP hook of --output: logrotate has moved the file.
func reopen(file *collect.FileOutput, log *slog.Logger) {
	if err := file.Reopen(); err != nil {
		log.Error("output not reopened; still writing to the old file", "err", err)
	} else {
		log.Info("output reopened")
	}
}

// readPcaps decodes the captures one after the other and prints a summary.
func readPcaps(ctx context.Context, col *collect.Collector, paths []string, stderr io.Writer) error {
	col.Start()
	start := time.Now()
	var packets uint64
	var readErr error
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			readErr = fmt.Errorf("flowcollect: %w", err)
			break
		}
		st, err := col.ReadPcap(ctx, f)
		f.Close()
		packets += st.Packets
		if err != nil {
			readErr = fmt.Errorf("%s: %w", p, err)
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	closeErr := col.Close()
	elapsed := time.Since(start)
	t := col.Totals()
	rate := float64(t.Records) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(stderr, "flowcollect: read %d packets, %d records in %s (%.0f records/s), %d decode errors\n",
		packets, t.Records, elapsed.Round(time.Millisecond), rate, t.DecodeErrors)
	return errors.Join(readErr, closeErr)
}

// splitList accepts both repeated flags and comma-separated values.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits = max(bits-96, 0)
	}
	return netip.PrefixFrom(p.Addr().Unmap(), bits).Masked(), nil
}
