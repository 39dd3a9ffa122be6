package main

import (
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/enrich"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/rotate"
	"github.com/flowpipe/flowpipe/pkg/subscriber/feed"
)

const description = `flowenrich reads a flow stream (bin or JSON, detected) on stdin and writes it
to stdout with, for the source and destination of each record:
  - AS number and AS name, from an ASN database (GeoLite2-ASN shape),
  - country, from a country database (GeoLite2-Country/City, DB-IP or
    ip-location-db shape, detected from the file),
  - the named network, its labels and matched prefix from a networks file
    (YAML), and the flow direction (ingress, egress, internal, external).
  - the subscriber that held the address at the flow's start (user, session
    id, calling station), from RADIUS accounting: FreeRADIUS detail files,
    a RADIUS accounting listener, a Kafka topic of JSON records; flows seen
    outside a CGNAT through its port-block events in the stream.
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
  goflow2 -format=bin -transport.file.sep= | flowenrich --country-db GeoLite2-Country.mmdb
  flowenrich --radius-detail '/var/log/freeradius/radacct/flowenrich/detail-*' \
             --radius-listen :1814 --radius-secret-file /etc/flowpipe/radius.secret \
             --sessions-state /var/lib/flowpipe/sessions.state --asn-db asn.mmdb

Subscriber sessions: a session holds its Framed-IP-Address and IPv6
prefixes from its Start (or, without one, its first record's time minus
Acct-Session-Time) to its Stop, its NAS's Accounting-On/Off, or the next
session on the address. Times are the records' own, never the wall clock.
Stopped sessions are kept --session-history for late flows.`

func newApp() command.App {
	return command.App{
		Name:        "flowenrich",
		Usage:       "add ASN, AS name, country and CIDR context to a flow stream",
		UsageText:   "flowenrich [--asn-db FILE] [--country-db FILE] [--networks FILE] [session sources] [options] < in > out",
		Description: description,
		Flags: append([]cli.Flag{
			&cli.PathFlag{Name: "asn-db", Usage: "ASN database (mmdb, GeoLite2-ASN shape)"},
			&cli.PathFlag{Name: "country-db", Usage: "country database (mmdb: GeoLite2-Country/City, DB-IP, ip-location-db)"},
			&cli.PathFlag{Name: "networks", Usage: "CIDR context file (YAML): named networks with labels"},
			&cli.BoolFlag{Name: "asn-override", Usage: "let the database's AS replace an AS the exporter set"},
			&cli.StringFlag{Name: "country-fallback", Value: "none", Usage: "none: country.iso_code only; registered: GeoLite2's registered_country when the record has no country"},
			&cli.StringFlag{Name: "lookup-mode", Value: "table", Usage: "table (networks loaded in memory, faster) or mmdb (walk the file, less memory)"},
			&cli.StringFlag{Name: "input-format", Value: "auto", Usage: "auto, bin or json"},
			&cli.StringFlag{Name: "format", Value: "bin", Usage: "output: bin or json"},
			&cli.PathFlag{Name: "mapping", Usage: "goflow2's mapping `FILE` (as flowcollect's): its custom fields (formatter.protobuf) read and written in JSON under their names"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "-", Usage: "output `PATH` (appended, reopened on SIGHUP), or a time pattern rotating by itself (flows-%Y%m%d-%H.json, UTC); - is stdout"},
			&cli.IntFlag{Name: "output-keep", Usage: "with a time pattern, keep this many closed files and remove older ones (0: keep all)"},
			&cli.DurationFlag{Name: "reload-interval", Value: 5 * time.Second, Usage: "check the files for changes this often (0: only on SIGHUP)"},
		}, sessionFlags()...),
		Action: run,
	}
}

func run(ctx context.Context, st *command.Stage) (err error) {
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
	var jsonOpts *framing.JSONOptions
	if path := c.Path("mapping"); path != "" {
		mp, err := mapping.LoadFile(path)
		if err != nil {
			return command.Usagef("--mapping: %v", err)
		}
		// The custom fields only: flowenrich's JSON keeps its layout (the
		// enrichment fields), which formatter.fields would cut.
		jsonOpts = &framing.JSONOptions{Custom: mp.JSONOptions().Custom}
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
	scfg, err := sessionsConfig(c, log)
	if err != nil {
		return err
	}
	if cfg.ASNPath == "" && cfg.CountryPath == "" && cfg.NetworksPath == "" && !scfg.Enabled() {
		return command.Usagef("nothing to do: give --asn-db, --country-db, --networks or a session source")
	}
	var feeds *feed.Feeds
	if scfg.Enabled() {
		// Before the first flow: the sessions open now must be known.
		if feeds, err = feed.Start(ctx, scfg); err != nil {
			return err
		}
		defer func() {
			if cerr := feeds.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		cfg.Sessions = feeds.Table()
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
	if feeds != nil {
		feeds.Register(st.Metrics, "flowenrich")
		m.registerSessions(st.Metrics)
	}
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
	out, closeOut, err := openOutput(st, outFormat)
	if err != nil {
		return err
	}
	defer closeOut()
	stream := enrich.NewStream(e, enrich.StreamConfig{
		In: in, Out: out,
		InputFormat: inFormat, OutputFormat: outFormat,
		JSON:   jsonOpts,
		Report: m.add,
	})
	if err := stream.Run(ctx); err != nil {
		return err
	}
	log.Debug("input ended", "bytes", stream.Offset(), "format", stream.InputFormat().String())
	return nil
}

// openOutput opens --output, or returns stdout, and reopens the file on
// SIGHUP.
func openOutput(st *command.Stage, format framing.Format) (io.Writer, func(), error) {
	c, log := st.Flags, st.Log
	path := c.String("output")
	if path == "" || path == "-" {
		return st.Out, func() {}, nil
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
	st.OnReload(func() {
		if err := w.Reopen(); err != nil {
			log.Error("output not reopened; still writing to the old file", "err", err)
		}
	})
	return w, func() {
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
