// Package kafkaopt turns the Kafka connection flags shared by flowpublish
// and flowexport (brokers, TLS, SASL, client id, version cap) into franz-go
// client options, so both tools spell and check them the same way.
//
// Typical use in a command:
//
//	Flags: append(myFlags, kafkaopt.Flags("")...),
//	...
//	cfg, err := kafkaopt.FromCLI(c, "")   // usage errors exit 2
//	opts, err := cfg.Opts()               // reads the TLS files
//	opts = append(opts, kafkaopt.WithLogger(log), kafkaopt.WithMetrics("flowpublish", reg))
package kafkaopt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/plugin/kprom"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
)

// DefaultBrokers is the dev broker's address (scripts/dev/devbroker).
const DefaultBrokers = "127.0.0.1:9092"

// SASL mechanisms, spelled as Kafka spells them.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Config is how to reach and authenticate to a Kafka cluster.
type Config struct {
	Brokers  []string // host:port seeds
	ClientID string   // empty: franz-go's default
	TLS      TLSConfig
	SASL     SASLConfig
	// MaxVersion caps the protocol to a Kafka release ("0.10.2", "2.8",
	// "3.7"); empty means whatever the broker offers.
	MaxVersion  string
	DialTimeout time.Duration // 0: franz-go's default (10 s)
}

// TLSConfig enables TLS when Enable is set or any file is given.
type TLSConfig struct {
	Enable             bool
	CAFile             string // PEM bundle; empty: system roots
	CertFile, KeyFile  string // client certificate (mutual TLS)
	ServerName         string // overrides the host name verified
	InsecureSkipVerify bool
}

// SASLConfig enables SASL when Mechanism is set.
type SASLConfig struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (case-insensitive)
	User      string
	Password  string
}

// Enabled says whether TLS will be used.
func (t TLSConfig) Enabled() bool {
	return t.Enable || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" ||
		t.ServerName != "" || t.InsecureSkipVerify
}

// Validate checks the configuration without touching files or network.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafkaopt: no brokers given")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafkaopt: broker %q: want host:port", b)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("kafkaopt: a TLS client certificate needs both a cert and a key file")
	}
	switch strings.ToUpper(c.SASL.Mechanism) {
	case "":
		if c.SASL.User != "" || c.SASL.Password != "" {
			return errors.New("kafkaopt: SASL user or password given without a SASL mechanism")
		}
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		if c.SASL.User == "" {
			return fmt.Errorf("kafkaopt: SASL %s needs a user", c.SASL.Mechanism)
		}
	default:
		return fmt.Errorf("kafkaopt: unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.SASL.Mechanism)
	}
	if c.MaxVersion != "" && kversion.FromString(c.MaxVersion) == nil {
		return fmt.Errorf("kafkaopt: unknown Kafka version %q (e.g. 0.10.2, 2.8, 3.7)", c.MaxVersion)
	}
	return nil
}

// Opts returns the franz-go options for c: seeds, client id, TLS dialer,
// SASL mechanism and version cap. It reads the TLS files.
func (c Config) Opts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	if c.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(c.DialTimeout))
	}
	if c.TLS.Enabled() {
		tc, err := c.TLS.build()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch user, pass := c.SASL.User, c.SASL.Password; strings.ToUpper(c.SASL.Mechanism) {
	case MechanismPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case MechanismSCRAMSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case MechanismSCRAMSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	}
	if c.MaxVersion != "" {
		opts = append(opts, kgo.MaxVersions(kversion.FromString(c.MaxVersion)))
	}
	return opts, nil
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in flag for test clusters
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaopt: TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafkaopt: TLS CA %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaopt: TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// WithLogger sends franz-go's log lines to log at their own levels. Its
// debug lines are very chatty; they show only with --log-level debug.
func WithLogger(log *slog.Logger) kgo.Opt { return kgo.WithLogger(slogAdapter{log}) }

// WithMetrics registers franz-go's client metrics (connections, bytes,
// produce/fetch batches and records by node and topic, request round-trip
// histogram) as <namespace>_* on reg. Use it on one client per registry:
// the metrics are registered when the client starts and unregistered when
// it closes. kprom's buffered_{fetch,produce}_{records,bytes}_total are left
// out: they are gauges named like counters, which promtool rejects; each
// tool exports its own buffered gauge. omit names more of kprom's metrics
// (without the namespace, e.g. "produce_records_total") to leave out,
// where the tool counts the same fact itself: one metric per fact.
func WithMetrics(namespace string, reg prometheus.Registerer, omit ...string) kgo.Opt {
	return kgo.WithHooks(kprom.NewMetrics(namespace, kprom.Registerer(lintRegisterer{reg, namespace, omit}),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.Batches, kprom.Records,
			kprom.CompressedBytes, kprom.UncompressedBytes, kprom.ConsistentNaming),
		kprom.Histograms(kprom.RequestDurationE2E)))
}

// lintRegisterer drops the collectors whose names promtool rejects, and
// those omitted.
type lintRegisterer struct {
	prometheus.Registerer
	namespace string
	omit      []string
}

func (r lintRegisterer) Register(c prometheus.Collector) error {
	if r.rejected(c) {
		return nil
	}
	return r.Registerer.Register(c)
}

func (r lintRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r lintRegisterer) Unregister(c prometheus.Collector) bool {
	if r.rejected(c) {
		return true
	}
	return r.Registerer.Unregister(c)
}

// rejected reports kprom's buffered_*_total gauges and omitted metrics.
func (r lintRegisterer) rejected(c prometheus.Collector) bool {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	found := false
	for d := range ch {
		s := d.String() // Desc{fqName: "ns_buffered_produce_records_total", ...}
		found = found || strings.Contains(s, "_buffered_") && strings.Contains(s, `_total", help`)
		for _, name := range r.omit {
			found = found || strings.Contains(s, `fqName: "`+r.namespace+"_"+name+`"`)
		}
	}
	return found
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case a.log.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case a.log.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	case a.log.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	default:
		return kgo.LogLevelError
	}
}

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	}
	a.log.Log(context.Background(), l, "kafka: "+msg, keyvals...)
}

// Flag names, without prefix.
const (
	flagBrokers       = "brokers"
	flagClientID      = "client-id"
	flagTLS           = "tls"
	flagTLSCA         = "tls-ca"
	flagTLSCert       = "tls-cert"
	flagTLSKey        = "tls-key"
	flagTLSServerName = "tls-server-name"
	flagTLSInsecure   = "tls-insecure-skip-verify"
	flagSASLMechanism = "sasl-mechanism"
	flagSASLUser      = "sasl-user"
	flagSASLPassword  = "sasl-password"
	flagMaxVersion    = "max-kafka-version"
)

// Flags returns the connection flags, each name prefixed with prefix
// (e.g. "" gives --brokers, "kafka-" gives --kafka-brokers). Every flag also
// gets the tool's environment variable from pkg/command, which is the way
// to pass --sasl-password without showing it in ps.
func Flags(prefix string) []cli.Flag {
	cat := "Kafka connection:"
	return []cli.Flag{
		&cli.StringFlag{Name: prefix + flagBrokers, Value: DefaultBrokers, Category: cat,
			Usage: "comma-separated seed brokers, host:port"},
		&cli.StringFlag{Name: prefix + flagClientID, Category: cat,
			Usage: "Kafka client id (default: the tool's name)"},
		&cli.BoolFlag{Name: prefix + flagTLS, Category: cat,
			Usage: "connect with TLS (implied by any other --tls-* flag)"},
		&cli.StringFlag{Name: prefix + flagTLSCA, Category: cat,
			Usage: "PEM file of CA certificates to trust (default: system roots)"},
		&cli.StringFlag{Name: prefix + flagTLSCert, Category: cat,
			Usage: "PEM client certificate for mutual TLS (with --" + prefix + flagTLSKey + ")"},
		&cli.StringFlag{Name: prefix + flagTLSKey, Category: cat,
			Usage: "PEM private key of --" + prefix + flagTLSCert},
		&cli.StringFlag{Name: prefix + flagTLSServerName, Category: cat,
			Usage: "host name to verify in the broker's certificate"},
		&cli.BoolFlag{Name: prefix + flagTLSInsecure, Category: cat,
			Usage: "do not verify the broker's certificate (tests only)"},
		&cli.StringFlag{Name: prefix + flagSASLMechanism, Category: cat,
			Usage: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)"},
		&cli.StringFlag{Name: prefix + flagSASLUser, Category: cat, Usage: "SASL user"},
		&cli.StringFlag{Name: prefix + flagSASLPassword, Category: cat,
			Usage: "SASL password (prefer the environment variable)"},
		&cli.StringFlag{Name: prefix + flagMaxVersion, Category: cat,
			Usage: "cap the protocol at this Kafka release for old brokers, e.g. 0.10.2"},
	}
}

// FromCLI reads the flags made by Flags(prefix). An invalid combination is
// a *command.UsageError (exit code 2).
func FromCLI(c *cli.Context, prefix string) (Config, error) {
	var brokers []string
	for _, b := range strings.Split(c.String(prefix+flagBrokers), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	cfg := Config{
		Brokers:  brokers,
		ClientID: c.String(prefix + flagClientID),
		TLS: TLSConfig{
			Enable:             c.Bool(prefix + flagTLS),
			CAFile:             c.String(prefix + flagTLSCA),
			CertFile:           c.String(prefix + flagTLSCert),
			KeyFile:            c.String(prefix + flagTLSKey),
			ServerName:         c.String(prefix + flagTLSServerName),
			InsecureSkipVerify: c.Bool(prefix + flagTLSInsecure),
		},
		SASL: SASLConfig{
			Mechanism: strings.ToUpper(c.String(prefix + flagSASLMechanism)),
			User:      c.String(prefix + flagSASLUser),
			Password:  c.String(prefix + flagSASLPassword),
		},
		MaxVersion: c.String(prefix + flagMaxVersion),
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, command.Usagef("%v", err)
	}
	return cfg, nil
}
