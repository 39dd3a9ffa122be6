package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	pprofile "github.com/google/pprof/profile"
)

// Stacks as flowcollect's profiles show them, leaf first.
var (
	stackRecvmmsg = []string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6",
		"github.com/flowpipe/flowpipe/pkg/collect.(*mmsgReader).read", "internal/poll.(*FD).RawRead", "net.(*rawConn).Read",
		"github.com/flowpipe/flowpipe/pkg/collect.(*mmsgReader).Read", "github.com/flowpipe/flowpipe/pkg/collect.(*socket).readLoop"}
	stackWrite = []string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "syscall.Syscall", "syscall.write",
		"syscall.Write", "internal/poll.ignoringEINTRIO", "internal/poll.(*FD).Write", "os.(*File).write", "os.(*File).Write",
		"github.com/flowpipe/flowpipe/pkg/collect.(*FileOutput).Write", "github.com/flowpipe/flowpipe/pkg/collect.(*Collector).writeLoop"}
	// Encoding runs inside the receive loop: the leaf decides.
	stackEncode = []string{"github.com/flowpipe/flowpipe/pkg/flowpb.appendVarint", "github.com/flowpipe/flowpipe/pkg/flowpb.appendVarintField",
		"github.com/flowpipe/flowpipe/pkg/flowpb.(*FlowMessage).AppendMarshal", "github.com/flowpipe/flowpipe/pkg/collect.AppendFrame",
		"github.com/flowpipe/flowpipe/pkg/collect.(*worker).onRecord", "github.com/flowpipe/flowpipe/pkg/decode/netflow.(*Decoder).record",
		"internal/poll.(*FD).RawRead"}
	stackDecode = []string{"encoding/binary.bigEndian.Uint32", "github.com/flowpipe/flowpipe/pkg/decode/netflow.be",
		"github.com/flowpipe/flowpipe/pkg/decode/netflow.(*Decoder).record", "internal/poll.(*FD).RawRead"}
	stackPreempted = []string{"runtime.asyncPreempt", "github.com/flowpipe/flowpipe/pkg/decode/sflow.(*Decoder).parseHeader",
		"github.com/flowpipe/flowpipe/pkg/collect.(*worker).decode"}
	stackEpoll = []string{"internal/runtime/syscall/linux.Syscall6", "internal/runtime/syscall/linux.EpollWait", "runtime.netpoll",
		"runtime.findRunnable", "runtime.schedule", "runtime.park_m", "runtime.mcall"}
	stackAlloc = []string{"runtime.mallocgc", "runtime.growslice", "github.com/flowpipe/flowpipe/pkg/decode/netflow.(*Decoder).record"}
	stackGC    = []string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker.func2", "runtime.systemstack"}
	stackWake  = []string{"runtime.futex", "runtime.futexwakeup", "runtime.notewakeup", "runtime.startm", "runtime.wakep",
		"runtime.ready", "runtime.send", "runtime.chansend", "github.com/flowpipe/flowpipe/pkg/collect.(*worker).send"}
	stackHandoff = []string{"runtime.sendDirect", "runtime.send", "runtime.chansend", "runtime.chansend1",
		"github.com/flowpipe/flowpipe/pkg/collect.(*worker).send"}
	stackMetrics = []string{"github.com/prometheus/client_golang/prometheus.(*counter).Add", "github.com/flowpipe/flowpipe/pkg/collect.(*workerMetrics).exporter"}
	stackOther   = []string{"net/http.(*conn).serve", "runtime.goexit"}
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		stack []string
		want  string
	}{
		{stackRecvmmsg, catReceive}, {stackWrite, catWrite}, {stackEncode, catEncode}, {stackDecode, catDecode},
		{stackPreempted, catDecode}, {stackEpoll, catScheduler}, {stackAlloc, catGC}, {stackGC, catGC},
		{stackWake, catScheduler}, {stackHandoff, catCollect}, {stackMetrics, catCollect}, {stackOther, catOther},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "github.com/flowpipe/flowpipe/pkg/collect.kernelDrops"}, catSyscall},
		{nil, catOther},
	} {
		if got := classify(c.stack); got != c.want {
			t.Errorf("classify(%s...) = %q, want %q", c.stack[:min(2, len(c.stack))], got, c.want)
		}
	}
}

// testProfile builds a CPU profile of the given stacks and sample counts
// (10 ms each).
func testProfile(stacks [][]string, counts []int64) *pprofile.Profile {
	p := &pprofile.Profile{
		SampleType:    []*pprofile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		DurationNanos: int64(2 * time.Second),
	}
	fns := map[string]*pprofile.Function{}
	for i, stack := range stacks {
		var locs []*pprofile.Location
		for _, name := range stack {
			fn, ok := fns[name]
			if !ok {
				fn = &pprofile.Function{ID: uint64(len(fns) + 1), Name: name}
				fns[name] = fn
				p.Function = append(p.Function, fn)
			}
			loc := &pprofile.Location{ID: uint64(len(p.Location) + 1), Line: []pprofile.Line{{Function: fn}}}
			p.Location = append(p.Location, loc)
			locs = append(locs, loc)
		}
		p.Sample = append(p.Sample, &pprofile.Sample{Location: locs, Value: []int64{counts[i], counts[i] * int64(10*time.Millisecond)}})
	}
	return p
}

func TestSummarizeProfile(t *testing.T) {
	p := testProfile([][]string{stackEncode, stackDecode, stackRecvmmsg, stackWrite}, []int64{50, 30, 15, 5})
	// A round trip through the encoded form, as fetched from /debug/pprof.
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	parsed, err := pprofile.ParseData(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	cats, flat, cum, total := summarizeProfile(parsed, 3)
	if total != time.Second {
		t.Errorf("total %v, want 1s", total)
	}
	want := []share{{catReceive, 150 * time.Millisecond, 15}, {catDecode, 300 * time.Millisecond, 30},
		{catEncode, 500 * time.Millisecond, 50}, {catWrite, 50 * time.Millisecond, 5}}
	if len(cats) != len(want) {
		t.Fatalf("categories %+v", cats)
	}
	for i := range want {
		if cats[i] != want[i] {
			t.Errorf("category %d: %+v, want %+v", i, cats[i], want[i])
		}
	}
	if len(flat) != 3 || flat[0].Name != "pkg/flowpb.appendVarint" || flat[0].Pct != 50 ||
		flat[1].Name != "encoding/binary.bigEndian.Uint32" || flat[2].Name != "internal/runtime/syscall/linux.Syscall6" || flat[2].Pct != 20 {
		t.Errorf("flat %+v", flat)
	}
	// record is on the encode and decode stacks: 80%.
	if len(cum) != 3 || cum[0].Name != "pkg/decode/netflow.(*Decoder).record" || cum[0].Pct != 80 {
		t.Errorf("cum %+v", cum)
	}
}

func TestProfileFindings(t *testing.T) {
	pp := func(proto string, decode, encode, collect float64) protoProfile {
		return protoProfile{Protocol: proto, Categories: []share{{Name: catDecode, Pct: decode}, {Name: catEncode, Pct: encode},
			{Name: catCollect, Pct: collect}}, TopFlat: []share{{Name: "pkg/flowpb.appendVarint", Pct: encode / 2}}}
	}
	got := strings.Join(profileFindings([]protoProfile{pp("ipfix", 35.4, 45.2, 2.6), pp("netflow5", 11.2, 64.3, 3.3),
		{Protocol: "sflow", Err: "failed"}}), "\n")
	for _, want := range []string{"Decode and encode take 76-81%", "encode alone 45-64%", "decode 11-35%",
		"batching, hand-off and metrics 3%", "GC and allocation 0%",
		"Hottest function by self time: IPFIX `pkg/flowpb.appendVarint` (23%), NetFlow v5 `pkg/flowpb.appendVarint` (32%)."} {
		if !strings.Contains(got, want) {
			t.Errorf("findings lack %q:\n%s", want, got)
		}
	}
	if profileFindings([]protoProfile{{Protocol: "sflow", Err: "failed"}}) != nil {
		t.Error("findings without a profile")
	}
}

func TestRenderProfiles(t *testing.T) {
	cats, flat, cum, total := summarizeProfile(testProfile([][]string{stackEncode, stackDecode, stackRecvmmsg, stackAlloc},
		[]int64{60, 20, 10, 10}), 5)
	r := &profilesReport{Date: time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC), Command: "scripts/bench/bench.sh --only profile",
		Version: "abc123", CPUs: 2, LoadStart: "0.1 0.1 0.1", LoadEnd: "0.2 0.1 0.1",
		Profiles: []protoProfile{
			{Protocol: "ipfix", Rate: 16000, DatagramRate: 15900, Sent: 1000, Counted: 1000, CPUPerRecord: 0.5, Sampled: total,
				Window: 2 * time.Second, Categories: cats, TopFlat: flat, TopCum: cum},
			{Protocol: "sflow", Rate: 16000, Err: "flowcollect did not start"},
		}}
	var b bytes.Buffer
	renderProfiles(&b, r)
	out := b.String()
	for _, want := range []string{
		"2026-12-02 15:00 UTC with `scripts/bench/bench.sh --only profile` (flowpipe abc123)",
		"- Decode and encode take 80% of flowcollect's CPU (encode alone 60%, decode 20%); receive and write syscalls 10%;",
		"GC and allocation 10%",
		"Hottest function by self time: IPFIX `pkg/flowpb.appendVarint` (60%).",
		"| IPFIX | 16 000 (15.9k) | 1000 of 1000 | 0.500 | 1.00s in 2s (0.50 cores) | 10.0% | 20.0% | 60.0% | - | - | 10.0% | - | - | - |",
		"| sFlow v5 | failed: flowcollect did not start |",
		"## IPFIX at 16 000 datagrams/s",
		"| `pkg/flowpb.appendVarint` | 600ms | 60.0% |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("profiles.md lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "busy") {
		t.Error("an idle machine reported busy")
	}
}
