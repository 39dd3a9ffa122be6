package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/kafkaopt"
	"github.com/flowpipe/flowpipe/pkg/publish"
	"github.com/flowpipe/flowpipe/pkg/spool"
)

const description = `flowpublish reads a flow stream (bin or JSON, detected) on stdin and produces
one Kafka record per flow. The value is one varint-framed protobuf message,
as goflow2 writes to Kafka (--value-format bin), or one JSON object. Bin
input is passed through byte for byte.

Nothing is dropped: when --max-buffered-records are waiting for Kafka,
reading stops and the upstream pipe fills. A broker outage of any length is
retried; a topic re-created under a new id is recovered. At end of input or
on SIGTERM, every record read is flushed; the exit code is 0 only when all
were acknowledged, 1 if any failed (counted by reason in
flowpublish_records_failed_total and logged).

With --spool-dir DIR, every record read is first written to segment files in
DIR (checksummed; in the file before the next read waits, so kill -9 loses
none; fsynced every --spool-sync while records wait for Kafka) and produced
from there in order: reading never waits for Kafka, an outage fills the spool
instead of the pipe, and a restart on the same DIR delivers what was not
acknowledged (at least once). --spool-max-bytes bounds DIR; when full,
--spool-full says what gives: block (stop reading), drop-oldest or
drop-newest (counted in flowpublish_spool_dropped_records_total). A second
flowpublish on the same DIR is refused (exit 1).

Keys (--key): none (sticky batches, the fastest), sampler_address (one
exporter's flows in order on one partition), src_dst, or a comma-separated
list of fields (hashed; e.g. sampler_address,in_if). --mapping FILE takes
the key fields from goflow2's mapping file (formatter.key) when --key is not
given, and renders --value-format json as its formatter says.

Examples:
  go run ./scripts/dev/devbroker &     # a local Kafka-protocol broker on 127.0.0.1:9092
  flowcollect | flowenrich ... | flowpublish --topic flows --key sampler_address
  flowpublish --brokers k1:9093,k2:9093 --tls-ca ca.pem --sasl-mechanism SCRAM-SHA-512 \
      --sasl-user flows --compression zstd < flows.bin   # FLOWPUBLISH_SASL_PASSWORD=...
  flowpublish --value-format json --create-topic --partitions 12 < flows.json
  flowcollect | flowpublish --spool-dir /var/spool/flowpipe --spool-max-bytes 20GiB --spool-full drop-oldest
  kcat -C -b 127.0.0.1:9092 -t flows -e -f '%s' > flows.bin   # the values form a bin stream`

func newApp() command.App {
	def := publish.DefaultConfig()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "topic", Value: def.Topic, Usage: "Kafka topic to produce to"},
		&cli.StringFlag{Name: "key", Value: "none", Usage: "record key: none, sampler_address, src_dst or a comma-separated list of fields"},
		&cli.PathFlag{Name: "mapping", Usage: "goflow2's mapping `FILE`: its formatter.key is the record key (unless --key is given), its formatter the JSON values (--value-format json)"},
		&cli.StringFlag{Name: "input-format", Value: "auto", Usage: "auto, bin or json"},
		&cli.StringFlag{Name: "value-format", Value: "bin", Usage: "record value: bin (varint-framed protobuf, as goflow2) or json"},
		&cli.IntFlag{Name: "max-record-size", Value: framing.DefaultMaxSize, Usage: "largest input frame or JSON line, bytes"},
		&cli.StringFlag{Name: "compression", Value: def.Compression, Usage: "none, gzip, snappy, lz4 or zstd"},
		&cli.DurationFlag{Name: "linger", Value: def.Linger, Usage: "wait this long for a batch to fill"},
		&cli.IntFlag{Name: "batch-max-bytes", Value: int(def.BatchMaxBytes), Usage: "largest record batch, bytes"},
		&cli.IntFlag{Name: "max-buffered-records", Value: def.MaxBufferedRecords, Usage: "records waiting for Kafka before reading pauses"},
		&cli.IntFlag{Name: "max-buffered-bytes", Value: def.MaxBufferedBytes, Usage: "bytes waiting for Kafka before reading pauses (0: no limit)"},
		&cli.StringFlag{Name: "acks", Value: def.Acks, Usage: "all, leader or none (leader and none need --no-idempotence)"},
		&cli.BoolFlag{Name: "no-idempotence", Usage: "disable the idempotent producer (needed for --acks leader/none)"},
		&cli.DurationFlag{Name: "delivery-timeout", Usage: "fail a record not acknowledged within this (0: retry forever)"},
		&cli.DurationFlag{Name: "flush-timeout", Value: def.FlushTimeout, Usage: "at EOF or SIGTERM, wait this long for acknowledgements (0: forever)"},
		&cli.BoolFlag{Name: "create-topic", Usage: "create the topic if it does not exist"},
		&cli.IntFlag{Name: "partitions", Value: int(def.Partitions), Usage: "partitions for --create-topic"},
		&cli.IntFlag{Name: "replication-factor", Value: int(def.ReplicationFactor), Usage: "replication factor for --create-topic"},
		&cli.StringFlag{Name: "spool-dir", Category: spoolCategory, Usage: "spool every record in this directory first (created if missing; empty: no spool)"},
		&cli.StringFlag{Name: "spool-max-bytes", Category: spoolCategory, Value: "4GiB", Usage: "bound on the spool's files: bytes, or with KiB, MiB, GiB, TiB"},
		&cli.StringFlag{Name: "spool-full", Category: spoolCategory, Value: spool.Block.String(), Usage: "when the spool is full: block (stop reading), drop-oldest or drop-newest"},
		&cli.DurationFlag{Name: "spool-sync", Category: spoolCategory, Value: spool.DefaultSyncInterval, Usage: "bound on what a power loss can take: fsync the spool this often while a record older than this waits for Kafka (0: only at exit)"},
		&cli.StringFlag{Name: "spool-segment-bytes", Category: spoolCategory, Value: "64MiB", Usage: "size of one spool segment file (at most a quarter of --spool-max-bytes)"},
	}
	return command.App{
		Name:        "flowpublish",
		Usage:       "produce a flow stream into a Kafka topic, one record per flow",
		UsageText:   "flowpublish [--brokers HOST:PORT,...] [--topic flows] [options] < stream",
		Description: description,
		Flags:       append(flags, kafkaopt.Flags("")...),
		Action:      run,
	}
}

func run(ctx context.Context, st *command.Stage) error {
	c, log := st.Flags, st.Log
	cfg, err := configFromCLI(c)
	if err != nil {
		return err
	}
	kcfg, err := kafkaopt.FromCLI(c, "")
	if err != nil {
		return err
	}
	if v := kversion.FromString(kcfg.MaxVersion); v != nil && cfg.Idempotent {
		if _, ok := v.LookupMaxKeyVersion(22); !ok { // InitProducerID arrived in 0.11
			return command.Usagef("--max-kafka-version %s has no idempotent producer: add --no-idempotence", kcfg.MaxVersion)
		}
	}
	if kcfg.ClientID == "" {
		kcfg.ClientID = "flowpublish"
	}
	conn, err := kcfg.Opts()
	if err != nil {
		return err
	}
	// flowpublish_records_produced_total counts acknowledged records:
	// kprom's produce_records_total would be the same fact twice.
	conn = append(conn, kafkaopt.WithLogger(log), kafkaopt.WithMetrics("flowpublish", st.Metrics, "produce_records_total"))
	p, err := publish.New(cfg, conn, st.Metrics, log)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := st.ServeMetrics(); err != nil {
		return err
	}
	// Records read are in flight to Kafka: nothing to reload, and SIGHUP
	// must not stop the stage (Run logs it and goes on).

	in := st.Input(ctx) // grown pipe: flowenrich's 256 KiB writes cost one read each
	attrs := []any{"brokers", strings.Join(kcfg.Brokers, ","), "topic", cfg.Topic, "key", cfg.Key.String(),
		"value_format", cfg.ValueFormat.String(), "compression", cfg.Compression}
	if cfg.Spool != nil {
		attrs = append(attrs, "spool_dir", cfg.Spool.Dir, "spool_max_bytes", cfg.Spool.MaxBytes, "spool_full", cfg.Spool.Full.String())
	}
	log.Info("publishing", attrs...)
	return p.Run(ctx, in)
}

const spoolCategory = "Spool:"

func configFromCLI(c *cli.Context) (publish.Config, error) {
	cfg := publish.DefaultConfig()
	var err error
	cfg.Topic = c.String("topic")
	if cfg.Key, err = publish.ParseKey(c.String("key")); err != nil {
		return cfg, command.Usagef("--key: %v", err)
	}
	if path := c.Path("mapping"); path != "" {
		m, err := mapping.LoadFile(path)
		if err != nil {
			return cfg, command.Usagef("--mapping: %v", err)
		}
		cfg.JSON = m.JSONOptions()
		if key := m.Key(); len(key) > 0 && !c.IsSet("key") {
			// goflow2 hashes formatter.key into its Kafka key; flowpublish
			// hashes the same fields its own way: one partition for equal
			// fields, as there.
			if cfg.Key, err = publish.ParseKey(strings.Join(key, ",")); err != nil {
				return cfg, command.Usagef("--mapping: formatter.key: %v", err)
			}
		}
	}
	if cfg.InputFormat, err = framing.ParseFormat(c.String("input-format")); err != nil {
		return cfg, command.Usagef("--input-format: %v", err)
	}
	switch v := c.String("value-format"); v {
	case "bin":
		cfg.ValueFormat = framing.FormatBin
	case "json":
		cfg.ValueFormat = framing.FormatJSON
	default:
		return cfg, command.Usagef("--value-format: want bin or json, got %q", v)
	}
	cfg.MaxRecordSize = c.Int("max-record-size")
	cfg.Compression = c.String("compression")
	cfg.Linger = c.Duration("linger")
	cfg.BatchMaxBytes = int32(c.Int("batch-max-bytes"))
	cfg.MaxBufferedRecords = c.Int("max-buffered-records")
	cfg.MaxBufferedBytes = c.Int("max-buffered-bytes")
	cfg.Acks = c.String("acks")
	cfg.Idempotent = !c.Bool("no-idempotence")
	cfg.DeliveryTimeout = c.Duration("delivery-timeout")
	cfg.FlushTimeout = c.Duration("flush-timeout")
	cfg.CreateTopic = c.Bool("create-topic")
	cfg.Partitions = int32(c.Int("partitions"))
	cfg.ReplicationFactor = int16(c.Int("replication-factor"))
	if _, err := cfg.ProducerOpts(); err != nil {
		return cfg, command.Usagef("%v", err)
	}
	if dir := c.String("spool-dir"); dir != "" {
		if cfg.Spool, err = spoolFromCLI(c, dir, cfg.MaxRecordSize); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func spoolFromCLI(c *cli.Context, dir string, maxRecord int) (*spool.Options, error) {
	o := spool.DefaultOptions(dir)
	var err error
	if o.MaxBytes, err = parseBytes(c.String("spool-max-bytes")); err != nil {
		return nil, command.Usagef("--spool-max-bytes: %v", err)
	}
	if o.SegmentBytes, err = parseBytes(c.String("spool-segment-bytes")); err != nil {
		return nil, command.Usagef("--spool-segment-bytes: %v", err)
	}
	if o.Full, err = spool.ParseFullPolicy(c.String("spool-full")); err != nil {
		return nil, command.Usagef("--spool-full: %v", err)
	}
	o.SyncInterval = c.Duration("spool-sync")
	if err := o.Validate(); err != nil {
		return nil, command.Usagef("%v", err)
	}
	// A spooled record is the key, the value and their lengths.
	if maxRecord+publish.KeySize+2*binary.MaxVarintLen64 > spool.MaxPayload {
		return nil, command.Usagef("--max-record-size %d is too large for --spool-dir (at most %d)",
			maxRecord, spool.MaxPayload-publish.KeySize-2*binary.MaxVarintLen64)
	}
	return &o, nil
}

// parseBytes reads a size: bytes, or a number with a binary unit (K, M, G,
// T, with or without "iB"/"B").
func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || n < 0 || n > math.MaxInt64>>sh {
		return 0, fmt.Errorf("want a size such as 4GiB or 500MiB, got %q", s)
	}
	return n << sh, nil
}
