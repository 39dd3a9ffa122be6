package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/enrich"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

const description = `flowenrich reads a flow stream (bin or JSON, detected) on stdin and writes it
to stdout with, for the source and destination of each record:
  - AS number and AS name, from an ASN database (GeoLite2-ASN shape),
  - country, from a country database (GeoLite2-Country/City, DB-IP or
    ip-location-db shape, detected from the file),
  - the named network, its labels and matched prefix from a networks file
    (YAML), and the flow direction (ingress, egress, internal, external).
Every other field, unknown ones included, is written back byte for byte.
An AS the exporter set is kept unless --asn-override is given. Private and
reserved addresses get no AS and no country, unless a network gives one.
Files are reloaded on SIGHUP and when they change; a failed reload keeps
the loaded data. Free databases: scripts/dev/fetch-geo-db.sh.

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
			&cli.StringFlag{Name: "lookup-mode", Value: "table", Usage: "table (networks loaded in memory, faster) or mmdb (walk the file, less memory)"},
			&cli.StringFlag{Name: "input-format", Value: "auto", Usage: "auto, bin or json"},
			&cli.StringFlag{Name: "format", Value: "bin", Usage: "output: bin or json"},
			&cli.DurationFlag{Name: "reload-interval", Value: 5 * time.Second, Usage: "check the files for changes this often (0: only on SIGHUP)"},
		},
		Action: run,
	}
}

func run(ctx context.Context, st *command.Stage) error {
	c, log := st.Flags, st.Log
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
	if c.Duration("reload-interval") < 0 {
		return command.Usagef("--reload-interval: must not be negative")
	}
	cfg := enrich.Config{
		ASNPath:      c.Path("asn-db"),
		CountryPath:  c.Path("country-db"),
		NetworksPath: c.Path("networks"),
		Mode:         mode,
		ASNOverride:  c.Bool("asn-override"),
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

	m := newMetrics(st.Metrics)
	m.loaded(e)
	if _, err := st.ServeMetrics(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan struct{}, 1)
	st.OnReload(func() {
		select {
		case hup <- struct{}{}: // the watcher reloads; one pending is enough
		default:
		}
	})
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		watch(ctx, e, c.Duration("reload-interval"), hup, log, m)
	}()
	defer func() { cancel(); <-watching }() // no reload outlives the run

	in := st.Input(ctx) // SIGTERM interrupts a read that waits for flowcollect
	stream := enrich.NewStream(e, enrich.StreamConfig{
		In: in, Out: st.Out,
		InputFormat: inFormat, OutputFormat: outFormat,
		Report: m.add,
	})
	if err := stream.Run(ctx); err != nil {
		return err
	}
	log.Debug("input ended", "bytes", stream.Offset(), "format", stream.InputFormat().String())
	return nil
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
func watch(ctx context.Context, e *enrich.Enricher, interval time.Duration, hup <-chan struct{}, log *slog.Logger, m *metrics) {
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
