package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/spool"
	"github.com/flowpipe/flowpipe/pkg/testutil/kafkatest"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// flow i of a varied test stream: IPv4 and IPv6, 5 exporters.
func flow(i int) *flowpb.FlowMessage {
	m := &flowpb.FlowMessage{
		Type:           flowpb.FlowMessage_NETFLOW_V9,
		TimeReceivedNs: uint64(1_700_000_000_000_000_000 + i),
		SequenceNum:    uint32(i / 5),
		SamplingRate:   uint64(i % 3 * 100),
		SamplerAddress: []byte{198, 51, 100, byte(i % 5)},
		SrcAddr:        []byte{10, 0, byte(i >> 8), byte(i)},
		DstAddr:        []byte{172, 16, byte(i >> 8), byte(i)},
		Bytes:          uint64(64 + i),
		Packets:        uint64(1 + i%7),
		Etype:          0x800,
		Proto:          17,
		SrcPort:        uint32(i % 65536),
		DstPort:        53,
		SrcAs:          uint32(64496 + i%10),
		SrcCountry:     "DE",
	}
	if i%4 == 0 {
		m.Etype = 0x86dd
		m.SrcAddr = append(make([]byte, 12, 16), byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
		m.SrcAddr[0], m.SrcAddr[1] = 0x20, 0x01
		m.DstAddr = append([]byte{0x20, 0x01, 0x0d, 0xb8}, make([]byte, 12)...)
	}
	return m
}

func stream(t testing.TB, from, to int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	for i := from; i < to; i++ {
		if err := w.WriteMessage(flow(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func cluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, "flows")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func runApp(t *testing.T, in io.Reader, args ...string) (code int, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = command.Run(context.Background(), newApp(), append([]string{"flowpublish"}, args...),
		command.Streams{In: in, Out: &out, Err: &errb})
	if out.Len() > 0 {
		t.Errorf("stdout is not for data here: %q", out.String())
	}
	return code, errb.String()
}

// consume returns the values of want records of topic, from the start.
func consume(t *testing.T, want int, topic string, opts ...kgo.Opt) [][]byte {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out [][]byte
	for len(out) < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
	}
	short, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	cl.PollFetches(short).EachRecord(func(r *kgo.Record) { out = append(out, r.Value) })
	return out
}

// decodeSorted reads a concatenation of bin values and returns the flows
// by receive time.
func decodeSorted(t *testing.T, b []byte) []*flowpb.FlowMessage {
	t.Helper()
	// UnmarshalVT copies: MessageReader's zero-copy strings would point
	// into a reused buffer, and CloneVT does not copy strings.
	r := framing.NewReader(bytes.NewReader(b), 0)
	var out []*flowpb.FlowMessage
	for {
		frame, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		m := &flowpb.FlowMessage{}
		if err := m.UnmarshalVT(frame); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TimeReceivedNs < out[j].TimeReceivedNs })
	return out
}

func checkFlows(t *testing.T, got []*flowpb.FlowMessage, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d flows, want %d", len(got), n)
	}
	for i, m := range got {
		if !m.EqualVT(flow(i)) {
			t.Fatalf("flow %d differs:\n got %v\nwant %v", i, m, flow(i))
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--key", "nosuch"},
		{"--compression", "brotli"},
		{"--value-format", "xml"},
		{"--input-format", "csv"},
		{"--acks", "leader"},
		{"--acks", "some", "--no-idempotence"},
		{"--max-kafka-version", "0.10.2"},
		{"--brokers", "nohost"},
		{"--sasl-mechanism", "PLAIN"},
		{"--max-buffered-records", "0"},
		{"--spool-dir", "x", "--spool-full", "drop"},
		{"--spool-dir", "x", "--spool-max-bytes", "lots"},
		{"--spool-dir", "x", "--spool-max-bytes", "1MiB"},
		{"--spool-dir", "x", "--max-record-size", "20000000"},
		{"extra-arg"},
	} {
		code, stderr := runApp(t, strings.NewReader(""), args...)
		if code != command.ExitUsage || !strings.HasPrefix(stderr, "flowpublish: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestPublish(t *testing.T) {
	const n = 3000
	c := cluster(t)
	addr := c.ListenAddrs()[0]
	code, stderr := runApp(t, bytes.NewReader(stream(t, 0, n)), "--brokers", addr, "--key", "sampler_address")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkFlows(t, decodeSorted(t, bytes.Join(consume(t, n, "flows", kgo.SeedBrokers(addr)), nil)), n)
}

func TestEmptyInput(t *testing.T) {
	c := cluster(t)
	if code, stderr := runApp(t, strings.NewReader(""), "--brokers", c.ListenAddrs()[0]); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestJSONValuesAndCreateTopic(t *testing.T) {
	const n = 200
	c := cluster(t)
	addr := c.ListenAddrs()[0]
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		in.Write(framing.AppendJSONLine(nil, flow(i), nil))
	}
	code, stderr := runApp(t, &in, "--brokers", addr, "--topic", "flows-json", "--create-topic",
		"--partitions", "3", "--value-format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	vals := consume(t, n, "flows-json", kgo.SeedBrokers(addr))
	var got []*flowpb.FlowMessage
	for _, v := range vals {
		m := &flowpb.FlowMessage{}
		if err := framing.ParseJSON(v, m, nil); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].TimeReceivedNs < got[j].TimeReceivedNs })
	checkFlows(t, got, n)
}

// TestFailedRecordsExit1: records the broker rejects make the exit code 1
// with one line that counts them by reason.
func TestFailedRecordsExit1(t *testing.T) {
	c := cluster(t)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 87 // INVALID_RECORD
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	code, stderr := runApp(t, bytes.NewReader(stream(t, 0, 10)), "--brokers", c.ListenAddrs()[0], "--log-level", "error")
	if code != 1 || !strings.Contains(stderr, "flowpublish: publish: 10 of 10 records failed (invalid_record: 10)") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestTLSAndSASL(t *testing.T) {
	const n = 100
	files := kafkatest.NewTLS(t, true)
	c := cluster(t, kfake.TLS(files.Server), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "flows", "s3cret"))
	addr := c.ListenAddrs()[0]
	t.Setenv("FLOWPUBLISH_SASL_PASSWORD", "s3cret")
	code, stderr := runApp(t, bytes.NewReader(stream(t, 0, n)), "--brokers", addr,
		"--tls-ca", files.CA, "--tls-cert", files.ClientCert, "--tls-key", files.ClientKey,
		"--sasl-mechanism", "scram-sha-512", "--sasl-user", "flows", "--compression", "zstd")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(files.CA)
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	vals := consume(t, n, "flows", kgo.SeedBrokers(addr),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scramAuth("flows", "s3cret")))
	checkFlows(t, decodeSorted(t, bytes.Join(vals, nil)), n)

	// Without the CA the broker's certificate is refused: exit 1, not a hang.
	code, stderr = runApp(t, bytes.NewReader(stream(t, 0, 1)), "--brokers", addr, "--tls",
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "flows", "--delivery-timeout", "2s")
	if code != 1 {
		t.Fatalf("untrusted broker: exit %d: %s", code, stderr)
	}
}

// TestKcatInterop: librdkafka (Debian's kcat) reads what flowpublish wrote
// in every codec, and the values decode to the flows sent.
func TestKcatInterop(t *testing.T) {
	kcat := tools.Require(t, "kcat")
	const n = 500
	c := cluster(t, kfake.SeedTopics(2, "none", "gzip", "snappy", "lz4", "zstd"))
	addr := c.ListenAddrs()[0]
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			code, stderr := runApp(t, bytes.NewReader(stream(t, 0, n)), "--brokers", addr, "--topic", codec,
				"--compression", codec, "--key", "src_dst")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, kcat, "-C", "-b", addr, "-t", codec, "-e", "-q", "-f", "%s")
			var errb bytes.Buffer
			cmd.Stderr = &errb
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kcat: %v: %s", err, errb.String())
			}
			checkFlows(t, decodeSorted(t, out), n)
		})
	}
}

// TestMetrics scrapes /metrics while records flow and lints it, without
// and with a spool. Acknowledged records are counted once
// (records_produced_total, not kprom's produce_records_total as well).
func TestMetrics(t *testing.T) {
	promtool := tools.Require(t, "promtool")
	t.Run("no-spool", func(t *testing.T) { testMetrics(t, promtool) })
	t.Run("spool", func(t *testing.T) {
		testMetrics(t, promtool, "--spool-dir", t.TempDir())
	})
}

func testMetrics(t *testing.T, promtool string, extra ...string) {
	c := cluster(t)
	port := freePort(t)
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- command.Run(context.Background(), newApp(), append([]string{"flowpublish", "--brokers", c.ListenAddrs()[0],
			"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", port)}, extra...), command.Streams{In: pr, Out: io.Discard, Err: &errb})
	}()
	if _, err := pw.Write(stream(t, 0, 100)); err != nil {
		t.Fatal(err)
	}
	// A scrape is not atomic (the last promise may be between counting
	// its record and releasing it), so scrape until every value is there.
	wants := []string{"flowpublish_records_in_total 100", "flowpublish_records_produced_total 100",
		"flowpublish_records_buffered 0", "flowpublish_produce_latency_seconds_count 4",
		"flowpublish_batch_records_count", "flowpublish_produce_batches_total", "flowpublish_bytes_in_total"}
	if len(extra) > 0 {
		wants = append(wants, "flowpublish_spool_records 0", "flowpublish_spool_bytes ", "flowpublish_spool_oldest_record_age_seconds 0",
			"flowpublish_spool_drained_records_total 0", `flowpublish_spool_dropped_records_total{reason="drop_oldest"} 0`,
			`flowpublish_spool_corruptions_total{reason="torn_tail"} 0`)
	}
	var body []byte
	missing := wants
	deadline := time.Now().Add(10 * time.Second)
	for len(missing) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			continue
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = nil
		for _, want := range wants {
			if !bytes.Contains(body, []byte(want)) {
				missing = append(missing, want)
			}
		}
	}
	pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range missing {
		t.Errorf("metrics lack %q", want)
	}
	if bytes.Contains(body, []byte("flowpublish_produce_records_total")) {
		t.Error("kprom's produce_records_total duplicates flowpublish_records_produced_total")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var doneLine = regexp.MustCompile(`msg=done read=(\d+) produced=(\d+) failed=(\d+)`)

// TestBinarySignalsAndPipes runs the built binary with a real pipe on
// stdin: SIGTERM while upstream is still open (the read must be
// interrupted; everything read is acknowledged, exit 0), EOF, and an
// upstream that dies inside a frame.
func TestBinarySignalsAndPipes(t *testing.T) {
	bin := tools.Build(t, ".")
	c := cluster(t)
	// Slow acknowledgements, so SIGTERM finds records in flight.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		time.Sleep(20 * time.Millisecond)
		return nil, nil, false
	})
	addr := c.ListenAddrs()[0]
	start := func(topic string) (*exec.Cmd, *os.File, *bytes.Buffer) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--brokers", addr, "--topic", topic, "--max-buffered-records", "500")
		cmd.Stdin = r
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		return cmd, w, &errb
	}
	exitCode := func(cmd *exec.Cmd) int { return tools.WaitExit(t, cmd, 30*time.Second) }
	if err := kadmCreate(addr, "sigterm", "eof", "cut", "sighup"); err != nil {
		t.Fatal(err)
	}

	t.Run("sigterm", func(t *testing.T) {
		cmd, w, errb := start("sigterm")
		// More than the pipe and the buffer hold: the writer is still
		// blocked when SIGTERM comes, and gets EPIPE afterwards.
		go func() { _, _ = w.Write(stream(t, 0, 20000)) }()
		if len(consume(t, 1, "sigterm", kgo.SeedBrokers(addr))) == 0 {
			t.Fatal("nothing produced")
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code := exitCode(cmd)
		w.Close()
		m := doneLine.FindStringSubmatch(errb.String())
		if code != 0 || m == nil || m[1] != m[2] || m[3] != "0" {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		read, _ := strconv.Atoi(m[1])
		if read == 0 || read == 20000 {
			t.Fatalf("read %d records: SIGTERM was not mid-stream", read)
		}
		t.Logf("read and acknowledged %d records before SIGTERM", read)
		got := decodeSorted(t, bytes.Join(consume(t, read, "sigterm", kgo.SeedBrokers(addr)), nil))
		checkFlows(t, got, read) // the first `read` flows, each once
	})
	t.Run("eof", func(t *testing.T) {
		cmd, w, errb := start("eof")
		if _, err := w.Write(stream(t, 0, 2000)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		if code := exitCode(cmd); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		checkFlows(t, decodeSorted(t, bytes.Join(consume(t, 2000, "eof", kgo.SeedBrokers(addr)), nil)), 2000)
	})
	t.Run("sighup", func(t *testing.T) {
		cmd, w, errb := start("sighup")
		if _, err := w.Write(stream(t, 0, 1000)); err != nil {
			t.Fatal(err)
		}
		if len(consume(t, 1, "sighup", kgo.SeedBrokers(addr))) == 0 {
			t.Fatal("nothing produced")
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(stream(t, 1000, 2000)); err != nil {
			t.Fatalf("flowpublish gone after SIGHUP: %v", err)
		}
		w.Close()
		if code := exitCode(cmd); code != 0 || !strings.Contains(errb.String(), "SIGHUP: nothing to reload; going on") {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		checkFlows(t, decodeSorted(t, bytes.Join(consume(t, 2000, "sighup", kgo.SeedBrokers(addr)), nil)), 2000)
	})
	t.Run("upstream-dies-mid-frame", func(t *testing.T) {
		cmd, w, errb := start("cut")
		s := stream(t, 0, 100)
		if _, err := w.Write(append(s, stream(t, 100, 101)[:10]...)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		code := exitCode(cmd)
		if code != 1 || !strings.Contains(errb.String(), fmt.Sprintf("offset %d", len(s))) {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		checkFlows(t, decodeSorted(t, bytes.Join(consume(t, 100, "cut", kgo.SeedBrokers(addr)), nil)), 100)
	})
	t.Run("help-into-closed-pipe", func(t *testing.T) {
		cmd := exec.Command(bin, "--help")
		r, w, _ := os.Pipe()
		r.Close()
		cmd.Stdout = w
		err := cmd.Run()
		w.Close()
		if err != nil {
			t.Fatalf("--help into a closed pipe: %v", err)
		}
	})
}

// TestSpoolLocked: a second flowpublish on a spool directory in use exits
// 1 with one line naming the directory and the process holding it.
func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := spool.Open(spool.DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	code, stderr := runApp(t, strings.NewReader(""), "--spool-dir", dir, "--log-level", "error")
	want := fmt.Sprintf("%s is locked by process %d", dir, os.Getpid())
	if code != command.ExitRuntime || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d: %q", code, stderr)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4GiB": 4 << 30, "500MiB": 500 << 20, "1G": 1 << 30, "12345": 12345, "64 kib": 64 << 10, "2TB": 2 << 40} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "G", "-1", "4XB", "9999999999T"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
