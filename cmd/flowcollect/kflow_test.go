package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// kflowFields are the fields of KFlow's JSON records, in the order its
// FlowSerializer writes them (sukhinin/kflow, FlowSerializer.kt).
var kflowFields = []string{"dvc", "src", "srcp", "dst", "dstp", "proto", "flags", "bytes", "pkts", "time"}

// ianaKeywords are the protocol keywords flowgen's traffic uses, by number.
var ianaKeywords = map[string]string{"1": "ICMP", "6": "TCP", "17": "UDP", "58": "IPv6-ICMP", "47": "GRE", "132": "SCTP"}

// readmeTable returns the rows of the README table whose header line is
// header, as cells with their backquotes removed.
func readmeTable(t *testing.T, header string) [][]string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == header:
			in = true
		case in && strings.HasPrefix(line, "|---"):
		case in && strings.HasPrefix(line, "|"):
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.ReplaceAll(strings.TrimSpace(c), "`", ""))
			}
			rows = append(rows, cells)
		case in:
			return rows
		}
	}
	if !in {
		t.Fatalf("README has no table %q", header)
	}
	return rows
}

// kflowRecords are the JSON records KFlow writes for the IPFIX messages of
// a capture, built as its decoder and serializer build them, from
// tshark's independent decode: dvc is the datagram's source address,
// time the message header's export time (seconds) times 1000.
func kflowRecords(t *testing.T, pcap string) []map[string]string {
	t.Helper()
	fields := []string{"ip.src", "cflow.exporttime", "cflow.srcaddr", "cflow.srcport", "cflow.dstaddr", "cflow.dstport",
		"cflow.protocol", "cflow.tcpflags", "cflow.octets", "cflow.packets"}
	var out []map[string]string
	var dvc, export string
	for _, row := range interop.Tshark(t, pcap, "cflow", 2055, fields...) {
		// Per-message fields are on the first row of each message.
		if row["ip.src"] != "" {
			dvc, export = row["ip.src"], row["cflow.exporttime"]
		}
		if row["cflow.srcaddr"] == "" {
			continue // a template set
		}
		secs, err := strconv.ParseInt(export, 10, 64)
		if err != nil {
			t.Fatalf("tshark export time %q", export)
		}
		flags, err := strconv.ParseUint(strings.TrimPrefix(row["cflow.tcpflags"], "0x"), 16, 8)
		if err != nil {
			flags = 0 // KFlow leaves 0 when the template has no tcpControlBits
		}
		out = append(out, map[string]string{
			"dvc": dvc, "src": row["cflow.srcaddr"], "srcp": row["cflow.srcport"], "dst": row["cflow.dstaddr"],
			"dstp": row["cflow.dstport"], "proto": row["cflow.protocol"], "flags": strconv.FormatUint(flags, 10),
			"bytes": row["cflow.octets"], "pkts": row["cflow.packets"], "time": strconv.FormatInt(secs*1000, 10),
		})
	}
	return out
}

// TestKFlowTable checks every row of README's KFlow field table on one
// IPFIX capture: each KFlow field the table lists must map to the named
// flowpipe field of flowcollect's JSON, with the value the row says, for
// every record, and the table must list every field KFlow writes.
func TestKFlowTable(t *testing.T) {
	if testing.Short() {
		t.Skip("runs tshark")
	}
	rows := readmeTable(t, "| KFlow field | flowpipe field | value |")
	table := map[string]string{}
	for _, r := range rows {
		table[r[0]] = r[1]
	}
	var listed []string
	for _, r := range rows {
		listed = append(listed, r[0])
	}
	if !slices.Equal(listed, kflowFields) {
		t.Errorf("README's KFlow table lists %v, KFlow writes %v", listed, kflowFields)
	}

	// IPv4 IPFIX (KFlow decodes nothing else). The export times start
	// 300 ms before the capture's first packet, both 1 ms apart: a
	// message is exported a little before it is received.
	g, err := flowgen.New(flowgen.Config{Seed: 17, Protocol: flowgen.IPFIX, RecordsPerPacket: 10,
		BaseTime: time.Date(2024, 3, 1, 11, 59, 59, 700e6, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	datagrams := [][]byte{g.Templates()}
	for range 30 {
		pkt, _ := g.Next()
		datagrams = append(datagrams, pkt)
	}
	pcap := filepath.Join(t.TempDir(), "ipfix.pcap")
	if err := interop.WritePcap(pcap, datagrams, 2055); err != nil {
		t.Fatal(err)
	}
	want := kflowRecords(t, pcap)
	code, out, stderr := runApp(t, "--metrics-listen", "", "--format", "json", "-r", pcap)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != len(want) || len(want) < 250 {
		t.Fatalf("flowcollect wrote %d records, KFlow %d (want the same, at least 250)", len(got), len(want))
	}
	for i, k := range want {
		for _, kf := range kflowFields {
			name, ok := table[kf]
			if !ok {
				continue // reported above
			}
			v, ok := got[i][name]
			if !ok {
				t.Fatalf("record %d: no field %s (for KFlow's %s)", i, name, kf)
			}
			have := fmt.Sprint(v)
			switch kf {
			case "proto":
				if ianaKeywords[k[kf]] != have {
					t.Errorf("record %d: KFlow proto %s, flowpipe %s %q: want the IANA keyword %q", i, k[kf], name, have, ianaKeywords[k[kf]])
				}
			case "time":
				ns, err1 := strconv.ParseInt(have, 10, 64)
				ms, err2 := strconv.ParseInt(k[kf], 10, 64)
				if err1 != nil || err2 != nil {
					t.Fatalf("record %d: time %q / %q", i, have, k[kf])
				}
				// Export time in whole seconds, a little before receipt.
				if d := ns/1e6 - ms; d < -1000 || d >= 2000 {
					t.Errorf("record %d: %s / 1e6 = %d, KFlow time %d: %d ms apart", i, name, ns/1e6, ms, d)
				}
			default:
				if have != k[kf] {
					t.Errorf("record %d: KFlow %s = %s, flowpipe %s = %s", i, kf, k[kf], name, have)
				}
			}
		}
	}
}

// TestKFlowSettings turns KFlow settings into flowcollect's command line
// by README's KFlow settings table, runs it, and checks that each setting
// took effect: the listener (server.port), its sockets (server.threads),
// their receive buffer (server.buffer.size), the metrics address
// (metrics.port) and the metrics replacing KFlow's server_packet_drops
// and server_receive_queue. (kafka.* map to flowpublish's --topic and
// --brokers, which its own tests run.)
func TestKFlowSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	rows := map[string]string{}
	for _, r := range readmeTable(t, "| KFlow | flowpipe |") {
		rows[r[0]] = r[1]
	}
	// KFlow's settings as a KFlow user has them (loopback and ephemeral
	// ports here).
	props := map[string]string{"server.port": "0", "server.threads": "2", "server.buffer.size": "1048576", "metrics.port": "0"}
	need := func(key, text string) {
		if !strings.Contains(rows[key], text) {
			t.Fatalf("README's KFlow row %s = %q, this test expects %q in it", key, rows[key], text)
		}
	}
	need("server.port", "--listen ipfix://:PORT")
	need("server.threads", "?count=N")
	need("server.buffer.size", "?rcvbuf=BYTES")
	need("metrics.port", "--metrics-listen")
	need("kafka.topic, kafka.props.bootstrap.servers", "flowpublish --topic")
	need("metrics server_packet_drops, server_receive_queue", "flowcollect_kernel_drops_total")
	uri := "ipfix://127.0.0.1:" + props["server.port"] + "?count=" + props["server.threads"] + "&rcvbuf=" + props["server.buffer.size"]
	p := start(t, "--listen", uri, "--metrics-listen", "127.0.0.1:"+props["metrics.port"])
	log := string(p.stderr.Bytes())
	if !strings.Contains(log, "sockets="+props["server.threads"]) || !strings.Contains(log, "rcvbuf_requested="+props["server.buffer.size"]) {
		t.Errorf("listener log does not show %s sockets of %s bytes:\n%s", props["server.threads"], props["server.buffer.size"], log)
	}
	tpl, packets, _ := generate(t, flowgen.IPFIX, 5, 20)
	sendUDP(t, p.addr(t, uri), append([][]byte{tpl}, packets...))
	p.waitMetric(t, "flowcollect_packets_received_total{") // sent is not yet decoded
	checkMetrics(t, p)
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range strings.Split(rows["metrics server_packet_drops, server_receive_queue"], ",") {
		if m = strings.TrimSpace(m); !bytes.Contains(body, []byte(m+"{")) {
			t.Errorf("no %s in the exposition", m)
		}
	}
	p.stop(t)
}
