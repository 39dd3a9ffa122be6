package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	pprofile "github.com/google/pprof/profile"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// The profile section records where flowcollect's CPU goes at a steady
// load, per protocol: a CPU profile from its /debug/pprof while flowgen
// sends at --profile-rate datagrams/s, summed into a few categories
// (receive, decode, encode, write, the collector's own plumbing, GC and
// allocation, the scheduler) and its top functions, written to
// scripts/bench/profiles.md. Run before and after a change, the two
// files say what the change took off.

// profileConfig is what the profile section runs.
type profileConfig struct {
	Flowcollect string
	Protocols   []string
	Rate        float64 // datagrams/s
	Seconds     int     // profile length
	Work        string
	Keep        string // directory to keep the raw profiles in ("" not kept)
	Cgroups     cgroupParent
	Log         io.Writer
}

// protoProfile is one protocol's profile, summarized.
type protoProfile struct {
	Protocol     string
	Rate         float64 // datagrams/s asked
	DatagramRate float64 // achieved over the whole send
	Sent         int64   // records sent (whole send)
	Counted      int64   // records in flowcollect's output
	CPUPerRecord float64 // µs, whole tree over the whole send (cgroup)
	Sampled      time.Duration
	Window       time.Duration
	Categories   []share
	TopFlat      []share // functions by self time
	TopCum       []share // flowpipe functions by cumulative time
	Kept         string  // path of the raw profile, if kept
	Method       string
	Err          string
}

// share is a part of the sampled CPU time.
type share struct {
	Name string
	Dur  time.Duration
	Pct  float64
}

// Profile categories, in the order the report lists them.
const (
	catReceive   = "receive: recvmmsg and its syscall"
	catDecode    = "decode (pkg/decode)"
	catEncode    = "encode: protobuf / JSON (pkg/flowpb, pkg/framing)"
	catWrite     = "write: output syscalls"
	catCollect   = "collect: batching, hand-off, buffers, metrics (pkg/collect, pkg/telemetry)"
	catGC        = "runtime: GC and allocation"
	catScheduler = "runtime: scheduler, wake-ups, timers"
	catSyscall   = "other syscalls"
	catOther     = "other"
)

var categoryOrder = []string{catReceive, catDecode, catEncode, catWrite, catCollect, catGC, catScheduler, catSyscall, catOther}

const modulePath = "github.com/flowpipe/flowpipe/"

// classify names the category of one sample from its stack, leaf first:
// the first frame that tells decides. A syscall frame says only that the
// time is in the kernel; the frames above it say for what (a write, a
// receive, the scheduler's epoll).
func classify(stack []string) string {
	inSyscall := false
	for _, fn := range stack {
		switch {
		case isSyscallFrame(fn):
			inSyscall = true
		case hasAny(fn, "syscall.write", "syscall.Write", "internal/poll.(*FD).Write", "os.(*File).Write", "(*FileOutput).Write", "syscall.writev", "internal/poll.(*FD).Writev"):
			return catWrite
		case hasAny(fn, "recvmmsg", "Recvmmsg", "mmsgReader", "recvfrom", "recvmsg", "ReadFrom", "ReadMsg", "ReadBatch", "internal/poll.(*FD).RawRead"):
			return catReceive
		case strings.HasPrefix(fn, "runtime.") && isGCFrame(fn):
			return catGC
		case strings.HasPrefix(fn, "runtime.") && isSchedFrame(fn), strings.HasPrefix(fn, "internal/runtime/syscall/linux.EpollWait"):
			return catScheduler
		case inSyscall && strings.HasPrefix(fn, "runtime."):
			// entersyscall and friends: keep looking for the caller
		case strings.HasPrefix(fn, modulePath+"pkg/decode/"):
			return catDecode
		case strings.HasPrefix(fn, modulePath+"pkg/flowpb."), strings.HasPrefix(fn, modulePath+"pkg/framing."):
			return catEncode
		case strings.HasPrefix(fn, modulePath+"pkg/collect."), strings.HasPrefix(fn, modulePath+"pkg/telemetry."),
			strings.HasPrefix(fn, "github.com/prometheus/"):
			if inSyscall {
				return catSyscall
			}
			return catCollect
		}
	}
	if inSyscall {
		return catSyscall
	}
	return catOther
}

func hasAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func isSyscallFrame(fn string) bool {
	return hasAny(fn, "internal/runtime/syscall/linux.Syscall", "syscall.Syscall", "syscall.RawSyscall",
		"golang.org/x/sys/unix.Syscall", "golang.org/x/sys/unix.RawSyscall", "runtime.entersyscall", "runtime.exitsyscall",
		"runtime.reentersyscall")
}

func isGCFrame(fn string) bool {
	for _, p := range []string{"runtime.gc", "runtime.mallocgc", "runtime.bgsweep", "runtime.bgscavenge", "runtime.scanobject",
		"runtime.markroot", "runtime.greyobject", "runtime.(*mheap)", "runtime.(*mspan)", "runtime.(*mcache)", "runtime.(*mcentral)",
		"runtime.(*gcWork)", "runtime.(*gcControllerState)", "runtime.sweepone", "runtime.newobject", "runtime.makeslice",
		"runtime.growslice", "runtime.mallocgc", "runtime.memclrNoHeapPointers", "runtime.wbBuf", "runtime.bulkBarrier",
		"runtime.scanstack", "runtime.scanblock", "runtime.findObject", "runtime.heapBits", "runtime.(*sweepLocked)",
		"runtime.(*scavenger", "runtime.(*pageAlloc)", "runtime.sysUnused", "runtime.madvise", "runtime.concatstring",
		"runtime.rawstring", "runtime.slicebytetostring"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

func isSchedFrame(fn string) bool {
	for _, p := range []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.mcall", "runtime.futex",
		"runtime.notesleep", "runtime.notewakeup", "runtime.netpoll", "runtime.usleep", "runtime.osyield", "runtime.stopm",
		"runtime.startm", "runtime.wakep", "runtime.sysmon", "runtime.mstart", "runtime.goready", "runtime.ready",
		"runtime.gopark", "runtime.goschedImpl", "runtime.gosched", "runtime.checkTimers", "runtime.stealWork",
		"runtime.runqgrab", "runtime.runqget", "runtime.runqsteal", "runtime.resetspinning", "runtime.semasleep",
		"runtime.semawakeup", "runtime.(*timer", "runtime.(*timers)", "runtime.nanotime", "runtime.procyield",
		"runtime.lock2", "runtime.unlock2", "runtime.execute", "runtime.handoffp", "runtime.retake", "runtime.preemptone",
		"runtime.signalM", "runtime.tgkill", "runtime.pthread", "runtime.goexit0", "runtime.newproc", "runtime.semacquire",
		"runtime.semrelease", "runtime.morestack", "runtime.newstack", "runtime.copystack"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// summarizeProfile sums a CPU profile into categories and top functions.
func summarizeProfile(p *pprofile.Profile, top int) (cats, flat, cum []share, total time.Duration) {
	idx := slices.IndexFunc(p.SampleType, func(st *pprofile.ValueType) bool { return st.Type == "cpu" })
	if idx < 0 {
		idx = len(p.SampleType) - 1
	}
	byCat := map[string]int64{}
	flatBy := map[string]int64{}
	cumBy := map[string]int64{}
	var sum int64
	var stack []string
	for _, s := range p.Sample {
		v := s.Value[idx]
		sum += v
		stack = stack[:0]
		for _, loc := range s.Location {
			// Inlined functions come first in a location's lines: leaf first.
			for _, line := range loc.Line {
				if line.Function != nil {
					stack = append(stack, line.Function.Name)
				}
			}
		}
		byCat[classify(stack)] += v
		if len(stack) > 0 {
			flatBy[stack[0]] += v
		}
		seen := map[string]bool{}
		for _, fn := range stack {
			if !seen[fn] && strings.HasPrefix(fn, modulePath) {
				seen[fn] = true
				cumBy[fn] += v
			}
		}
	}
	unit := time.Duration(1)
	if p.SampleType[idx].Unit == "microseconds" {
		unit = time.Microsecond
	}
	mk := func(name string, v int64) share {
		return share{Name: name, Dur: time.Duration(v) * unit, Pct: 100 * float64(v) / float64(max(sum, 1))}
	}
	for _, c := range categoryOrder {
		if v := byCat[c]; v > 0 {
			cats = append(cats, mk(c, v))
		}
	}
	topOf := func(m map[string]int64) []share {
		var out []share
		for fn, v := range m {
			out = append(out, mk(strings.TrimPrefix(fn, modulePath), v))
		}
		slices.SortFunc(out, func(a, b share) int {
			if a.Dur != b.Dur {
				return int(b.Dur - a.Dur)
			}
			return strings.Compare(a.Name, b.Name)
		})
		return out[:min(top, len(out))]
	}
	return cats, topOf(flatBy), topOf(cumBy), time.Duration(sum) * unit
}

// runProfiles profiles flowcollect once per protocol.
func runProfiles(ctx context.Context, c profileConfig) []protoProfile {
	var out []protoProfile
	for i, ps := range c.Protocols {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(c.Log, "bench: profile: flowcollect, %s at %.0f datagrams/s for %ds\n", ps, c.Rate, c.Seconds)
		pp := profileOne(ctx, c, ps, i+1)
		if pp.Err != "" {
			fmt.Fprintf(c.Log, "bench: profile: %s: %s\n", ps, pp.Err)
		}
		out = append(out, pp)
	}
	return out
}

func profileOne(ctx context.Context, c profileConfig, ps string, seq int) protoProfile {
	pp := protoProfile{Protocol: ps, Rate: c.Rate}
	fail := func(err error) protoProfile {
		pp.Err = err.Error()
		return pp
	}
	proto, err := flowgen.ParseProtocol(ps)
	if err != nil {
		return fail(err)
	}
	dir := filepath.Join(c.Work, fmt.Sprintf("profile-%d-%s", seq, ps))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	port, err := freePort("udp")
	if err != nil {
		return fail(err)
	}
	addr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	out := filepath.Join(dir, "flows.bin")
	logPath := filepath.Join(c.Work, fmt.Sprintf("profile-%d-%s.log", seq, ps))
	m, err := startMetered(c.Cgroups, "flowcollect-profile", logPath, c.Flowcollect,
		"--listen", fmt.Sprintf("%s://127.0.0.1:%d", scheme(proto), port), "--format", "bin", "--output", out,
		"--metrics-listen", addr, "--pprof", "--log-level", "warn")
	if err != nil {
		return fail(err)
	}
	pp.Method = m.method
	defer m.close()
	stopped := false
	defer func() {
		if !stopped {
			m.kill()
		}
	}()
	if err := waitBound(ctx, m, port, 15*time.Second); err != nil {
		return fail(fmt.Errorf("%w (log: %s)", err, logTail(logPath)))
	}
	g, err := flowgen.New(flowgen.Config{Seed: uint64(seq), Protocol: proto, FlowPool: 1024, BaseTime: time.Now()})
	if err != nil {
		return fail(err)
	}
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	if t := g.Templates(); t != nil {
		conn.Write(t)
	}
	time.Sleep(300 * time.Millisecond)
	cpu0, err := m.cpu()
	if err != nil {
		return fail(err)
	}
	// The profile starts a second into the send and ends a second before
	// it: steady state only.
	type sent struct {
		st  flowgen.SendStats
		err error
	}
	done := make(chan sent, 1)
	go func() {
		st, err := flowgen.Send(ctx, conn, g, flowgen.SendOptions{Rate: c.Rate, Duration: time.Duration(c.Seconds+2) * time.Second})
		done <- sent{st, err}
	}()
	time.Sleep(time.Second)
	raw, perr := fetchProfile(ctx, addr, c.Seconds)
	s := <-done
	if s.err != nil {
		return fail(s.err)
	}
	pp.Sent, pp.DatagramRate = int64(s.st.Records), float64(s.st.Packets)/max(s.st.Elapsed.Seconds(), 1e-9)
	m.settle(30 * time.Second)
	stopped = true
	if err := m.stop(syscall.SIGTERM, 60*time.Second); err != nil {
		return fail(err)
	}
	cpu1, err := m.cpu()
	if err != nil {
		return fail(err)
	}
	if pp.Counted, err = countFile(out, countFrames); err != nil {
		return fail(err)
	}
	if pp.Counted > 0 {
		pp.CPUPerRecord = (cpu1 - cpu0) * 1e6 / float64(pp.Counted)
	}
	if perr != nil {
		return fail(perr)
	}
	prof, err := pprofile.ParseData(raw)
	if err != nil {
		return fail(fmt.Errorf("parsing the profile: %w", err))
	}
	pp.Window = time.Duration(prof.DurationNanos)
	pp.Categories, pp.TopFlat, pp.TopCum, pp.Sampled = summarizeProfile(prof, 12)
	if c.Keep != "" {
		if err := os.MkdirAll(c.Keep, 0o755); err != nil {
			return fail(err)
		}
		pp.Kept = filepath.Join(c.Keep, fmt.Sprintf("flowcollect-%s-%.0f.pb.gz", ps, c.Rate))
		if err := os.WriteFile(pp.Kept, raw, 0o644); err != nil {
			return fail(err)
		}
	}
	return pp
}

// fetchProfile takes a CPU profile of seconds from flowcollect's
// /debug/pprof.
func fetchProfile(ctx context.Context, addr string, seconds int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/debug/pprof/profile: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// profilesReport is profiles.md.
type profilesReport struct {
	Date      time.Time
	Command   string
	Version   string
	CPUs      int
	LoadStart string
	LoadEnd   string
	Profiles  []protoProfile
}

// renderProfiles writes profiles.md.
func renderProfiles(w io.Writer, r *profilesReport) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("# Where flowcollect's CPU goes\n\n")
	p("Measured %s with `%s` (flowpipe %s). %d CPUs; load average at start %s, at end %s", r.Date.UTC().Format("2006-01-02 15:04 MST"),
		r.Command, r.Version, r.CPUs, r.LoadStart, r.LoadEnd)
	if busy(r.LoadStart, r.CPUs) || busy(r.LoadEnd, r.CPUs) {
		p(" (**the machine was busy with other work: shares hold, absolute times are noisy**)")
	}
	p(".\n\n")
	p("flowcollect (defaults, `--format bin --output FILE`) receives flowgen's datagrams over loopback UDP; a CPU profile is taken from its `/debug/pprof/profile` (`--pprof`) for the middle of the send (a second after the start, a second before the end). ")
	p("Each sample is put in the first category its stack tells, leaf first: time in a syscall goes to what called it (recvmmsg: receive; write: write; epoll: scheduler); allocation and GC go to the runtime wherever they were called from. ")
	p("CPU-µs/record is the collector's whole process tree over the whole send (cgroup), divided by the records in its output.\n\n")
	for _, line := range profileFindings(r.Profiles) {
		p("- %s\n", line)
	}
	p("\n")
	p("| protocol | datagrams/s (achieved) | records | CPU-µs/record | sampled CPU in the window |")
	for _, c := range categoryOrder {
		p(" %s |", shortCat(c))
	}
	p("\n|---|---:|---:|---:|---:|")
	for range categoryOrder {
		p("---:|")
	}
	p("\n")
	for _, pp := range r.Profiles {
		if pp.Err != "" {
			p("| %s | failed: %s |\n", protoTitle(pp.Protocol), pp.Err)
			continue
		}
		cores := pp.Sampled.Seconds() / max(pp.Window.Seconds(), 1e-9)
		p("| %s | %s (%s) | %d of %d | %.3f | %.2fs in %s (%.2f cores) |", protoTitle(pp.Protocol), groupDigits(pp.Rate), humanRate(pp.DatagramRate),
			pp.Counted, pp.Sent, pp.CPUPerRecord, pp.Sampled.Seconds(), pp.Window.Round(time.Second), cores)
		for _, c := range categoryOrder {
			i := slices.IndexFunc(pp.Categories, func(s share) bool { return s.Name == c })
			if i < 0 {
				p(" - |")
				continue
			}
			p(" %.1f%% |", pp.Categories[i].Pct)
		}
		p("\n")
	}
	p("\nCategories: ")
	for i, c := range categoryOrder {
		if i > 0 {
			p("; ")
		}
		p("**%s**: %s", shortCat(c), c)
	}
	p(".\n\n")
	for _, pp := range r.Profiles {
		if pp.Err != "" {
			continue
		}
		p("## %s at %s datagrams/s\n\n", protoTitle(pp.Protocol), groupDigits(pp.Rate))
		if pp.Kept != "" {
			p("Raw profile: `%s` (`go tool pprof -top %s`; compare with `-diff_base`).\n\n", pp.Kept, pp.Kept)
		}
		p("| top functions by self time | self | share |\n|---|---:|---:|\n")
		for _, s := range pp.TopFlat {
			p("| `%s` | %s | %.1f%% |\n", s.Name, s.Dur.Round(10*time.Millisecond), s.Pct)
		}
		p("\n| flowpipe functions by cumulative time | cum | share |\n|---|---:|---:|\n")
		for _, s := range pp.TopCum {
			p("| `%s` | %s | %.1f%% |\n", s.Name, s.Dur.Round(10*time.Millisecond), s.Pct)
		}
		p("\n")
	}
}

// profileFindings sums the profiles up: the categories' shares as ranges
// over the protocols, and each protocol's hottest function.
func profileFindings(profiles []protoProfile) []string {
	var ok []protoProfile
	for _, pp := range profiles {
		if pp.Err == "" && len(pp.Categories) > 0 {
			ok = append(ok, pp)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	pct := func(pp protoProfile, cats ...string) float64 {
		var v float64
		for _, c := range pp.Categories {
			if slices.Contains(cats, c.Name) {
				v += c.Pct
			}
		}
		return v
	}
	span := func(cats ...string) string {
		lo, hi := 100.0, 0.0
		for _, pp := range ok {
			v := pct(pp, cats...)
			lo, hi = min(lo, v), max(hi, v)
		}
		l, h := fmt.Sprintf("%.0f", lo), fmt.Sprintf("%.0f", hi)
		if l == h {
			return h + "%"
		}
		return l + "-" + h + "%"
	}
	out := []string{fmt.Sprintf("Decode and encode take %s of flowcollect's CPU (encode alone %s, decode %s); receive and write syscalls %s; "+
		"batching, hand-off and metrics %s; GC and allocation %s; the scheduler %s.",
		span(catDecode, catEncode), span(catEncode), span(catDecode), span(catReceive, catWrite), span(catCollect), span(catGC), span(catScheduler))}
	var hot []string
	for _, pp := range ok {
		if len(pp.TopFlat) > 0 {
			hot = append(hot, fmt.Sprintf("%s `%s` (%.0f%%)", protoTitle(pp.Protocol), pp.TopFlat[0].Name, pp.TopFlat[0].Pct))
		}
	}
	out = append(out, "Hottest function by self time: "+strings.Join(hot, ", ")+".")
	return out
}

// shortCat is a category's column title.
func shortCat(c string) string {
	switch c {
	case catReceive:
		return "receive"
	case catDecode:
		return "decode"
	case catEncode:
		return "encode"
	case catWrite:
		return "write"
	case catCollect:
		return "collect"
	case catGC:
		return "GC+alloc"
	case catScheduler:
		return "scheduler"
	case catSyscall:
		return "other syscalls"
	}
	return "other"
}
