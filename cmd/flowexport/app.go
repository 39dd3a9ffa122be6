package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/export"
	"github.com/flowpipe/flowpipe/pkg/kafkaopt"
	"github.com/flowpipe/flowpipe/pkg/telemetry"
)

const description = `flowexport reads flow records from a Kafka topic as a member of a consumer
group and serves per-AS-pair counters on /metrics, as neptune-networks'
flow-exporter does: flow_receive_bytes_total (destination_as is --asn) and
flow_transmit_bytes_total (source_as is --asn), labelled source_as,
source_as_name, destination_as, destination_as_name and hostname, plus
_packets_total and _flows_total. --all-pairs also counts every flow in
flow_bytes_total, flow_packets_total and flow_flows_total.

Records are flowpipe/goflow2 protobuf (varint-framed or bare), their JSON, or
pmacct's kafka plugin JSON (label, as_src, as_dst, bytes, packets, flows,
peer_ip_src, sampling_rate), detected per record; anything else is counted in
flowexport_records_invalid_total and skipped. hostname is pmacct's label,
else the exporter's address (sampler_address, peer_ip_src). Bytes and packets
are multiplied by the sampling rate (0 counts as 1). AS names come from the
records (flowenrich), else from --asn-db, else are empty. Without --asn-db
the first of scripts/.geo/asn.mmdb (what scripts/dev/fetch-geo-db.sh builds,
relative to the working directory), /var/lib/flowpipe/asn.mmdb and
/usr/share/flowpipe/asn.mmdb is used; --asn-db none turns names off.

At most --max-pairs series are kept: flows of new pairs then go to one series
per family whose labels (AS numbers, AS names, hostname) are all "other"
(flowexport_pairs_folded_total), and
series idle for --pair-ttl are dropped (flowexport_pairs_expired_total).
Offsets are committed after the records are counted; counters start at zero in
each process (Prometheus handles the reset), and several instances in one
group each export their partitions' share: sum them in PromQL. --partitions 0,2
reads only those partitions, without joining the group (flow-exporter's
meaning), resuming at the offsets committed under --group.

--group-by user also counts by subscriber, from the src_user and dst_user
fields that flowenrich's RADIUS attribution sets:
flowexport_user_transmit_bytes_total (the flow's src_user is the user) and
flowexport_user_receive_bytes_total (its dst_user is), plus _packets_total
and _flows_total, labelled user and hostname. At most --max-users series are
kept, new users beyond fold into user="other" (flowexport_users_folded_total),
idle ones expire after --pair-ttl. The AS pairs are counted beside them when
--asn or --all-pairs is given; --group-by user alone needs neither.

flow-exporter's flags work as they are, with one or two dashes: --brokers
(--broker), --topic, --asn, --partitions, --addr (= --metrics-listen), and
--defaultAS of its older versions.

Examples:
   flowexport --brokers kafka1:9092,kafka2:9092 --topic flows --asn 64500
   flowexport --brokers=kafka:9092 --topic=pmacct.acct --asn=15169 --addr=:9590  (flow-exporter's command line)
   flowexport --brokers kafka:9092 --topic flows --asn 64500 --partitions 0,1
   flowexport --topic flows --all-pairs --asn-db GeoLite2-ASN.mmdb --max-pairs 50000
   flowexport --topic flows --asn 64500 --group-by as,user --max-users 100000
   FLOWEXPORT_ASN=64500 flowexport --start-offset earliest --metrics-listen 127.0.0.1:9590`

func newApp() command.App {
	return command.App{
		Name:        "flowexport",
		Usage:       "consume flows from Kafka and export per-AS-pair Prometheus counters",
		UsageText:   "flowexport --brokers HOST:PORT --topic TOPIC --asn ASN [options]",
		Description: description,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "topic", Value: "flows", Usage: "Kafka topic to consume"},
			&cli.StringFlag{Name: "group", Value: "flowexport", Usage: "Kafka consumer group"},
			&cli.StringFlag{Name: "start-offset", Value: string(export.StartLatest),
				Usage: "where a partition without a committed offset starts: latest, earliest, or committed (wait for a commit)"},
			&cli.StringFlag{Name: "partitions", Value: "all",
				Usage: "all (the consumer group shares them out), or comma-separated partition numbers read directly, without joining the group"},
			&cli.Uint64Flag{Name: "asn", Usage: "monitored AS: flows from it are transmitted, flows to it received"},
			&cli.BoolFlag{Name: "all-pairs", Usage: "also count every flow in flow_{bytes,packets,flows}_total"},
			&cli.Uint64Flag{Name: "default-as", Aliases: []string{"defaultAS"},
				Usage: "AS number replacing 0 in records (pmacct writes 0 for the local AS)"},
			&cli.BoolFlag{Name: "no-sampling-multiply", Usage: "count bytes and packets as exported, not multiplied by the sampling rate"},
			&cli.PathFlag{Name: "asn-db", Usage: "GeoLite2-ASN-shaped mmdb naming AS numbers the records leave unnamed (default: the first found of scripts/.geo/asn.mmdb, /var/lib/flowpipe/asn.mmdb, /usr/share/flowpipe/asn.mmdb; none: no names)"},
			&cli.IntFlag{Name: "max-pairs", Value: export.DefaultConfig().MaxPairs,
				Usage: "series kept; beyond it new pairs fold into the \"other\" series"},
			&cli.DurationFlag{Name: "pair-ttl", Value: export.DefaultConfig().PairTTL,
				Usage: "drop a series after this long without traffic"},
			&cli.StringFlag{Name: "group-by", Value: "as",
				Usage: "what to count by, comma-separated: as (AS pairs, with --asn or --all-pairs), user (subscribers: src_user, dst_user)"},
			&cli.IntFlag{Name: "max-users", Value: export.DefaultConfig().MaxUsers,
				Usage: "user series kept with --group-by user; beyond it new users fold into the \"other\" series"},
		}, kafkaFlags()...),
		// All interfaces, unlike the other tools: these counters are the
		// product, scraped by a remote Prometheus, and :9590 is
		// flow-exporter's default that its users' scrape configs expect.
		MetricsListen: ":9590",
		// flow-exporter's name for it.
		MetricsAliases: []string{"addr"},
		Action:         run,
	}
}

// kafkaFlags are the shared connection flags, with flow-exporter's
// --broker accepted for --brokers.
func kafkaFlags() []cli.Flag {
	flags := kafkaopt.Flags("")
	for _, f := range flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "brokers" {
			sf.Aliases = append(sf.Aliases, "broker")
		}
	}
	return flags
}

func run(ctx context.Context, st *command.Stage) error {
	c, log := st.Flags, st.Log
	cfg, ccfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	namesPath := findASNames(c.Path("asn-db"), log)
	if namesPath != "" {
		if cfg.ASNames, err = export.LoadASNames(namesPath); err != nil {
			return err
		}
		log.Info("loaded AS names", "path", namesPath, "count", len(cfg.ASNames))
	}
	table, err := export.NewTable(cfg)
	if err != nil {
		return command.Usagef("%v", err)
	}
	if namesPath != "" {
		st.OnReload(func() { reloadASNames(table, namesPath, log) })
	}
	st.Metrics.MustRegister(table)
	m := export.NewMetrics(st.Metrics)

	logs := telemetry.NewThrottle(30*time.Second, 3)
	ccfg.OnInvalid = func(r *kgo.Record, err error) {
		logs.Log(log, slog.LevelWarn, "invalid", "skipping a record that is no flow", slog.String("topic", r.Topic),
			slog.Int("partition", int(r.Partition)), slog.Int64("offset", r.Offset), slog.Any("err", err))
	}
	ccfg.OnError = func(err error) {
		logs.Log(log, slog.LevelWarn, "kafka", "kafka", slog.Any("err", err))
	}
	kcfg, err := kafkaopt.FromCLI(c, "")
	if err != nil {
		return err
	}
	if kcfg.ClientID == "" {
		kcfg.ClientID = "flowexport"
	}
	ccfg.Client, err = kcfg.Opts()
	if err != nil {
		return err
	}
	ccfg.Client = append(ccfg.Client, kafkaopt.WithLogger(log))
	cons, err := export.NewConsumer(ccfg, export.NewCounter(table), m)
	if err != nil {
		return err
	}
	if _, err := st.ServeMetrics(); err != nil {
		return err
	}
	if ccfg.Partitions != nil {
		log.Info("consuming", "topic", ccfg.Topic, "partitions", ccfg.Partitions, "offsets_group", ccfg.Group, "start_offset", string(ccfg.Start))
	} else {
		log.Info("consuming", "topic", ccfg.Topic, "group", ccfg.Group, "start_offset", string(ccfg.Start))
	}
	err = cons.Run(ctx)
	log.LogAttrs(context.Background(), slog.LevelInfo, "stopped", slog.Int("pairs", table.Len()), slog.Int("users", table.Users()))
	return err
}

// reloadASNames is the SIGHUP hook of the AS names database: the file was
// replaced (a monthly update). A file that does not load leaves the names
// as they were.
func reloadASNames(table *export.Table, path string, log *slog.Logger) {
	names, err := export.LoadASNames(path)
	if err != nil {
		log.Error("AS names not reloaded; keeping the loaded ones", "err", err)
		return
	}
	table.SetASNames(names)
	log.Info("reloaded AS names", "path", path, "count", len(names))
}

// findASNames returns the database named by --asn-db, or the first one
// found on the search path when none is named, and says which; "" when
// there is none (or --asn-db none).
func findASNames(path string, log *slog.Logger) string {
	switch path {
	case "none":
		log.Info("AS names only from the records (--asn-db none)")
		return ""
	case "":
		searched := export.DefaultASNamesPaths()
		found, ok := export.FindASNames(searched)
		if !ok {
			log.Info("no AS name database found; AS names only from the records", "searched", searched)
			return ""
		}
		return found
	}
	return path
}

func configFromFlags(c *cli.Context) (export.Config, export.ConsumerConfig, error) {
	cfg := export.DefaultConfig()
	asn, defAS := c.Uint64("asn"), c.Uint64("default-as")
	if asn > 1<<32-1 || defAS > 1<<32-1 {
		return cfg, export.ConsumerConfig{}, command.Usagef("--asn and --default-as take 32-bit AS numbers")
	}
	cfg.ASN, cfg.DefaultAS = uint32(asn), uint32(defAS)
	cfg.AllPairs = c.Bool("all-pairs")
	cfg.NoSamplingMultiply = c.Bool("no-sampling-multiply")
	cfg.MaxPairs = c.Int("max-pairs")
	cfg.MaxUsers = c.Int("max-users")
	cfg.PairTTL = c.Duration("pair-ttl")
	byAS, byUser, err := parseGroupBy(c.String("group-by"))
	if err != nil {
		return cfg, export.ConsumerConfig{}, command.Usagef("--group-by: %v", err)
	}
	cfg.Users = byUser
	if byAS && cfg.ASN == 0 && !cfg.AllPairs {
		return cfg, export.ConsumerConfig{}, command.Usagef("give --asn (the monitored AS) or --all-pairs, or --group-by user")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, export.ConsumerConfig{}, command.Usagef("%v", err)
	}
	partitions, err := parsePartitions(c.String("partitions"))
	if err != nil {
		return cfg, export.ConsumerConfig{}, command.Usagef("--partitions: %v", err)
	}
	start, err := export.ParseStartOffset(c.String("start-offset"))
	if err != nil {
		return cfg, export.ConsumerConfig{}, command.Usagef("--start-offset: %v", err)
	}
	if partitions != nil && start == export.StartCommitted {
		return cfg, export.ConsumerConfig{}, command.Usagef("--start-offset committed needs the consumer group: drop --partitions")
	}
	if c.String("topic") == "" || c.String("group") == "" {
		return cfg, export.ConsumerConfig{}, command.Usagef("--topic and --group must not be empty")
	}
	ccfg := export.ConsumerConfig{
		Topic:      c.String("topic"),
		Group:      c.String("group"),
		Start:      start,
		Partitions: partitions,
	}
	return cfg, ccfg, nil
}

// parseGroupBy reads --group-by: a comma-separated list of "as" and
// "user".
func parseGroupBy(s string) (byAS, byUser bool, err error) {
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "as":
			byAS = true
		case "user":
			byUser = true
		default:
			return false, false, fmt.Errorf("%q: want as, user or as,user", s)
		}
	}
	return byAS, byUser, nil
}

// parsePartitions reads flow-exporter's --partitions: "all" (nil) or a
// comma-separated list of partition numbers.
func parsePartitions(s string) ([]int32, error) {
	if strings.TrimSpace(s) == "all" {
		return nil, nil
	}
	var out []int32
	seen := map[int32]bool{}
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%q: want all or partition numbers like 0,1,2", s)
		}
		if !seen[int32(p)] {
			seen[int32(p)] = true
			out = append(out, int32(p))
		}
	}
	return out, nil
}
