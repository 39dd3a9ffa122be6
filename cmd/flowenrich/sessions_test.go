package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
	"github.com/flowpipe/flowpipe/pkg/testutil/radiustest"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// probeFlows are two flows per probe of the accounting scenario: the
// probe's address as the source (upload) and as the destination
// (download), a public address on the other side, starting at the
// probe's time; every other one has only time_received_ns.
func probeFlows() []*flowpb.FlowMessage {
	var out []*flowpb.FlowMessage
	pub := ip(enrichtest.AddrAS64500)
	for i, p := range radiustest.Probes {
		up := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, SrcAddr: p.Addr.AsSlice(), DstAddr: pub,
			Proto: 6, SrcPort: 40000, DstPort: 443, Bytes: 1500, Packets: 2, SequenceNum: uint32(2 * i)}
		down := &flowpb.FlowMessage{Type: flowpb.FlowMessage_IPFIX, SrcAddr: pub, DstAddr: p.Addr.AsSlice(),
			Proto: 6, SrcPort: 443, DstPort: 40000, Bytes: 9000, Packets: 6, SequenceNum: uint32(2*i + 1)}
		if i%2 == 0 {
			up.TimeFlowStartNs, down.TimeFlowStartNs = uint64(p.Time), uint64(p.Time)
			up.TimeReceivedNs, down.TimeReceivedNs = uint64(p.Time)+60e9, uint64(p.Time)+60e9
		} else {
			up.TimeReceivedNs, down.TimeReceivedNs = uint64(p.Time), uint64(p.Time)
		}
		out = append(out, up, down)
	}
	return out
}

func encodeFlows(t *testing.T, format framing.Format, flows []*flowpb.FlowMessage) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := framing.NewMessageWriter(&buf, format, nil)
	for _, m := range flows {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readFlows decodes flowenrich's bin output.
func readFlows(t *testing.T, out []byte) []*flowpb.FlowMessage {
	t.Helper()
	r := framing.NewMessageReader(bytes.NewReader(out), framing.FormatBin, 0, nil)
	var flows []*flowpb.FlowMessage
	for {
		m := &flowpb.FlowMessage{}
		if err := r.Read(m); err != nil {
			return flows
		}
		flows = append(flows, m)
	}
}

// checkAttributed checks the subscriber fields of the records flowenrich
// made of probeFlows against the probes, and that the rest of each record
// came through.
func checkAttributed(t *testing.T, got []*flowpb.FlowMessage) {
	t.Helper()
	want := probeFlows()
	if len(got) != len(want) {
		t.Fatalf("%d records out, want %d", len(got), len(want))
	}
	for n, m := range got {
		p := radiustest.Probes[n/2]
		user, other := m.SrcUser, m.DstUser
		if n%2 == 1 {
			user, other = m.DstUser, m.SrcUser
		}
		if user != p.User || other != "" {
			t.Errorf("flow %d (%v at %s): users %q/%q, want %q", n, p.Addr,
				time.Unix(0, p.Time).UTC().Format("15:04:05.000"), m.SrcUser, m.DstUser, p.User)
		}
		if m.SequenceNum != want[n].SequenceNum || m.Bytes != want[n].Bytes || (n%2 == 0 && m.DstAs != 64500) {
			t.Errorf("flow %d: %v", n, m)
		}
		if p.User == "alice" && p.Addr.Is4() && (m.SrcSessionId+m.DstSessionId != "s1" ||
			m.SrcCallingStationId+m.DstCallingStationId != "00-11-22-33-44-55") {
			t.Errorf("flow %d: session id %q%q, calling station %q%q", n, m.SrcSessionId, m.DstSessionId,
				m.SrcCallingStationId, m.DstCallingStationId)
		}
	}
}

// TestSessionsFromDetailFile: FreeRADIUS (the example configuration)
// writes the accounting radclient sends into its detail files; flowenrich
// reads them before the first flow and attributes bin and JSON input;
// restarted from its state file it attributes the same without reading
// the detail files again.
func TestSessionsFromDetailFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FreeRADIUS")
	}
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) // the replicate target
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	srv := radiustest.Start(t, radiustest.Config{ReplicateTo: sink.LocalAddr().(*net.UDPAddr).AddrPort(), ReplicateSecret: "x"})
	if n, out := radiustest.Radclient(t, srv.Acct, radiustest.ClientSecret, radiustest.Packets); n != radiustest.PacketCount {
		t.Fatalf("FreeRADIUS answered %d:\n%s", n, out)
	}
	f := newFixture(t)
	state := filepath.Join(t.TempDir(), "sessions.state")
	args := f.args("--radius-detail", srv.DetailGlob, "--sessions-state", state)

	code, out, stderr := runApp(t, args, bytes.NewReader(encodeFlows(t, framing.FormatBin, probeFlows())))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkAttributed(t, readFlows(t, out))
	if !strings.Contains(stderr, "detail files read to their end") || !strings.Contains(stderr, "records=8") {
		t.Errorf("log: %s", stderr)
	}

	// JSON in, from the state file: the detail files are not read again.
	code, out, stderr = runApp(t, args, bytes.NewReader(encodeFlows(t, framing.FormatJSON, probeFlows())))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkAttributed(t, readFlows(t, out))
	if !strings.Contains(stderr, "sessions state loaded") || !strings.Contains(stderr, "records=0") {
		t.Errorf("log: %s", stderr)
	}
}

// logWatcher scans a process's log for lines as they come.
type logWatcher struct {
	lines chan string
	all   strings.Builder
}

func watchLog(r io.Reader) *logWatcher {
	w := &logWatcher{lines: make(chan string, 1000)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	return w
}

var addrAttr = regexp.MustCompile(`addr=(\S+)`)

// addr waits for a log line containing msg and returns its addr.
func (w *logWatcher) addr(t *testing.T, msg string) netip.AddrPort {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				t.Fatalf("log ended before %q:\n%s", msg, w.all.String())
			}
			w.all.WriteString(l + "\n")
			if m := addrAttr.FindStringSubmatch(l); m != nil && strings.Contains(l, msg) {
				return netip.MustParseAddrPort(strings.Trim(m[1], `"`))
			}
		case <-timeout:
			t.Fatalf("no %q in the log:\n%s", msg, w.all.String())
		}
	}
}

// TestSessionsListenerAndKafka runs flowenrich with a RADIUS listener and
// a Kafka topic at once: the topic's backlog (the JSON records FreeRADIUS
// would write, produced before flowenrich starts) is applied before the
// first flow; radclient's packets to the listener while flowenrich runs
// are applied within a second; the metrics show both sources and the
// flows attributed.
func TestSessionsListenerAndKafka(t *testing.T) {
	f := newFixture(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "radius-accounting"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	produceJSON(t, cluster, "radius-accounting",
		`{"Acct-Status-Type":"Start","NAS-IP-Address":"192.0.2.9","Acct-Session-Id":"k1","User-Name":"kafka-kim",`+
			`"Framed-IP-Address":"100.64.0.77","Event-Timestamp":"Jan  1 2026 07:00:00 UTC"}`)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	errR, errW := io.Pipe()
	var out bytes.Buffer
	args := f.args("--radius-listen", "127.0.0.1:0", "--radius-secret-file", secret, "--radius-allow", "127.0.0.0/8",
		"--sessions-brokers", strings.Join(cluster.ListenAddrs(), ","), "--sessions-topic", "radius-accounting",
		"--metrics-listen", "127.0.0.1:0")
	done := make(chan int, 1)
	go func() {
		done <- command.Run(context.Background(), newApp(), args, command.Streams{In: inR, Out: &out, Err: errW})
		errW.Close()
	}()
	log := watchLog(errR)
	listen := log.addr(t, "RADIUS accounting listener started")
	metricsAddr := log.addr(t, "serving metrics")
	go func() {
		for range log.lines { // keep the log flowing
		}
	}()
	if n, o := radiustest.Radclient(t, listen, "s3cret", radiustest.Packets); n != radiustest.PacketCount {
		t.Fatalf("answered %d:\n%s", n, o)
	}
	flows := probeFlows()
	flows = append(flows, &flowpb.FlowMessage{SrcAddr: ip("100.64.0.77"), DstAddr: ip(enrichtest.AddrAS64500),
		TimeFlowStartNs: uint64(time.Date(2026, 1, 1, 7, 30, 0, 0, time.UTC).UnixNano())})
	if _, err := inW.Write(encodeFlows(t, framing.FormatBin, flows)); err != nil {
		t.Fatal(err)
	}
	// Scrape while running (the stream reports its counts every few
	// thousand records and at the end: look for the sources' series).
	body := scrape(t, metricsAddr)
	for _, series := range []string{
		`flowenrich_sessions{source="radius",state="active"} 3`,
		`flowenrich_sessions{source="radius",state="stopped"} 2`,
		`flowenrich_sessions{source="kafka",state="active"} 1`,
		`flowenrich_accounting_records_total{source="radius"} 8`,
		`flowenrich_accounting_records_rejected_total{reason="unused_status_type",source="radius"} 1`,
		`flowenrich_accounting_records_total{source="kafka"} 1`,
	} {
		if !strings.Contains(body, series+"\n") {
			t.Errorf("metrics lack %s", series)
		}
	}
	lintMetrics(t, body)
	inW.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
	got := readFlows(t, out.Bytes())
	if len(got) == 0 {
		t.Fatal("no output")
	}
	checkAttributed(t, got[:len(got)-1])
	if last := got[len(got)-1]; last.SrcUser != "kafka-kim" || last.SrcSessionId != "k1" {
		t.Errorf("the Kafka session did not attribute its flow: %v", last)
	}
}

func produceJSON(t *testing.T, c *kfake.Cluster, topic string, values ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func scrape(t *testing.T, addr netip.AddrPort) string {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lintMetrics runs promtool on the exposition, when it is installed.
func lintMetrics(t *testing.T, body string) {
	t.Helper()
	promtool, ok := tools.Optional(t, "promtool")
	if !ok {
		t.Log("promtool missing: lint skipped")
		return
	}
	// Only the text format: the scrape above asked for it.
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool: %v\n%s", err, out)
	}
}

// TestSessionsUsage: bad combinations of session flags exit 2.
func TestSessionsUsage(t *testing.T) {
	f := newFixture(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--radius-listen", "127.0.0.1:0"},
		{"--radius-secret-file", secret},
		{"--radius-listen", "127.0.0.1:0", "--radius-secret-file", secret, "--radius-allow", "nope"},
		{"--sessions-state", "x"},
		{"--radius-detail", "x", "--session-history", "0s"},
	} {
		if code, _, stderr := runApp(t, f.args(args...), nil); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
	// Sessions alone are enough to run.
	code, _, stderr := runApp(t, []string{"flowenrich", "--radius-detail", filepath.Join(t.TempDir(), "none*")}, nil)
	if code != 0 {
		t.Errorf("sessions only: exit %d: %s", code, stderr)
	}
	code, _, stderr = runApp(t, []string{"flowenrich", "--radius-listen", "127.0.0.1:0", "--radius-secret-file", "/nonexistent"}, nil)
	if code != 1 || !strings.Contains(stderr, "secret") {
		t.Errorf("missing secret file: exit %d: %s", code, stderr)
	}
}

// TestSessionsSIGTERMSavesState runs the built binary with a detail file
// and a state file on an input that stays open: an attributed record comes
// out while the input is idle, and SIGTERM ends it with exit 0 and the
// state saved, with the session and the detail file's position in it.
func TestSessionsSIGTERMSavesState(t *testing.T) {
	bin := tools.Build(t, ".")
	dir := t.TempDir()
	detail := filepath.Join(dir, "detail")
	if err := os.WriteFile(detail, []byte("Thu Jan  1 08:00:00 2026\n\tAcct-Status-Type = Start\n\tNAS-IP-Address = 192.0.2.1\n"+
		"\tAcct-Session-Id = \"s1\"\n\tUser-Name = \"alice\"\n\tFramed-IP-Address = 100.64.0.1\n\tTimestamp = 1767254400\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "sessions.state")
	p := tools.Start(t, bin, "--radius-detail", detail, "--sessions-state", state, "--format", "json")
	if _, err := p.Stdin.Write([]byte(`{"src_addr":"100.64.0.1","dst_addr":"192.0.2.10","time_flow_start_ns":1767254460000000000}` + "\n")); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(p.Stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case <-line: // the JSON writer's names for the subscriber fields are another stage's work
	case <-time.After(20 * time.Second):
		t.Fatalf("no record while the input was idle; stderr: %s", p.Log.String())
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr: %s", err, p.Log.String())
	}
	tbl := subscriber.New(subscriber.Config{})
	pos, err := tbl.LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	if s := tbl.Lookup(netip.MustParseAddr("100.64.0.1"), 1767254460e9); s == nil || s.User() != "alice" || len(pos["detail"]) == 0 {
		t.Fatalf("state after SIGTERM: session %v, positions %q", s, pos)
	}
}
