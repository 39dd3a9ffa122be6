package e2e

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"github.com/flowpipe/flowpipe/pkg/testutil/testtraffic"
)

// The AS plan of the test: testtraffic's private and "own" addresses get
// their AS from the networks file (flowenrich never asks the databases
// about private space), the documentation ranges standing in for the
// Internet get theirs from a test ASN database.
const monitoredAS = 64512

const networksYAML = `networks:
  - name: lab-v4
    cidrs: [10.0.0.0/8]
    labels: {site: lab}
    asn: 64512
    as_name: FLOWPIPE-LAB
  - name: lab-v6
    cidrs: ["2001:db8::/48"]
    labels: {site: lab}
    asn: 64512
    as_name: FLOWPIPE-LAB
  - name: partner
    cidrs: [172.16.0.0/12]
    asn: 64513
    as_name: PARTNER-NET
`

type asInfo struct {
	prefix netip.Prefix
	asn    uint32
	name   string
	inDB   bool // from the ASN database, else from the networks file
}

var asPlan = []asInfo{
	{netip.MustParsePrefix("10.0.0.0/8"), 64512, "FLOWPIPE-LAB", false},
	{netip.MustParsePrefix("2001:db8::/48"), 64512, "FLOWPIPE-LAB", false},
	{netip.MustParsePrefix("172.16.0.0/12"), 64513, "PARTNER-NET", false},
	{netip.MustParsePrefix("192.0.2.0/24"), 64500, "EXAMPLE-ONE", true},
	{netip.MustParsePrefix("2001:db8:1::/48"), 64500, "EXAMPLE-ONE", true},
	{netip.MustParsePrefix("198.51.100.0/24"), 64501, "EXAMPLE-TWO", true},
	{netip.MustParsePrefix("2001:db8:2::/48"), 64501, "EXAMPLE-TWO", true},
	{netip.MustParsePrefix("203.0.113.0/24"), 64502, "EXAMPLE-THREE", true},
	{netip.MustParsePrefix("2001:db8:3::/48"), 64502, "EXAMPLE-THREE", true},
	{netip.MustParsePrefix("2001:db8:4::/47"), 64503, "EXAMPLE-FOUR", true},
}

func asOf(b []byte) (asInfo, bool) {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return asInfo{}, false
	}
	a = a.Unmap()
	var best asInfo
	found := false
	for _, p := range asPlan {
		if p.prefix.Contains(a) && (!found || p.prefix.Bits() > best.prefix.Bits()) {
			best, found = p, true
		}
	}
	return best, found
}

// exporter is one real exporter run on the traffic pcap, behind a relay
// whose source address identifies it.
type exporter struct {
	name     string
	source   netip.Addr // relay source: the sampler_address of NetFlow/IPFIX records
	sflow    bool
	v4only   bool   // NetFlow v5 has no IPv6
	sampling uint64 // sampling_rate on every record
	run      func(t *testing.T, pcap, addr string) error
}

// sflowAgent is the agent address pmacctd's sfprobe puts in its datagrams.
var sflowAgent = netip.MustParseAddr("127.0.0.15")

var exporters = []exporter{
	{name: "softflowd-v5", source: netip.MustParseAddr("127.0.0.11"), v4only: true, sampling: 0,
		run: func(t *testing.T, pcap, addr string) error { return runSoftflowd(t, pcap, addr, 5) }},
	{name: "softflowd-v9", source: netip.MustParseAddr("127.0.0.12"), sampling: 1,
		run: func(t *testing.T, pcap, addr string) error { return runSoftflowd(t, pcap, addr, 9) }},
	{name: "softflowd-ipfix", source: netip.MustParseAddr("127.0.0.13"), sampling: 1,
		run: func(t *testing.T, pcap, addr string) error { return runSoftflowd(t, pcap, addr, 10) }},
	// pmacctd advertises 1:10 without sampling: every packet is counted once,
	// and flowexport multiplies by 10.
	{name: "pmacctd-ipfix", source: netip.MustParseAddr("127.0.0.14"), sampling: 10,
		run: func(t *testing.T, pcap, addr string) error {
			return runPmacctd(t, pcap, "plugins: nfprobe\nnfprobe_version: 10\nnfprobe_receiver: "+addr+
				"\npmacctd_ext_sampling_rate: 10")
		}},
	{name: "pmacctd-sflow", source: sflowAgent, sflow: true, sampling: 1,
		run: func(t *testing.T, pcap, addr string) error {
			return runPmacctd(t, pcap, "plugins: sfprobe\nsfprobe_receiver: "+addr+"\nsfprobe_agentip: "+sflowAgent.String())
		}},
}

// TestPipeline runs the whole chain with real exporters and checks that
// every flow they exported reaches Kafka exactly once (read back with
// kcat) and Prometheus's per-AS-pair sums (scraped from flowexport).
func TestPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline with real exporters")
	}
	for _, tool := range []string{"softflowd", "pmacctd", "kcat", "tshark", "prometheus"} {
		interop.Require(t, tool)
	}
	began := time.Now()
	dir := t.TempDir()
	const topic = "flows"
	broker := startBroker(t, topic, 4)

	// Downstream of Kafka first, so that it is ready when flows arrive.
	exportMetrics := freeTCP(t)
	export := start(t, "flowexport", exec.Command(bin("flowexport"), "--brokers", broker, "--topic", topic,
		"--asn", strconv.Itoa(monitoredAS), "--metrics-listen", exportMetrics, "--start-offset", "earliest"))
	collectMetrics := freeTCP(t)
	prom := startPrometheus(t, "flowexport="+exportMetrics, "flowcollect="+collectMetrics)

	// The pipeline, wired as a shell would: flowcollect | flowenrich | flowpublish.
	asnDB := enrichtest.WriteMMDB(t, dir, "asn.mmdb", "GeoLite2-ASN", asnEntries())
	nets := filepath.Join(dir, "networks.yaml")
	if err := os.WriteFile(nets, []byte(networksYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	nfPort, sfPort := freeUDP(t), freeUDP(t)
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	collectCmd := exec.Command(bin("flowcollect"), "--listen", fmt.Sprintf("netflow://127.0.0.1:%d", nfPort),
		"--listen", fmt.Sprintf("sflow://127.0.0.1:%d", sfPort), "--metrics-listen", collectMetrics)
	collectCmd.Stdout = w1
	enrichCmd := exec.Command(bin("flowenrich"), "--asn-db", asnDB, "--networks", nets)
	enrichCmd.Stdin, enrichCmd.Stdout = r1, w2
	publishCmd := exec.Command(bin("flowpublish"), "--brokers", broker, "--topic", topic, "--key", "sampler_address")
	publishCmd.Stdin = r2
	publish := start(t, "flowpublish", publishCmd)
	enrich := start(t, "flowenrich", enrichCmd)
	collect := start(t, "flowcollect", collectCmd)
	for _, f := range []*os.File{r1, w1, r2, w2} {
		f.Close() // the children hold their ends
	}
	if !waitFor(20*time.Second, func() bool { return strings.Count(collect.log.String(), "msg=listening") >= 2 }) {
		t.Fatalf("flowcollect is not listening\n%s", collect.log.String())
	}

	// Every exporter at once, each behind its relay.
	pcap := filepath.Join(dir, "traffic.pcap")
	truth, err := testtraffic.Write(pcap, testtraffic.Default())
	if err != nil {
		t.Fatal(err)
	}
	relays := make([]*interop.Collector, len(exporters))
	errs := make([]error, len(exporters))
	var wg sync.WaitGroup
	for i, e := range exporters {
		port := nfPort
		if e.sflow {
			port = sfPort
		}
		relays[i] = interop.Relay(t, e.source, port)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = e.run(t, pcap, relays[i].Addr()) }()
	}
	wg.Wait()
	sent := make([][][]byte, len(exporters))
	for i, e := range exporters {
		if errs[i] != nil {
			t.Fatalf("%s: %v", e.name, errs[i])
		}
		sent[i] = relays[i].Wait()
		if len(sent[i]) == 0 {
			t.Fatalf("%s sent nothing", e.name)
		}
	}
	t.Logf("exporters done after %v", time.Since(began).Round(time.Millisecond))

	// flowcollect received every datagram and decoded each without error.
	datagrams := 0
	for _, s := range sent {
		datagrams += len(s)
	}
	var expo string
	if !waitFor(10*time.Second, func() bool {
		expo = httpGet("http://" + collectMetrics + "/metrics")
		return metric(expo, "flowcollect_packets_received_total") >= float64(datagrams)
	}) {
		t.Errorf("flowcollect_packets_received_total = %v, the relays forwarded %d datagrams",
			metric(expo, "flowcollect_packets_received_total"), datagrams)
	}
	for _, name := range []string{"flowcollect_packets_dropped_total", "flowcollect_decode_errors_total"} {
		if v := metric(expo, name); v != 0 {
			t.Errorf("%s = %v", name, v)
		}
	}

	// Only flowcollect is stopped: it drains its sockets and flushes, and
	// the stages downstream end at the end of their input.
	collect.signal(syscall.SIGTERM)
	for _, p := range []*proc{collect, enrich, publish} {
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exited %d", p.name, code)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// (a) Kafka, read by kcat: exactly the records the exporters sent.
	msgs := kcatRecords(t, broker, topic)
	bySource := map[string][]*flowpb.FlowMessage{}
	for _, m := range msgs {
		a, _ := netip.AddrFromSlice(m.SamplerAddress)
		bySource[a.String()] = append(bySource[a.String()], m)
	}
	total := 0
	for i, e := range exporters {
		got := bySource[e.source.String()]
		delete(bySource, e.source.String())
		want := tsharkRecords(t, e, sent[i])
		total += len(want)
		t.Run(e.name, func(t *testing.T) {
			checkAgainstTshark(t, got, want, e.sflow)
			checkAgainstTruth(t, e, got, truth)
			checkEnrichment(t, got)
		})
	}
	for src, ms := range bySource {
		t.Errorf("%d records from unknown exporter %s", len(ms), src)
	}
	if len(msgs) != total {
		t.Errorf("kcat read %d records, the exporters sent %d (tshark)", len(msgs), total)
	}

	// (b) Prometheus: flowexport's counters, summed by AS pair, equal the
	// records' totals (multiplied by the sampling rate).
	if !waitFor(30*time.Second, func() bool {
		return metric(httpGet("http://"+exportMetrics+"/metrics"), "flowexport_records_consumed_total") >= float64(len(msgs))
	}) {
		t.Fatalf("flowexport did not consume the %d records", len(msgs))
	}
	want := expectedSeries(msgs)
	// Every record is counted once, under its exporter's address.
	perHost := `sum by (hostname) ({__name__=~"flow_(receive|transmit)_flows_total"})`
	want[perHost] = map[string]float64{}
	for _, m := range msgs {
		a, _ := netip.AddrFromSlice(m.SamplerAddress)
		want[perHost]["hostname="+a.String()]++
	}
	pending := slices.Sorted(maps.Keys(want))
	var last map[string]map[string]float64
	waitFor(40*time.Second, func() bool {
		last = map[string]map[string]float64{}
		var still []string
		for _, q := range pending {
			by := pairLabels
			if q == perHost {
				by = []string{"hostname"}
			}
			got, err := promVector(prom, q, by...)
			last[q] = got
			if err != nil || !maps.Equal(got, want[q]) {
				still = append(still, q)
			}
		}
		pending = still
		return len(pending) == 0
	})
	for _, q := range pending {
		t.Errorf("PromQL %s:\n got  %v\n want %v", q, last[q], want[q])
	}
	if v := metric(httpGet("http://"+exportMetrics+"/metrics"), "flowexport_records_invalid_total"); v != 0 {
		t.Errorf("flowexport_records_invalid_total = %v", v)
	}
	export.signal(syscall.SIGTERM)
	if code := export.wait(t, 30*time.Second); code != 0 {
		t.Errorf("flowexport exited %d", code)
	}
	t.Logf("%d records from %d exporters checked in Kafka and Prometheus; %v in all",
		len(msgs), len(exporters), time.Since(began).Round(time.Millisecond))
}

func asnEntries() []enrichtest.Entry {
	var out []enrichtest.Entry
	for _, p := range asPlan {
		if p.inDB {
			out = append(out, enrichtest.Entry{Prefix: p.prefix.String(), Record: enrichtest.ASN(p.asn, p.name)})
		}
	}
	return out
}

// record is what the test compares record by record with tshark's decode
// of the exporter's datagrams.
type record struct {
	proto          uint32
	packets, bytes uint64
	sampling       uint64
}

// tsharkRecords decodes what the exporter sent with tshark: one entry per
// flow record (NetFlow/IPFIX) or flow sample (sFlow).
func tsharkRecords(t *testing.T, e exporter, datagrams [][]byte) []record {
	t.Helper()
	port := 2055
	if e.sflow {
		port = 6343
	}
	path := filepath.Join(t.TempDir(), e.name+".pcap")
	if err := interop.WritePcap(path, datagrams, port); err != nil {
		t.Fatal(err)
	}
	var out []record
	if e.sflow {
		for _, row := range interop.Tshark(t, path, "sflow", port, "sflow_245.header.frame_length", "sflow.flow_sample.sampling_rate") {
			b, err1 := strconv.ParseUint(row["sflow_245.header.frame_length"], 10, 64)
			s, err2 := strconv.ParseUint(row["sflow.flow_sample.sampling_rate"], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("tshark row %v", row)
			}
			out = append(out, record{packets: 1, bytes: b, sampling: s})
		}
		return out
	}
	for _, row := range interop.Tshark(t, path, "cflow", port, "cflow.protocol", "cflow.packets", "cflow.octets") {
		p, err1 := strconv.ParseUint(row["cflow.protocol"], 10, 32)
		n, err2 := strconv.ParseUint(row["cflow.packets"], 10, 64)
		b, err3 := strconv.ParseUint(row["cflow.octets"], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("tshark row %v", row)
		}
		out = append(out, record{proto: uint32(p), packets: n, bytes: b, sampling: e.sampling})
	}
	return out
}

// checkAgainstTshark compares the multisets of records: nothing lost,
// nothing duplicated, nothing changed on the way.
func checkAgainstTshark(t *testing.T, got []*flowpb.FlowMessage, want []record, sflow bool) {
	t.Helper()
	count := map[record]int{}
	for _, r := range want {
		count[r]++
	}
	for _, m := range got {
		r := record{proto: m.Proto, packets: m.Packets, bytes: m.Bytes, sampling: m.SamplingRate}
		if sflow {
			r.proto = 0 // tshark's sFlow rows do not say
		}
		count[r]--
	}
	for r, n := range count {
		switch {
		case n > 0:
			t.Errorf("%d records %+v sent but not in Kafka", n, r)
		case n < 0:
			t.Errorf("%d records %+v in Kafka but not sent", -n, r)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d records in Kafka, %d sent", len(got), len(want))
	}
}

// normKey drops ICMP ports: exporters disagree on where type and code go.
func normKey(src, dst []byte, proto, sport, dport uint32) string {
	s, _ := netip.AddrFromSlice(src)
	d, _ := netip.AddrFromSlice(dst)
	if proto == testtraffic.ProtoICMP || proto == testtraffic.ProtoICMPv6 {
		sport, dport = 0, 0
	}
	return fmt.Sprintf("%s:%d>%s:%d/%d", s.Unmap(), sport, d.Unmap(), dport, proto)
}

// checkAgainstTruth compares the records, summed per 5-tuple, with the
// traffic the exporter read: NetFlow/IPFIX exporters count every packet
// and L3 byte; sFlow samples carry one packet and its frame length each.
func checkAgainstTruth(t *testing.T, e exporter, got []*flowpb.FlowMessage, truth []testtraffic.Flow) {
	t.Helper()
	type acc struct{ records, packets, bytes uint64 }
	sums := map[string]*acc{}
	for _, m := range got {
		k := normKey(m.SrcAddr, m.DstAddr, m.Proto, m.SrcPort, m.DstPort)
		a := sums[k]
		if a == nil {
			a = &acc{}
			sums[k] = a
		}
		a.records++
		a.packets += m.Packets
		a.bytes += m.Bytes
	}
	sampled := uint64(0)
	for _, f := range truth {
		if e.v4only && f.IPv6() {
			continue
		}
		k := normKey(f.Src.AsSlice(), f.Dst.AsSlice(), uint32(f.Proto), uint32(f.SrcPort), uint32(f.DstPort))
		a := sums[k]
		delete(sums, k)
		if e.sflow {
			// pmacctd samples every packet; a datagram it had not sent
			// when interrupted is missing from what it sent, which the
			// tshark comparison accounts for.
			frame := f.Bytes/uint64(f.Packets) + 14 + 4 // Ethernet header and FCS
			if f.VLAN != 0 {
				frame += 4
			}
			if a == nil {
				continue
			}
			if a.packets > uint64(f.Packets) || a.bytes != a.packets*frame {
				t.Errorf("%s: %d samples of %d bytes, want at most %d of %d", k, a.packets, a.bytes, f.Packets, frame)
			}
			sampled += a.packets
			continue
		}
		switch {
		case a == nil:
			t.Errorf("%s: missing", k)
		case a.packets != uint64(f.Packets) || a.bytes != f.Bytes:
			t.Errorf("%s: packets %d bytes %d, want %d %d", k, a.packets, a.bytes, f.Packets, f.Bytes)
		}
	}
	for k := range sums {
		t.Errorf("%s: not in the traffic", k)
	}
	if e.sflow {
		t.Logf("%d packets sampled", sampled)
	}
}

// checkEnrichment checks each record's AS numbers and names against the
// test's AS plan.
func checkEnrichment(t *testing.T, got []*flowpb.FlowMessage) {
	t.Helper()
	bad := 0
	for _, m := range got {
		src, ok1 := asOf(m.SrcAddr)
		dst, ok2 := asOf(m.DstAddr)
		if !ok1 || !ok2 || m.SrcAs != src.asn || m.DstAs != dst.asn || m.SrcAsName != src.name || m.DstAsName != dst.name {
			if bad++; bad <= 5 {
				t.Errorf("%s: AS %d %q -> %d %q, want %d %q -> %d %q",
					normKey(m.SrcAddr, m.DstAddr, m.Proto, m.SrcPort, m.DstPort),
					m.SrcAs, m.SrcAsName, m.DstAs, m.DstAsName, src.asn, src.name, dst.asn, dst.name)
			}
		}
	}
}

var pairLabels = []string{"source_as", "source_as_name", "destination_as", "destination_as_name"}

// expectedSeries computes, from the records and the AS plan, what each
// PromQL query must return.
func expectedSeries(msgs []*flowpb.FlowMessage) map[string]map[string]float64 {
	want := map[string]map[string]float64{}
	add := func(family, unit string, src, dst asInfo, v uint64) {
		q := fmt.Sprintf("sum by (%s) (flow_%s_%s_total)", strings.Join(pairLabels, ", "), family, unit)
		if want[q] == nil {
			want[q] = map[string]float64{}
		}
		k := fmt.Sprintf("source_as=%d,source_as_name=%s,destination_as=%d,destination_as_name=%s", src.asn, src.name, dst.asn, dst.name)
		want[q][k] += float64(v)
	}
	for _, m := range msgs {
		src, _ := asOf(m.SrcAddr)
		dst, _ := asOf(m.DstAddr)
		rate := max(m.SamplingRate, 1)
		for _, family := range []string{"receive", "transmit"} {
			if family == "receive" && dst.asn != monitoredAS || family == "transmit" && src.asn != monitoredAS {
				continue
			}
			add(family, "bytes", src, dst, m.Bytes*rate)
			add(family, "packets", src, dst, m.Packets*rate)
			add(family, "flows", src, dst, 1)
		}
	}
	return want
}
