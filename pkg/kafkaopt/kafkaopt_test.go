package kafkaopt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/kafkaopt"
	"github.com/flowpipe/flowpipe/pkg/testutil/kafkatest"
)

// parse runs the flags through a real urfave/cli app, as the tools do.
func parse(t *testing.T, prefix string, args ...string) (kafkaopt.Config, error) {
	t.Helper()
	var cfg kafkaopt.Config
	var ferr error
	app := &cli.App{
		Flags:          kafkaopt.Flags(prefix),
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			cfg, ferr = kafkaopt.FromCLI(c, prefix)
			return nil
		},
	}
	if err := app.Run(append([]string{"x"}, args...)); err != nil {
		t.Fatal(err)
	}
	return cfg, ferr
}

func TestFromCLI(t *testing.T) {
	cfg, err := parse(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Brokers) != 1 || cfg.Brokers[0] != kafkaopt.DefaultBrokers || cfg.TLS.Enabled() {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = parse(t, "kafka-", "--kafka-brokers", "a:1, b:2", "--kafka-tls-ca", "ca.pem",
		"--kafka-sasl-mechanism", "scram-sha-512", "--kafka-sasl-user", "u", "--kafka-sasl-password", "p",
		"--kafka-max-kafka-version", "0.10.2", "--kafka-client-id", "me")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Brokers, "|") != "a:1|b:2" || !cfg.TLS.Enabled() || cfg.TLS.CAFile != "ca.pem" ||
		cfg.SASL.Mechanism != kafkaopt.MechanismSCRAMSHA512 || cfg.SASL.User != "u" || cfg.SASL.Password != "p" ||
		cfg.MaxVersion != "0.10.2" || cfg.ClientID != "me" {
		t.Fatalf("parsed: %+v", cfg)
	}
}

func TestFromCLIRejects(t *testing.T) {
	for _, args := range [][]string{
		{"--brokers", "nohostport"},
		{"--brokers", ""},
		{"--tls-cert", "c.pem"},
		{"--sasl-mechanism", "GSSAPI", "--sasl-user", "u"},
		{"--sasl-mechanism", "PLAIN"},
		{"--sasl-user", "u"},
		{"--max-kafka-version", "0.7"},
	} {
		_, err := parse(t, "", args...)
		var usage *command.UsageError
		if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), "kafkaopt: ") {
			t.Errorf("%v: want a kafkaopt usage error, got %v", args, err)
		}
	}
}

func TestOptsBadFiles(t *testing.T) {
	cfg := kafkaopt.Config{Brokers: []string{"127.0.0.1:1"}, TLS: kafkaopt.TLSConfig{CAFile: "/nonexistent.pem"}}
	if _, err := cfg.Opts(); err == nil || !strings.Contains(err.Error(), "TLS CA") {
		t.Fatalf("want a CA error, got %v", err)
	}
}

// produceOne connects with cfg's options and produces a record, proving
// that the handshake (TLS, SASL, version cap) works against kfake.
func produceOne(t *testing.T, cfg kafkaopt.Config, extra ...kgo.Opt) error {
	t.Helper()
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, kgo.DefaultProduceTopic("flows"), kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.RequestRetries(1), kgo.RetryTimeout(3*time.Second))
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr()
}

// ping only connects: the failure cases need no retry loop.
func ping(t *testing.T, cfg kafkaopt.Config) error {
	t.Helper()
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return cl.Ping(ctx)
}

func TestTLSAndSASLAgainstKfake(t *testing.T) {
	files := kafkatest.NewTLS(t, true)
	cases := []struct {
		mech, user, pass string
	}{
		{kafkaopt.MechanismPlain, "alice", "alice-pw"},
		{kafkaopt.MechanismSCRAMSHA256, "bob", "bob-pw"},
		{kafkaopt.MechanismSCRAMSHA512, "carol", "carol-pw"},
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "flows"), kfake.TLS(files.Server), kfake.EnableSASL()}
	for _, c := range cases {
		kopts = append(kopts, kfake.Superuser(c.mech, c.user, c.pass))
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	good := kafkaopt.Config{
		Brokers: cluster.ListenAddrs(),
		TLS:     kafkaopt.TLSConfig{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey},
	}
	for _, c := range cases {
		cfg := good
		cfg.SASL = kafkaopt.SASLConfig{Mechanism: c.mech, User: c.user, Password: c.pass}
		if err := produceOne(t, cfg); err != nil {
			t.Errorf("%s: %v", c.mech, err)
		}
	}
	// A wrong password, a missing client certificate and an untrusted CA
	// must all fail rather than fall back to something weaker.
	bad := good
	bad.SASL = kafkaopt.SASLConfig{Mechanism: kafkaopt.MechanismSCRAMSHA256, User: "bob", Password: "wrong"}
	if err := ping(t, bad); err == nil {
		t.Error("wrong SASL password accepted")
	}
	bad = good
	bad.SASL = kafkaopt.SASLConfig{Mechanism: kafkaopt.MechanismPlain, User: "alice", Password: "alice-pw"}
	bad.TLS.CertFile, bad.TLS.KeyFile = "", ""
	if err := ping(t, bad); err == nil {
		t.Error("connection without a client certificate accepted")
	}
	bad = good
	bad.SASL = kafkaopt.SASLConfig{Mechanism: kafkaopt.MechanismPlain, User: "alice", Password: "alice-pw"}
	bad.TLS.CAFile = ""
	if err := ping(t, bad); err == nil {
		t.Error("server certificate from an unknown CA accepted")
	}
}

func TestMaxVersionAndMetrics(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "flows"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	// kfake speaks produce v3+ (Kafka 0.11), the oldest cap it can check.
	cfg := kafkaopt.Config{Brokers: cluster.ListenAddrs(), MaxVersion: "0.11.0", ClientID: "flowpipe-test"}
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts = append(opts, kgo.DefaultProduceTopic("flows"),
		kafkaopt.WithMetrics("kafkaopttest", reg), kafkaopt.WithLogger(command.Discard()))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// kprom unregisters when the client closes; its batch hook runs
	// asynchronously, so poll.
	var names string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names = ""
		for _, mf := range mfs {
			names += mf.GetName() + " "
		}
		if strings.Contains(names, "kafkaopttest_produce_records_total") {
			break
		}
	}
	if !strings.Contains(names, "kafkaopttest_produce_records_total") {
		t.Errorf("kprom metrics not on the given registry: %v", names)
	}
	if strings.Contains(names, "_total_") || strings.Contains(names, "buffered_produce_records_total") {
		t.Errorf("gauges named _total not dropped: %v", names)
	}
}

// TestMetricsOmit: a metric the tool counts itself is left out; the rest
// of kprom's stay.
func TestMetricsOmit(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "flows"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	reg := prometheus.NewRegistry()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("flows"),
		kafkaopt.WithMetrics("omittest", reg, "produce_records_total"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var names string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !strings.Contains(names, "omittest_produce_batches_total"); time.Sleep(10 * time.Millisecond) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names = ""
		for _, mf := range mfs {
			names += mf.GetName() + " "
		}
	}
	if !strings.Contains(names, "omittest_produce_batches_total") || strings.Contains(names, "omittest_produce_records_total") {
		t.Errorf("metrics: %v", names)
	}
}
