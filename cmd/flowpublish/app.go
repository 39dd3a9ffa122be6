package main

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/kafkaopt"
	"github.com/flowpipe/flowpipe/pkg/publish"
	"github.com/flowpipe/flowpipe/pkg/telemetry"
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
		command.MetricsFlag(""),
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

func run(ctx context.Context, c *cli.Context, s command.Streams) error {
	log, err := command.NewLogger(c, s.Err)
	if err != nil {
		return err
	}
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
	reg := telemetry.NewRegistry()
	conn = append(conn, kafkaopt.WithLogger(log), kafkaopt.WithMetrics("flowpublish", reg))
	p, err := publish.New(cfg, conn, reg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	stopMetrics, err := command.StartMetrics(c, reg, log)
	if err != nil {
		return err
	}
	defer stopMetrics()

	command.GrowPipe(s.In) // flowenrich's 256 KiB writes: one read and wake-up each
	in, restore := pollable(s.In)
	defer restore()
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

// pollable makes a pipe or socket on stdin non-blocking and reopens it
// through the runtime poller, so that SIGTERM can interrupt a read that
// waits for upstream (via SetReadDeadline) and flowpublish can flush and
// exit. Files and terminals are left alone. restore puts the blocking mode
// back, as the descriptor is shared with the parent.
func pollable(r io.Reader) (io.Reader, func()) {
	f, ok := r.(*os.File)
	if !ok {
		return r, func() {}
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return r, func() {}
	}
	fd := int(f.Fd()) // Fd leaves f in blocking mode; we switch the copy below
	if err := syscall.SetNonblock(fd, true); err != nil {
		return r, func() {}
	}
	nf := os.NewFile(uintptr(fd), f.Name()) // non-blocking fd: registered with the poller
	if err := nf.SetReadDeadline(time.Time{}); err != nil {
		_ = syscall.SetNonblock(fd, false)
		return r, func() {}
	}
	return nf, func() { _ = syscall.SetNonblock(fd, false) }
}
