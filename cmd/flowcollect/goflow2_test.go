package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// TestSameAsGoflow2Binary runs goflow2 v2.2.6 (built from its module) and
// flowcollect side by side, both with goflow2's own cmd/goflow2/mapping.yaml
// unchanged, on the same datagrams sent over loopback: IPFIX and NetFlow v9
// (flowgen's, and records carrying the elements the mapping file maps:
// flowDirection 61, biflowDirection 239, ingress/egressVRFID 234/235) and
// sFlow (flowgen's sampled headers, whose UDP and TCP checksums the file
// maps into csum). Record for record, every field the two emit in common
// must be equal, in JSON (goflow2's formatter: its fields, order and
// renderers) and in bin (goflow2's default newline separator, read by
// flowpipe's reader). Fields that cannot match are left out and said why:
// the receive time (each process reads its own clock) and, for sFlow,
// goflow2 v2.2.6's known mistakes (no ICMP type/code, so icmp_name; VLAN
// priority bits; TCP layer size).
func TestSameAsGoflow2Binary(t *testing.T) {
	gfDir := interop.Goflow2Dir(t)
	mappingFile := filepath.Join(gfDir, "cmd", "goflow2", "mapping.yaml")
	interop.Goflow2Binary(t)
	for _, proto := range []flowgen.Protocol{flowgen.IPFIX, flowgen.NetFlowV9, flowgen.SFlow} {
		dgs := goflow2Datagrams(t, proto)
		for _, format := range []string{"json", "bin"} {
			t.Run(fmt.Sprintf("%s/%s", proto, format), func(t *testing.T) {
				scheme := "netflow"
				if proto == flowgen.SFlow {
					scheme = "sflow"
				}
				gf := interop.StartGoflow2(t, scheme+"", "-format="+format, "-mapping="+mappingFile)
				out := filepath.Join(t.TempDir(), "flowcollect.out")
				// goflow2's listen parameters, given to flowcollect too.
				uri := scheme + "://127.0.0.1:0?count=1&workers=1&blocking=false&queue_size=100000"
				fc := start(t, "--listen", uri, "--metrics-listen", "", "--format", format,
					"--mapping", mappingFile, "--output", out, "--flush-interval", "10ms")
				interop.Send(t, gf.Port, dgs.packets)
				fcAddr := fc.addr(t, uri)
				interop.Send(t, int(fcAddr.Port()), dgs.packets)
				want := dgs.records
				var theirs, ours [][]byte
				if format == "json" {
					theirs = splitLines(gf.WaitRecords(t, interop.CountLines, want, 30*time.Second))
					ours = splitLines(waitOutput(t, out, interop.CountLines, want))
				} else {
					theirs = binRecords(t, gf.WaitRecords(t, countSeparated, want, 30*time.Second), framing.SepNewline)
					ours = binRecords(t, waitOutput(t, out, countFrames, want), framing.SepNone)
				}
				fc.stop(t)
				gf.Stop(t)
				if len(theirs) != want || len(ours) != want {
					b, _ := os.ReadFile(gf.Output)
					t.Logf("goflow2's output:\n%q", b)
					t.Fatalf("goflow2 wrote %d records, flowcollect %d, want %d", len(theirs), len(ours), want)
				}
				compareRecords(t, proto, format, theirs, ours)
			})
		}
	}
}

type goflow2Input struct {
	packets [][]byte
	records int
}

// goflow2Datagrams builds the datagrams of a run: templates first.
func goflow2Datagrams(t *testing.T, proto flowgen.Protocol) goflow2Input {
	t.Helper()
	var in goflow2Input
	g, err := flowgen.New(flowgen.Config{Seed: 17, Protocol: proto, TemplateInterval: -1, IPv6Ratio: 0.3, RecordsPerPacket: 6})
	if err != nil {
		t.Fatal(err)
	}
	if tpl := g.Templates(); tpl != nil {
		in.packets = append(in.packets, bytes.Clone(tpl))
	}
	for range 20 {
		pkt, flows := g.Next()
		in.packets = append(in.packets, bytes.Clone(pkt))
		in.records += len(flows)
	}
	switch proto {
	case flowgen.IPFIX:
		in.packets = append(in.packets, mappedNetFlow(10, 0), mappedNetFlow(10, 1))
		in.records += 3
	case flowgen.NetFlowV9:
		in.packets = append(in.packets, mappedNetFlow(9, 0), mappedNetFlow(9, 1))
		in.records += 3
	}
	return in
}

// mappedNetFlow is a v9 (version 9) or IPFIX (10) packet with a template
// (seq 0) or three data records (seq 1) carrying the elements goflow2's
// mapping file maps: 61 and, for IPFIX, 239, 234 and 235.
func mappedNetFlow(version uint16, seq uint32) []byte {
	type ie struct{ id, length uint16 }
	ies := []ie{{8, 4}, {12, 4}, {7, 2}, {11, 2}, {4, 1}, {1, 8}, {2, 8}, {10, 4}, {14, 4}, {61, 1}}
	if version == 10 {
		ies = append(ies, ie{239, 1}, ie{234, 4}, ie{235, 4}, ie{152, 8}, ie{153, 8})
	} else {
		ies = append(ies, ie{22, 4}, ie{21, 4})
	}
	const tid = 400
	var body []byte
	be16 := func(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
	be32 := func(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
	export := uint32(1_704_067_200)
	if seq == 0 {
		setID := uint16(2)
		if version == 9 {
			setID = 0
		}
		set := be16(be16(nil, tid), uint16(len(ies)))
		for _, e := range ies {
			set = be16(be16(set, e.id), e.length)
		}
		body = be16(be16(body, setID), uint16(4+len(set)))
		body = append(body, set...)
	} else {
		var set []byte
		for r := range 3 {
			set = append(set, 10, 1, 0, byte(r+1), 198, 51, 100, byte(r+7))
			set = be16(be16(set, uint16(40000+r)), 443)
			set = append(set, 6)
			set = binary.BigEndian.AppendUint64(set, uint64(1500*(r+1)))
			set = binary.BigEndian.AppendUint64(set, uint64(r+1))
			set = be32(be32(set, uint32(r+3)), uint32(r+5))
			set = append(set, byte(r%2))
			if version == 10 {
				set = append(set, byte(r%3))
				set = be32(be32(set, uint32(100+r)), uint32(200+r))
				set = binary.BigEndian.AppendUint64(set, uint64(export-10)*1000)
				set = binary.BigEndian.AppendUint64(set, uint64(export-1)*1000)
			} else {
				set = be32(be32(set, 3_590_000), 3_599_000) // first/last switched, uptime 3 600 000 ms
			}
		}
		for len(set)%4 != 0 {
			set = append(set, 0)
		}
		body = be16(be16(body, tid), uint16(4+len(set)))
		body = append(body, set...)
	}
	var h []byte
	if version == 10 {
		h = be16(be16(nil, 10), uint16(16+len(body)))
		h = be32(be32(be32(h, export), seq), 7)
	} else {
		h = be16(be16(nil, 9), 1)
		h = be32(be32(be32(be32(h, 3_600_000), export), 100+seq), 7)
	}
	return append(h, body...)
}

func waitOutput(t *testing.T, path string, count func([]byte) int, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if count(b) >= n {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowcollect wrote %d records, want %d", count(b), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

func countFrames(b []byte) int { return len(binRecordsQuiet(b)) }

func countSeparated(b []byte) int {
	n := 0
	for len(b) > 0 {
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size+1 {
			break
		}
		b = b[k+int(size)+1:]
		n++
	}
	return n
}

func binRecordsQuiet(b []byte) [][]byte {
	r := framing.NewReader(bytes.NewReader(b), 0)
	var out [][]byte
	for {
		f, err := r.Next()
		if err != nil {
			return out
		}
		out = append(out, bytes.Clone(f))
	}
}

// binRecords reads a bin stream with flowpipe's reader, which must find
// the separator sep by itself.
func binRecords(t *testing.T, b []byte, sep framing.Separator) [][]byte {
	t.Helper()
	r := framing.NewReader(bytes.NewReader(b), 0)
	var out [][]byte
	for {
		f, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("record %d: %v", len(out), err)
		}
		out = append(out, bytes.Clone(f))
	}
	if len(out) > 1 && r.Separator() != sep {
		t.Fatalf("separator %s, want %s", r.Separator(), sep)
	}
	return out
}

// compareRecords matches records by their content (goflow2's workers
// reorder them) and compares the fields both emit.
func compareRecords(t *testing.T, proto flowgen.Protocol, format string, theirs, ours [][]byte) {
	t.Helper()
	skip := map[string]string{"time_received_ns": "each process's own receive time"}
	if proto == flowgen.SFlow {
		skip["time_flow_start_ns"] = "the receive time, for sFlow"
		skip["time_flow_end_ns"] = "the receive time, for sFlow"
		skip["icmp_name"] = "goflow2 v2.2.6 reads no ICMP type from sFlow"
		skip["icmp_type"], skip["icmp_code"] = skip["icmp_name"], skip["icmp_name"]
		skip["vlan_id"] = "goflow2 v2.2.6 keeps the VLAN priority bits"
		skip["layer_size"] = "goflow2 v2.2.6 reads the TCP header length from the flags byte"
	}
	norm := func(rec []byte) (map[string]string, error) {
		if format == "json" {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(rec, &m); err != nil {
				return nil, err
			}
			out := map[string]string{}
			for k, v := range m {
				out[k] = string(v)
			}
			return out, nil
		}
		return binFields(rec)
	}
	keyOf := func(m map[string]string) string {
		var parts []string
		for k, v := range m {
			if _, s := skip[k]; !s {
				parts = append(parts, k+"="+v)
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	}
	theirByKey := map[string]int{}
	for _, r := range theirs {
		m, err := norm(r)
		if err != nil {
			t.Fatalf("goflow2 record %s: %v", r, err)
		}
		theirByKey[keyOf(m)]++
	}
	compared, fields := 0, map[string]bool{}
	for i, r := range ours {
		m, err := norm(r)
		if err != nil {
			t.Fatalf("flowcollect record %s: %v", r, err)
		}
		k := keyOf(m)
		if theirByKey[k] == 0 {
			t.Fatalf("flowcollect record %d has no equal in goflow2's output (fields both emit, but %v):\n%s\nclosest goflow2 record:\n%s",
				i, slices.Sorted(mapsKeys(skip)), describe(m), closest(theirs, m, norm, skip))
		}
		theirByKey[k]--
		for f := range m {
			fields[f] = true
		}
		compared++
	}
	t.Logf("%d records equal to goflow2's, fields %v (left out: %v)", compared, slices.Sorted(mapsKeys(fields)), skip)
	if format == "json" {
		// The formatter's own fields: both write exactly goflow2's list.
		for _, f := range []string{"type", "sampler_address", "bytes", "src_addr", "src_net", "etype", "proto", "src_mac"} {
			if !fields[f] {
				t.Errorf("field %s missing", f)
			}
		}
	}
}

func mapsKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func describe(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// closest is the goflow2 record that differs from m in the fewest fields,
// with the differing fields, for the failure message.
func closest(theirs [][]byte, m map[string]string, norm func([]byte) (map[string]string, error), skip map[string]string) string {
	best, bestDiff := "", 1<<30
	for _, r := range theirs {
		g, _ := norm(r)
		var diff []string
		for k, v := range m {
			if _, s := skip[k]; !s && g[k] != v {
				diff = append(diff, fmt.Sprintf("%s: ours %s goflow2 %s", k, v, g[k]))
			}
		}
		for k, v := range g {
			if _, ok := m[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s: only goflow2's, %s", k, v))
			}
		}
		if len(diff) < bestDiff {
			best, bestDiff = strings.Join(diff, "\n"), len(diff)
		}
	}
	return best
}

// binFields lists a bin record's fields by number (flow.proto's and
// custom ones alike), with the values as read from the wire.
func binFields(rec []byte) (map[string]string, error) {
	var m flowpb.FlowMessage
	if err := proto.Unmarshal(rec, &m); err != nil {
		return nil, err
	}
	out := map[string]string{}
	b := rec
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("bad tag")
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, fmt.Errorf("bad field %d", num)
		}
		name := fmt.Sprint(num)
		if f, ok := flowpb.FieldByNumber(num); ok {
			name = f.Name
		}
		out[name] += fmt.Sprintf("%x;", b[:n])
		b = b[n:]
	}
	return out, nil
}
