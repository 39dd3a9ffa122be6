package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/enrich"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/rotate"
	"github.com/flowpipe/flowpipe/pkg/telemetry"
)

const description = `flowenrich reads a flow stream (bin or JSON, detected) on stdin and writes it
to stdout with, for the source and destination of each record:
  - AS number and AS name, from an ASN database (GeoLite2-ASN shape),
  - country, from a country database (GeoLite2-Country/City, DB-IP or
    ip-location-db shape, detected from the file),
  - the named network, its labels and matched prefix from a networks file
    (YAML), and the flow direction (ingress, egress, internal, external).
Every other field, unknown ones included, is written back byte for byte.
Countries come from country.iso_code only: a GeoLite2 record without one
(anycast, satellite) gives no country, unless --country-fallback registered
takes its registered_country. An AS the exporter set is kept unless
--asn-override is given. Private and
reserved addresses get no AS and no country, unless a network gives one.
Files are reloaded on SIGHUP and when they change; a failed reload keeps
the loaded data. --output writes to a file instead of stdout: appended and
reopened on SIGHUP, or with a time pattern (flows-%Y%m%d-%H.json, UTC) a
new file every period, started between records, --output-keep N closed
ones kept. Free databases: scripts/dev/fetch-geo-db.sh.

Networks file:
  networks:
    - name: dc1-servers
      cidrs: [10.1.0.0/16, "2001:db8:1::/48"]
      labels: {site: ams1, role: servers, tenant: acme}
      asn: 64512          # optional, for private space
      as_name: ACME-DC1   # optional
      country: NL         # optional

Examples:
  flowcollect | flowenrich --asn-db asn.mmdb --country-db dbip-country.mmdb | flowpublish ...
  flowenrich --asn-db GeoLite2-ASN.mmdb --networks nets.yaml --format json < flows.bin
  goflow2 -format=bin -transport.file.sep= | flowenrich --country-db GeoLite2-Country.mmdb`

func newApp() command.App {
	return command.App{
		Name:        "flowenrich",
		Usage:       "add ASN, AS name, country and CIDR context to a flow stream",
		UsageText:   "flowenrich [--asn-db FILE] [--country-db FILE] [--networks FILE] [options] < in > out",
		Description: description,
		Flags: []cli.Flag{
			&cli.PathFlag{Name: "asn-db", Usage: "ASN database (mmdb, GeoLite2-ASN shape)"},
			&cli.PathFlag{Name: "country-db", Usage: "country database (mmdb: GeoLite2-Country/City, DB-IP, ip-location-db)"},
			&cli.PathFlag{Name: "networks", Usage: "CIDR context file (YAML): named networks with labels"},
			&cli.BoolFlag{Name: "asn-override", Usage: "let the database's AS replace an AS the exporter set"},
			&cli.StringFlag{Name: "country-fallback", Value: "none", Usage: "none: country.iso_code only; registered: GeoLite2's registered_country when the record has no country"},
			&cli.StringFlag{Name: "lookup-mode", Value: "table", Usage: "table (networks loaded in memory, faster) or mmdb (walk the file, less memory)"},
			&cli.StringFlag{Name: "input-format", Value: "auto", Usage: "auto, bin or json"},
			&cli.StringFlag{Name: "format", Value: "bin", Usage: "output: bin or json"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "output `PATH` (appended, reopened on SIGHUP), or a time pattern rotating by itself (flows-%Y%m%d-%H.json, UTC); - is stdout"},
			&cli.IntFlag{Name: "output-keep", Usage: "with a time pattern, keep this many closed files and remove older ones (0: keep all)"},
			&cli.DurationFlag{Name: "reload-interval", Value: 5 * time.Second, Usage: "check the files for changes this often (0: only on SIGHUP)"},
			command.MetricsFlag(""),
		},
		Action: run,
	}
}

func run(ctx context.Context, c *cli.Context, s command.Streams) error {
	log, err := command.NewLogger(c, s.Err)
	if err != nil {
		return err
	}
	mode, err := enrich.ParseLookupMode(c.String("lookup-mode"))
	if err != nil {
		return command.Usagef("--lookup-mode: %v", err)
	}
	inFormat, err := framing.ParseFormat(c.String("input-format"))
	if err != nil {
		return command.Usagef("--input-format: %v", err)
	}
	outFormat, err := framing.ParseFormat(c.String("format"))
	if err != nil || outFormat == framing.FormatAuto {
		return command.Usagef("--format: want bin or json, got %q", c.String("format"))
	}
	fallback, err := enrich.ParseCountryFallback(c.String("country-fallback"))
	if err != nil {
		return command.Usagef("--country-fallback: %v", err)
	}
	if c.Duration("reload-interval") < 0 {
		return command.Usagef("--reload-interval: must not be negative")
	}
	cfg := enrich.Config{
		ASNPath:      c.Path("asn-db"),
		CountryPath:  c.Path("country-db"),
		NetworksPath: c.Path("networks"),
		Mode:         mode,
		ASNOverride:  c.Bool("asn-override"),

		CountryFallback: fallback,
	}
	if cfg.ASNPath == "" && cfg.CountryPath == "" && cfg.NetworksPath == "" {
		return command.Usagef("nothing to do: give --asn-db, --country-db or --networks")
	}
	start := time.Now()
	e, err := enrich.New(cfg)
	if err != nil {
		return err
	}
	logLoaded(log, e, time.Since(start))
	// Loading leaves scratch worth as much as the tables (file bytes,
	// per-database tries): return it to the system now rather than let
	// the process sit at its load-time peak.
	debug.FreeOSMemory()

	reg := telemetry.NewRegistry()
	m := newMetrics(reg)
	m.loaded(e)
	stopMetrics, err := command.StartMetrics(c, reg, log)
	if err != nil {
		return err
	}
	defer stopMetrics()

	ctx, cancel := context.WithCancel(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		watch(ctx, e, c.Duration("reload-interval"), log, m)
	}()
	defer func() { cancel(); <-watching }() // no reload outlives the run

	// A blocked read of stdin only returns when stdin is closed: close it
	// on SIGTERM (as goflow2's enricher does); Run then flushes and ends.
	done := make(chan struct{})
	defer close(done)
	command.GrowPipe(s.In) // fewer, larger reads from flowcollect
	in := s.In
	if f, ok := in.(*os.File); ok {
		pollable, restore := pollableFile(f)
		defer restore()
		in = pollable
	}
	if closer, ok := in.(io.Closer); ok {
		go func() {
			select {
			case <-ctx.Done():
				_ = closer.Close()
			case <-done:
			}
		}()
	}
	out, closeOut, err := openOutput(ctx, c, outFormat, s.Out, log)
	if err != nil {
		return err
	}
	defer closeOut()
	stream := enrich.NewStream(e, enrich.StreamConfig{
		In: in, Out: out,
		InputFormat: inFormat, OutputFormat: outFormat,
		Report: m.add,
	})
	if err := stream.Run(ctx); err != nil {
		return err
	}
	log.Debug("input ended", "bytes", stream.Offset(), "format", stream.InputFormat().String())
	return nil
}

// openOutput opens --output, or returns stdout, and reopens the file on
// SIGHUP until ctx ends.
func openOutput(ctx context.Context, c *cli.Context, format framing.Format, stdout io.Writer, log *slog.Logger) (io.Writer, func(), error) {
	path := c.String("output")
	if path == "" || path == "-" {
		return stdout, func() {}, nil
	}
	if err := rotate.CheckPath(path); err != nil {
		return nil, nil, command.Usagef("--output: %v", err)
	}
	if c.Int("output-keep") < 0 {
		return nil, nil, command.Usagef("--output-keep: must not be negative")
	}
	b := rotate.Lines
	if format == framing.FormatBin {
		b = rotate.Frames
	}
	w, err := rotate.New(rotate.Config{Path: path, Keep: c.Int("output-keep"), Boundary: b,
		OnRotate: func(closed, opened string, removed []string, err error) {
			log.Info("output rotated", "closed", closed, "opened", opened, "removed", removed)
			if err != nil {
				log.Error("output rotation", "err", err)
			}
		}})
	if err != nil {
		return nil, nil, err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-hup:
				if err := w.Reopen(); err != nil {
					log.Error("output not reopened; still writing to the old file", "err", err)
				}
			}
		}
	}()
	return w, func() {
		signal.Stop(hup)
		close(stop)
		if err := w.Close(); err != nil {
			log.Error("output close", "err", err)
		}
	}, nil
}

func logLoaded(log *slog.Logger, e *enrich.Enricher, took time.Duration) {
	for _, d := range e.Databases() {
		log.Info("database loaded", "database", d.Kind.String(), "path", d.Path, "type", d.Type,
			"shape", d.Shape.String(), "build", d.Build.UTC().Format(time.RFC3339), "networks", d.Networks)
	}
	if n := e.Networks(); n != nil {
		log.Info("networks loaded", "networks", n.Len(), "prefixes", n.Prefixes())
	}
	log.Debug("load time", "seconds", took.Seconds())
}

// watch reloads on SIGHUP (everything) and when a file changes (that
// file), until ctx ends. A failing file is reported once per new error, not
// at every poll.
func watch(ctx context.Context, e *enrich.Enricher, interval time.Duration, log *slog.Logger, m *metrics) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	lastErr := ""
	reload := func(force bool) {
		start := time.Now()
		files, err := e.Reload(force)
		if err != nil {
			if force || err.Error() != lastErr {
				m.reloads.WithLabelValues("failure").Inc()
				log.Error("reload failed, keeping the loaded data", "err", err)
			}
			lastErr = err.Error()
			return
		}
		lastErr = ""
		if len(files) > 0 {
			m.reloads.WithLabelValues("success").Inc()
			m.loaded(e)
			log.Info("reloaded", "files", files, "seconds", time.Since(start).Seconds())
			debug.FreeOSMemory() // the replaced tables and the scratch, as after loading
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload(true)
		case <-tick:
			if e.Changed() {
				reload(false)
			}
		}
	}
}

// pollableFile returns a non-blocking handle on f, so that Go's poller
// serves its reads and Close interrupts a blocked one (a pipe inherited in
// blocking mode would keep the read, and SIGTERM, waiting for the writer).
// For a pipe or a terminal, reopening /proc/self/fd/N gives a new file
// description, so the mode of the one shared with the shell is untouched;
// otherwise (a socket) the shared one is switched and restored at the end.
func pollableFile(f *os.File) (*os.File, func()) {
	fd := int(f.Fd())
	if fi, err := f.Stat(); err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeCharDevice) != 0 {
		if g, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			return g, func() { _ = g.Close() }
		}
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		return f, func() {}
	}
	return os.NewFile(uintptr(fd), f.Name()), func() { _ = syscall.SetNonblock(fd, false) }
}
