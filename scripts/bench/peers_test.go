package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// appendFrame appends one varint-length-prefixed frame of n bytes.
func appendFrame(b []byte, n int) []byte {
	b = binary.AppendUvarint(b, uint64(n))
	return append(b, bytes.Repeat([]byte{0x08}, n)...)
}

func TestCountFrames(t *testing.T) {
	var stream []byte
	for _, n := range []int{1, 127, 128, 300, 70000} { // one- to three-byte lengths
		stream = appendFrame(stream, n)
	}
	n, err := countFrames(bytes.NewReader(stream))
	if err != nil || n != 5 {
		t.Fatalf("countFrames = %d, %v; want 5", n, err)
	}
	if n, err := countFrames(bytes.NewReader(nil)); err != nil || n != 0 {
		t.Errorf("empty: %d, %v", n, err)
	}
	// A last frame cut short is an error that names where it starts.
	_, err = countFrames(bytes.NewReader(stream[:len(stream)-1]))
	if err == nil || !strings.Contains(err.Error(), "frame 5") || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated: err = %v", err)
	}
	// goflow2's default "\n" separator after a bin frame is not a frame.
	sep := append(appendFrame(nil, 3), '\n')
	if _, err := countFrames(bytes.NewReader(append(sep, appendFrame(nil, 3)...))); err == nil {
		t.Error("a stream with separators counted without error")
	}
}

func TestCountLines(t *testing.T) {
	n, err := countLines(strings.NewReader("{\"a\":1}\n{\"a\":2}\n"))
	if err != nil || n != 2 {
		t.Errorf("countLines = %d, %v", n, err)
	}
	if n, err := countLines(strings.NewReader("")); err != nil || n != 0 {
		t.Errorf("empty: %d, %v", n, err)
	}
	if _, err := countLines(strings.NewReader("a\nb")); err == nil {
		t.Error("a last line without newline: no error")
	}
	// More than one read buffer.
	big := strings.Repeat(strings.Repeat("x", 99)+"\n", 2000)
	if n, err := countLines(strings.NewReader(big)); err != nil || n != 2000 {
		t.Errorf("big: %d, %v", n, err)
	}
}

func TestCountCSVRecords(t *testing.T) {
	const title = "SRC_AS,DST_AS,PEER_SRC_IP,SRC_IP,DST_IP,PACKETS,BYTES"
	csv := title + "\n1,2,127.0.0.1,10.0.0.1,10.0.0.2,3,400\n1,2,127.0.0.1,10.0.0.3,10.0.0.2,1,40\n" +
		title + "\n5,6,127.0.0.1,10.0.0.9,10.0.0.2,1,40\n"
	n, err := countCSVRecords(strings.NewReader(csv))
	if err != nil || n != 3 {
		t.Errorf("countCSVRecords = %d, %v; want 3", n, err)
	}
	if _, err := countCSVRecords(strings.NewReader("not,a,title\n1,2,3\n")); err == nil {
		t.Error("a file without pmacct's title: no error")
	}
}

func TestNfcapdFiles(t *testing.T) {
	done, err := nfcapdFiles([]string{"nfcapd.202612021435", "nfcapd.202612021440", ".nfstat"})
	if err != nil || len(done) != 2 {
		t.Errorf("got %v, %v", done, err)
	}
	if _, err := nfcapdFiles([]string{"nfcapd.202612021435", "nfcapd.current.4242"}); err == nil || !strings.Contains(err.Error(), "nfcapd.current.4242") {
		t.Errorf("open file: err = %v", err)
	}
	if _, err := nfcapdFiles(nil); err == nil {
		t.Error("no file: no error")
	}
}

func TestPmacctConfig(t *testing.T) {
	nf := pmacctConfig(flowgen.IPFIX, 40000, "/tmp/x/flows.csv", 448000)
	for _, want := range []string{"nfacctd_port: 40000", "nfacctd_ip: 127.0.0.1", "plugins: print", "print_output: csv",
		"print_output_file: /tmp/x/flows.csv", "print_output_file_append: true", "timestamp_start, timestamp_end",
		"src_host, dst_host, src_port, dst_port, proto", "nfacctd_pipe_size: 33554432", "print_cache_entries: 84011"} {
		if !strings.Contains(nf, want) {
			t.Errorf("nfacctd config lacks %q:\n%s", want, nf)
		}
	}
	sf := pmacctConfig(flowgen.SFlow, 40001, "/tmp/x/flows.csv", 32000)
	for _, want := range []string{"sfacctd_port: 40001", "sfacctd_ip: 127.0.0.1", "export_proto_seqno", "print_cache_entries: 16411"} {
		if !strings.Contains(sf, want) {
			t.Errorf("sfacctd config lacks %q:\n%s", want, sf)
		}
	}
	if strings.Contains(sf, "nfacctd") || strings.Contains(sf, "timestamp_start") {
		t.Errorf("sfacctd config has NetFlow keys:\n%s", sf)
	}
}

func TestMakePeers(t *testing.T) {
	all := peerTools{Goflow2: "/g", Nfcapd: "/nf", Sfcapd: "/sf", Nfdump: "/nd", Nfacctd: "/na", Sfacctd: "/sa"}
	peers, err := makePeers(allPeers, "/fc", all)
	if err != nil || len(peers) != len(allPeers) {
		t.Fatalf("makePeers: %d, %v", len(peers), err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		key   string
		proto flowgen.Protocol
		bin   string
		name  string
		has   []string
	}{
		{"flowcollect", flowgen.IPFIX, "/fc", "flowcollect", []string{"netflow://127.0.0.1:5000", "--format bin", "--rcvbuf 33554432"}},
		{"flowcollect-json", flowgen.SFlow, "/fc", "flowcollect", []string{"sflow://127.0.0.1:5000", "--format json"}},
		{"goflow2", flowgen.NetFlowV5, "/g", "goflow2", []string{"-format=bin", "-transport=file", "-transport.file.sep= "}},
		{"goflow2-json", flowgen.SFlow, "/g", "goflow2", []string{"sflow://127.0.0.1:5000", "-format=json", "-transport.file.sep=\n"}},
		{"nfdump", flowgen.NetFlowV9, "/nf", "nfcapd", []string{"-b 127.0.0.1 -p 5000 -w " + dir}},
		{"nfdump", flowgen.SFlow, "/sf", "sfcapd", []string{"-p 5000"}},
		{"pmacct", flowgen.SFlow, "/sa", "sfacctd", []string{"-f " + dir + "/pmacct.conf"}},
	} {
		var p peer
		for _, q := range peers {
			if q.Key == c.key {
				p = q
			}
		}
		bin, args, err := p.Start(c.proto, 5000, dir, 100000)
		if err != nil {
			t.Errorf("%s %s: %v", c.key, c.proto, err)
			continue
		}
		line := strings.Join(args, " ") + " "
		if bin != c.bin || p.Name(c.proto) != c.name {
			t.Errorf("%s %s: runs %s as %s, want %s as %s", c.key, c.proto, bin, p.Name(c.proto), c.bin, c.name)
		}
		for _, h := range c.has {
			if !strings.Contains(line, h) {
				t.Errorf("%s %s: %q lacks %q", c.key, c.proto, line, h)
			}
		}
	}
	// A missing tool is named; an unknown key too.
	if _, err := makePeers([]string{"pmacct"}, "/fc", peerTools{}); err == nil || !strings.Contains(err.Error(), "pmacct") {
		t.Errorf("missing pmacct: %v", err)
	}
	if _, err := makePeers([]string{"nope"}, "/fc", all); err == nil {
		t.Error("unknown collector: no error")
	}
}

func TestNextPrime(t *testing.T) {
	for n, want := range map[int]int{0: 2, 2: 2, 4: 5, 16411: 16411, 16412: 16417, 84000: 84011, 259990: 259991} {
		if got := nextPrime(n); got != want {
			t.Errorf("nextPrime(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestRotate(t *testing.T) {
	s := []string{"a", "b", "c"}
	for i, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := strings.Join(rotate(s, i), ""); got != want {
			t.Errorf("rotate(%d) = %s, want %s", i, got, want)
		}
	}
	if strings.Join(s, "") != "abc" {
		t.Error("rotate changed its input")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		v    []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1}, 2}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.v); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.v, got, c.want)
		}
	}
}

// sweepRuns is a two-round sweep of two loads, with a loss, an error and
// a collector missing from one load.
func sweepRuns() []peerRun {
	run := func(proto string, rate float64, key, name string, round int, sent, counted int64, cpu float64) peerRun {
		return peerRun{Protocol: proto, Rate: rate, Key: key, Collector: name, Round: round, Datagrams: int64(rate) * 5,
			Sent: sent, Counted: counted, SendElapsed: 5 * time.Second, CPU: cpu, PeakRSS: uint64(round) << 20,
			OutputBytes: counted * 100, Method: "cgroup v2 cpu.stat"}
	}
	return []peerRun{
		run("ipfix", 4000, "nfdump", "nfcapd", 1, 500000, 500000, 0.20),
		run("ipfix", 4000, "flowcollect", "flowcollect", 1, 500000, 500000, 0.40),
		run("ipfix", 4000, "pmacct", "nfacctd", 1, 500000, 400000, 1.2),
		run("ipfix", 4000, "flowcollect", "flowcollect", 2, 500000, 500000, 0.30),
		run("ipfix", 4000, "nfdump", "nfcapd", 2, 500000, 500000, 0.10),
		{Protocol: "ipfix", Rate: 4000, Key: "pmacct", Collector: "nfacctd", Round: 2, Err: "nfacctd did not end"},
		run("sflow", 16000, "flowcollect", "flowcollect", 1, 640000, 640000, 0.64),
		run("sflow", 16000, "nfdump", "sfcapd", 1, 640000, 640000, 0.32),
	}
}

func TestSummarize(t *testing.T) {
	cells := summarize(sweepRuns(), []string{"flowcollect", "nfdump", "pmacct"})
	var got []string
	for _, c := range cells {
		got = append(got, c.Protocol+"/"+c.Key)
	}
	if strings.Join(got, " ") != "ipfix/flowcollect ipfix/nfdump ipfix/pmacct sflow/flowcollect sflow/nfdump" {
		t.Fatalf("cells in order %v", got)
	}
	fc := cells[0]
	// Medians of 0.4 s and 0.3 s over 500 000 records: 0.8 and 0.6 µs.
	if fc.Runs != 2 || fc.Sent != 1000000 || fc.Counted != 1000000 || fc.CPUPerRecord < 0.6999 || fc.CPUPerRecord > 0.7001 ||
		fc.PeakRSS != 2<<20 || fc.OutputBytesPerRecord != 100 || fc.DatagramRate != 4000 || fc.RecordRate != 100000 {
		t.Errorf("flowcollect cell %+v", fc)
	}
	pm := cells[2]
	if pm.Runs != 1 || len(pm.Errors) != 1 || !strings.Contains(pm.Errors[0], "round 2: nfacctd did not end") ||
		pm.LossPct() != 20 || pm.CPUPerRecord != 3 {
		t.Errorf("pmacct cell %+v", pm)
	}
}

func TestRenderPeers(t *testing.T) {
	r := &peersReport{Date: time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC), Elapsed: 90 * time.Second,
		Command: "scripts/bench/bench.sh --only peers", CPUs: 2, LoadStart: "3.10 2.00 1.00", LoadEnd: "0.50 0.40 0.30",
		Loads: []string{"ipfix at 4k datagrams/s: 3.10"}, Duration: 5 * time.Second, Rounds: 2,
		Collectors: []string{"flowcollect", "nfdump", "pmacct"}, Runs: sweepRuns()}
	var b bytes.Buffer
	renderPeers(&b, r)
	out := b.String()
	for _, want := range []string{
		peersHeading + "\n",
		"2026-12-02 15:00 UTC with `scripts/bench/bench.sh --only peers`",
		"Load average at start 3.10 2.00 1.00",
		"**the machine was busy",
		"cgroup v2 cpu.stat",
		"| protocol | datagrams/s | records/s | flowcollect | nfcapd / sfcapd | nfacctd / sfacctd | flowcollect / nfdump |",
		"| IPFIX | 4 000 | 100k | 0.70 | 0.30 | 3.00, lost 20.0% | 2.33x |",
		"| sFlow v5 | 16 000 | 128k | 1.00 | 0.50 | failed | 2.00x |",
		"flowcollect (bin) needs 2.00x to 2.33x the CPU per record of nfcapd / sfcapd over the 2 loads.",
		"| ipfix | 4 000 (4k) | nfacctd | 1 | 500000 | 400000 | 20.000% | 0 | 3.000 (3.000) | 1 | 100 |",
		"| ipfix | 4 000 (4k) | flowcollect | 2 | 1000000 | 1000000 | 0.000% | 0 | 0.700 (0.800, 0.600) | 2 | 100 |",
		"nfacctd, ipfix at 4 000 datagrams/s, round 2: nfacctd did not end",
		"flowcollect (bin) needs 0.23x the CPU per record of nfacctd / sfacctd over the one load.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
}

func TestSpliceSection(t *testing.T) {
	sec := []byte(peersHeading + "\n\nnew table\n")
	doc := "# flowpipe benchmarks\n\nintro\n\n## Collectors side by side: flowcollect and goflow2 v2.2.6\n\nold collect\n\n" +
		peersHeading + "\n\nold table\nmore\n\n## Each stage alone\n\nstages\n"
	want := "# flowpipe benchmarks\n\nintro\n\n## Collectors side by side: flowcollect and goflow2 v2.2.6\n\nold collect\n\n" +
		peersHeading + "\n\nnew table\n\n## Each stage alone\n\nstages\n"
	if got := string(spliceSection([]byte(doc), sec)); got != want {
		t.Errorf("replace:\n%s\nwant:\n%s", got, want)
	}
	// The last section of a document.
	last := "# t\n\n" + peersHeading + "\n\nold\n"
	if got := string(spliceSection([]byte(last), sec)); got != "# t\n\n"+peersHeading+"\n\nnew table\n" {
		t.Errorf("last section:\n%q", got)
	}
	// No such section yet: before the problems, or at the end.
	noPeers := "# t\n\n## Each stage alone\n\nx\n\n## Problems during this run\n\n- p\n"
	if got := string(spliceSection([]byte(noPeers), sec)); got != "# t\n\n## Each stage alone\n\nx\n\n"+peersHeading+"\n\nnew table\n\n## Problems during this run\n\n- p\n" {
		t.Errorf("insert before problems:\n%q", got)
	}
	if got := string(spliceSection([]byte("# t\n\nx"), sec)); got != "# t\n\nx\n\n"+peersHeading+"\n\nnew table\n" {
		t.Errorf("append:\n%q", got)
	}
	if got := string(spliceSection(nil, sec)); got != peersHeading+"\n\nnew table\n" {
		t.Errorf("empty document:\n%q", got)
	}
}

func TestGroupDigits(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 950: "950", 4000: "4 000", 16000: "16 000", 1234567: "1 234 567"} {
		if got := groupDigits(v); got != want {
			t.Errorf("groupDigits(%v) = %q, want %q", v, got, want)
		}
	}
}
