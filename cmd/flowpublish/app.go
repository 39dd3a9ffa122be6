package main

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/kafkaopt"
	"github.com/flowpipe/flowpipe/pkg/publish"
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

Keys (--key): none (sticky batches, the fastest), sampler_address (one
exporter's flows in order on one partition), src_dst, or a comma-separated
list of fields (hashed; e.g. sampler_address,in_if).

Examples:
  go run ./scripts/dev/devbroker &     # a local Kafka-protocol broker on 127.0.0.1:9092
  flowcollect | flowenrich ... | flowpublish --topic flows --key sampler_address
  flowpublish --brokers k1:9093,k2:9093 --tls-ca ca.pem --sasl-mechanism SCRAM-SHA-512 \
      --sasl-user flows --compression zstd < flows.bin   # FLOWPUBLISH_SASL_PASSWORD=...
  flowpublish --value-format json --create-topic --partitions 12 < flows.json
  kcat -C -b 127.0.0.1:9092 -t flows -e -f '%s' > flows.bin   # the values form a bin stream`

func newApp() command.App {
	def := publish.DefaultConfig()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "topic", Value: def.Topic, Usage: "Kafka topic to produce to"},
		&cli.StringFlag{Name: "key", Value: "none", Usage: "record key: none, sampler_address, src_dst or a comma-separated list of fields"},
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
	conn = append(conn, kafkaopt.WithLogger(log), kafkaopt.WithMetrics("flowpublish", st.Metrics))
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
	log.Info("publishing", "brokers", strings.Join(kcfg.Brokers, ","), "topic", cfg.Topic, "key", cfg.Key.String(),
		"value_format", cfg.ValueFormat.String(), "compression", cfg.Compression)
	return p.Run(ctx, in)
}

func configFromCLI(c *cli.Context) (publish.Config, error) {
	cfg := publish.DefaultConfig()
	var err error
	cfg.Topic = c.String("topic")
	if cfg.Key, err = publish.ParseKey(c.String("key")); err != nil {
		return cfg, command.Usagef("--key: %v", err)
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
	return cfg, nil
}
