package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gfpb "github.com/netsampler/goflow2/v2/pb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/enrichtest"
)

const testNets = `networks:
  - name: web
    cidrs: [192.0.2.0/25, "2001:db8:1::/48"]
    labels: {site: ams1, role: web}
  - name: lan
    cidrs: [10.0.0.0/8]
    asn: 64512
    country: NL
`

type fixture struct {
	dir, asn, country, nets string
}

func newFixture(t *testing.T) fixture {
	dir := t.TempDir()
	f := fixture{dir: dir, asn: enrichtest.StandardASN(t, dir), country: enrichtest.StandardCountry(t, dir),
		nets: filepath.Join(dir, "nets.yaml")}
	if err := os.WriteFile(f.nets, []byte(testNets), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f fixture) args(extra ...string) []string {
	return append([]string{"flowenrich", "--asn-db", f.asn, "--country-db", f.country, "--networks", f.nets}, extra...)
}

// runApp runs flowenrich in-process and returns its exit code, stdout and stderr.
func runApp(t *testing.T, args []string, stdin io.Reader) (int, []byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	code := command.Run(context.Background(), newApp(), args, command.Streams{In: stdin, Out: &out, Err: &errb})
	return code, out.Bytes(), errb.String()
}

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

// goflow2Stream builds what `goflow2 -format=bin -transport.file.sep=`
// writes, with goflow2's own message type, plus custom fields (as its
// -mapping option adds them: unknown fields of the message).
func goflow2Stream(t *testing.T, n int) []byte {
	var buf bytes.Buffer
	for i := range n {
		m := &gfpb.FlowMessage{
			Type: gfpb.FlowMessage_IPFIX, TimeReceivedNs: uint64(1e18) + uint64(i), SequenceNum: uint32(i),
			SamplingRate: 100, SamplerAddress: ip("10.0.0.1"), Bytes: 1500, Packets: 3,
			SrcAddr: ip(enrichtest.AddrAS64500), DstAddr: ip("10.9.8.7"), Etype: 0x800, Proto: 6,
			SrcPort: 443, DstPort: uint32(40000 + i), InIf: 7, OutIf: 9, SrcMac: 0x0a0b0c0d0e0f,
			NextHop: ip("192.0.2.254"), DstAs: 65001, SrcNet: 24, DstNet: 8,
			BgpCommunities: []uint32{1, 2, 3}, AsPath: []uint32{65001, 64500}, MplsLabel: []uint32{16},
			MplsIp: [][]byte{ip("10.1.1.1")}, LayerStack: []gfpb.FlowMessage_LayerStack{gfpb.FlowMessage_IPv4, gfpb.FlowMessage_TCP},
		}
		if i%2 == 1 {
			m.SrcAddr, m.DstAddr = ip(enrichtest.AddrAS64502), ip("2001:db8:1::5")
			m.Etype = 0x86dd
		}
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		// Custom fields, as goflow2's protobuf mapping appends them.
		b = protowire.AppendTag(b, 2001, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(1000+i))
		b = protowire.AppendTag(b, 2002, protowire.BytesType)
		b = protowire.AppendBytes(b, []byte("custom-bytes"))
		b = protowire.AppendTag(b, 2003, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, 0xdeadbeef)
		buf.Write(binary.AppendUvarint(nil, uint64(len(b))))
		buf.Write(b)
	}
	return buf.Bytes()
}

type rawField struct {
	num protowire.Number
	raw string
}

// fields splits a message into its fields, dropping those flowenrich may
// set, in a canonical order (stable by number) for comparison.
func fields(t *testing.T, b []byte) []rawField {
	var out []rawField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if n < 0 || m < 0 {
			t.Fatalf("bad message")
		}
		switch {
		case num == 14 || num == 15, num >= 1000 && num <= 1001, num >= 1100 && num <= 1108:
		default:
			out = append(out, rawField{num, string(b[:n+m])})
		}
		b = b[n+m:]
	}
	slices.SortStableFunc(out, func(a, b rawField) int { return int(a.num) - int(b.num) })
	return out
}

func frames(t *testing.T, b []byte) [][]byte {
	r := framing.NewReader(bytes.NewReader(b), 0)
	var out [][]byte
	for {
		f, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(f))
	}
}

func TestGoflow2BinaryPreserved(t *testing.T) {
	f := newFixture(t)
	in := goflow2Stream(t, 50)
	code, out, stderr := runApp(t, f.args(), bytes.NewReader(in))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	inFrames, outFrames := frames(t, in), frames(t, out)
	if len(outFrames) != len(inFrames) {
		t.Fatalf("%d records in, %d out", len(inFrames), len(outFrames))
	}
	for i := range inFrames {
		if got, want := fields(t, outFrames[i]), fields(t, inFrames[i]); !slices.Equal(got, want) {
			t.Fatalf("record %d: untouched fields differ\n got %q\nwant %q", i, got, want)
		}
		// Read back with goflow2's type: it sees the enrichment as unknown
		// fields and its own fields enriched.
		var g gfpb.FlowMessage
		if err := proto.Unmarshal(outFrames[i], &g); err != nil {
			t.Fatal(err)
		}
		var m flowpb.FlowMessage
		if err := m.UnmarshalVT(outFrames[i]); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if g.SrcAs != 64500 || g.DstAs != 65001 || m.SrcAsName != "EXAMPLE-ONE" || m.SrcCountry != "NL" ||
				m.DstCountry != "NL" || m.DstAsName != "" || m.SrcNetName != "web" || m.DstNetName != "lan" ||
				m.FlowDirection != flowpb.FlowMessage_INTERNAL || m.SrcNetLabels["role"] != "web" {
				t.Fatalf("record %d: %v", i, &m)
			}
		} else if g.SrcAs != 64502 || m.SrcCountry != "FR" || m.DstAs != 65001 || m.DstNetPrefix != "2001:db8:1::/48" ||
			m.FlowDirection != flowpb.FlowMessage_INGRESS {
			t.Fatalf("record %d: %v", i, &m)
		}
	}
}

func TestJSON(t *testing.T) {
	f := newFixture(t)
	in := `{"type":"NETFLOW_V9","src_addr":"198.51.100.20","dst_addr":"192.0.2.7","bytes":10,"packets":1,"proto":"UDP","etype":"IPv4"}
{"type":"SFLOW_5","src_addr":"2001:db8::1","dst_addr":"203.0.113.5","src_as":65000}
`
	code, out, stderr := runApp(t, f.args("--format", "json"), strings.NewReader(in))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %q", out)
	}
	for _, want := range []string{`"src_as":64501`, `"dst_as":64500`, `"src_country":"DE"`, `"dst_country":"NL"`,
		`"src_as_name":"EXAMPLE-TWO"`, `"dst_net_name":"web"`, `"flow_direction":"ingress"`, `"dst_net_prefix":"192.0.2.0/25"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line 1 lacks %s: %s", want, lines[0])
		}
	}
	for _, want := range []string{`"src_as":65000`, `"src_country":"FR"`, `"flow_direction":"external"`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("line 2 lacks %s: %s", want, lines[1])
		}
	}
	if strings.Contains(lines[1], "src_as_name") {
		t.Errorf("kept exporter AS got another AS's name: %s", lines[1])
	}

	// JSON in, bin out, and bin back to JSON gives the same JSON.
	code, bin, stderr := runApp(t, f.args(), strings.NewReader(in))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, again, stderr := runApp(t, f.args("--format", "json", "--input-format", "bin"), bytes.NewReader(bin))
	if code != 0 || !bytes.Equal(again, out) {
		t.Fatalf("exit %d %s\n got %s\nwant %s", code, stderr, again, out)
	}
}

func TestExitCodes(t *testing.T) {
	f := newFixture(t)
	odd := enrichtest.WriteMMDB(t, f.dir, "odd.mmdb", "GeoIP2-Anonymous-IP", []enrichtest.Entry{
		{Prefix: "192.0.2.0/24", Record: enrichtest.CountryCode("NL")},
	})
	badNets := filepath.Join(f.dir, "bad.yaml")
	os.WriteFile(badNets, []byte("networks:\n  - name: a\n    cidrs: [10.0.0.0/8, 10.1.0.0/33]\n"), 0o644)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		err   string
	}{
		{"missing db", []string{"flowenrich", "--asn-db", filepath.Join(f.dir, "nope.mmdb")}, "", 1, "nope.mmdb"},
		{"wrong shape", []string{"flowenrich", "--asn-db", odd}, "", 1, "holds country records"},
		{"bad networks", []string{"flowenrich", "--networks", badNets}, "", 1, "bad.yaml:3"},
		{"bad flag", []string{"flowenrich", "--no-such-flag"}, "", 2, "flag provided but not defined"},
		{"nothing to do", []string{"flowenrich"}, "", 2, "nothing to do"},
		{"bad mode", f.args("--lookup-mode", "fast"), "", 2, "lookup mode"},
		{"bad format", f.args("--format", "auto"), "", 2, "--format"},
		{"bad input", f.args(), "\x05abc", 1, "offset 0"},
		{"empty input", f.args(), "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runApp(t, tc.args, strings.NewReader(tc.stdin))
			if code != tc.code || !strings.Contains(stderr, tc.err) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.err)
			}
			if tc.code != 0 && strings.Count(stderr, "flowenrich: ") != 1 {
				t.Errorf("want one error line, got %q", stderr)
			}
		})
	}
}

// TestReloadWhileStreaming changes the networks file under a live stream:
// records keep flowing and pick up the new file.
func TestReloadWhileStreaming(t *testing.T) {
	f := newFixture(t)
	pr, pw := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- command.Run(context.Background(), newApp(), f.args("--reload-interval", "20ms", "--format", "json"),
			command.Streams{In: pr, Out: outW, Err: &errb})
		outW.Close()
	}()
	lines := make(chan string, 1000)
	go func() {
		dec := newLineReader(outR)
		for {
			l, err := dec()
			if err != nil {
				close(lines)
				return
			}
			lines <- l
		}
	}()
	send := func() string {
		t.Helper()
		if _, err := io.WriteString(pw, `{"src_addr":"10.1.2.3","dst_addr":"192.0.2.1"}`+"\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case l := <-lines:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no output within 5s: idle input did not flush")
		}
		return ""
	}
	if l := send(); !strings.Contains(l, `"src_net_name":"lan"`) {
		t.Fatalf("before: %s", l)
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(f.nets, []byte("networks:\n  - name: renamed\n    cidrs: [10.0.0.0/8]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := send()
		if strings.Contains(l, `"src_net_name":"renamed"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reload not picked up: %s", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A broken file keeps the loaded data. It replaces the file at once,
	// as an editor or a deployment does: written in place, the watcher
	// could read it empty between truncation and write, and an empty file
	// is a valid one without networks.
	broken := f.nets + ".new"
	if err := os.WriteFile(broken, []byte("networks: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, f.nets); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if l := send(); !strings.Contains(l, `"src_net_name":"renamed"`) {
		t.Fatalf("after a bad reload: %s", l)
	}
	pw.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "reload failed") {
		t.Errorf("failed reload not logged: %s", errb.String())
	}
}

func newLineReader(r io.Reader) func() (string, error) {
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	return func() (string, error) {
		for {
			if i := bytes.IndexByte(buf, '\n'); i >= 0 {
				l := string(buf[:i])
				buf = buf[i+1:]
				return l, nil
			}
			n, err := r.Read(tmp)
			buf = append(buf, tmp[:n]...)
			if err != nil {
				return "", err
			}
		}
	}
}
