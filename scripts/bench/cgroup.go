package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A collector's cost is the cost of its whole process tree: pmacct runs a
// core process and a plugin process that forks a writer at every purge,
// and those writers are gone before anyone could read their /proc entries.
// So each collector runs in a cgroup v2 of its own, created by bench for
// that one run: its cpu.stat counts every process that ever ran in it,
// including the exited ones. Where no cgroup v2 is writable, the meter
// falls back to /proc (the live tree, plus what wait4 reports of the
// children the collector reaped) and says so.

// cgroupParent is the directory under which bench creates one cgroup per
// measured run; "" when cgroups are not usable (why says why).
type cgroupParent struct {
	dir string
	why string
}

// newCgroupParent creates bench's own cgroup below the cgroup v2 that this
// process is in (the whole cgroup2 mount on a hybrid system whose v2
// hierarchy holds no controllers), and checks that a process can be moved
// into a child of it.
func newCgroupParent() cgroupParent {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cgroupParent{why: err.Error()}
	}
	mnt := cgroup2Mount(string(mounts))
	if mnt == "" {
		return cgroupParent{why: "no cgroup2 file system mounted"}
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cgroupParent{why: err.Error()}
	}
	rel, ok := cgroup2Path(string(self))
	if !ok {
		return cgroupParent{why: "this process is in no cgroup v2"}
	}
	dir := filepath.Join(mnt, rel, fmt.Sprintf("flowpipe-bench-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return cgroupParent{why: fmt.Sprintf("cannot create a cgroup (%v)", err)}
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu.stat")); err != nil {
		os.Remove(dir)
		return cgroupParent{why: fmt.Sprintf("cgroup %s has no cpu.stat (kernel older than 4.15?)", dir)}
	}
	if err := probeCgroup(dir); err != nil {
		os.Remove(dir)
		return cgroupParent{why: fmt.Sprintf("cannot start a process in cgroup %s (%v)", dir, err)}
	}
	return cgroupParent{dir: dir}
}

// probeCgroup starts a shell that does nothing in a child cgroup of dir,
// the way startMetered starts collectors.
func probeCgroup(dir string) error {
	probe, err := os.MkdirTemp(dir, "probe-")
	if err != nil {
		return err
	}
	defer os.Remove(probe)
	newCmd := func(bin string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{}
		return cmd
	}
	cmd, err := startInCgroup(newCmd, probe, "/bin/sh", []string{"-c", ":"})
	if err != nil {
		return err
	}
	return cmd.Wait()
}

// close removes bench's cgroup (its children must be gone).
func (c cgroupParent) close() {
	if c.dir != "" {
		os.Remove(c.dir)
	}
}

// cgroup2Mount finds the mount point of the cgroup2 file system in
// /proc/self/mountinfo ("" if none).
func cgroup2Mount(mountinfo string) string {
	for _, line := range strings.Split(mountinfo, "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) >= 5 && len(g) >= 1 && g[0] == "cgroup2" && f[3] == "/" {
			return unescapeMount(f[4])
		}
	}
	return ""
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroup2Path is this process's cgroup v2 path from /proc/self/cgroup (the
// "0::/path" line).
func cgroup2Path(procCgroup string) (string, bool) {
	for _, line := range strings.Split(procCgroup, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return p, true
		}
	}
	return "", false
}

// parseCPUStat reads usage_usec from a cgroup v2 cpu.stat.
func parseCPUStat(s string) (usec uint64, err error) {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New("cpu.stat: no usage_usec")
}

// parsePids reads a cgroup.procs file: one pid a line.
func parsePids(s string) []int {
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat is what bench reads of /proc/PID/stat.
type procStat struct {
	PPID int
	// CPU is utime+stime+cutime+cstime in clock ticks: the process and the
	// children it has reaped.
	CPU uint64
}

// parseProcStat parses /proc/PID/stat (the command name may hold spaces
// and parentheses: the fields start after the last ')').
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no ')'")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime 14-17.
	if len(f) < 15 {
		return procStat{}, errors.New("stat: too few fields")
	}
	var st procStat
	var err error
	if st.PPID, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, err
	}
	for _, s := range f[11:15] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return procStat{}, err
		}
		st.CPU += v
	}
	return st, nil
}

// parseVmHWM reads VmHWM from /proc/PID/status, in bytes.
func parseVmHWM(status string) uint64 { return kBField(status, "VmHWM:") }

// parsePss reads Pss from /proc/PID/smaps_rollup, in bytes: the process's
// resident pages, each shared page divided among the processes sharing it.
func parsePss(rollup string) uint64 { return kBField(rollup, "Pss:") }

// kBField reads a "Name:   1234 kB" line as bytes (0 if absent).
func kBField(s, name string) uint64 {
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

const clockTicks = 100 // USER_HZ on Linux

// treeMeter runs one process and measures its whole tree: CPU time and
// peak memory.
type treeMeter struct {
	cgroup string // this run's cgroup directory; "" in /proc mode
	method string // how CPU is measured, for the report

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error

	mu   sync.Mutex
	peak uint64
	seen map[int]bool // /proc mode: every pid seen in the tree

	stopPoll, pollDone chan struct{}
}

// startMetered starts bin with args in a new cgroup below parent (or with
// /proc accounting when parent has none), stderr to logPath, and polls
// the tree's memory until the tree has ended.
func startMetered(parent cgroupParent, name, logPath, bin string, args ...string) (*treeMeter, error) {
	m := &treeMeter{done: make(chan struct{}), seen: map[int]bool{}, stopPoll: make(chan struct{}), pollDone: make(chan struct{})}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	newCmd := func(bin string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// Nothing outlives bench, even when it is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		return cmd
	}
	if parent.dir != "" {
		dir, err := os.MkdirTemp(parent.dir, name+"-")
		if err == nil {
			m.cgroup = dir
			m.cmd, err = startInCgroup(newCmd, dir, bin, args)
		}
		if err != nil {
			if dir != "" {
				os.Remove(dir)
			}
			m.cgroup = ""
			m.method = fmt.Sprintf("/proc (cgroup %s not usable: %v)", parent.dir, err)
		} else {
			m.method = "cgroup v2 cpu.stat"
		}
	} else {
		m.method = "/proc (" + parent.why + ")"
	}
	if m.cmd == nil {
		m.cmd = newCmd(bin, args...)
		if err := m.cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	go func() {
		m.err = m.cmd.Wait()
		logf.Close()
		close(m.done)
	}()
	go m.poll()
	return m, nil
}

// startInCgroup starts the process directly in the cgroup dir
// (CLONE_INTO_CGROUP, Linux 5.7), or else through a shell that moves
// itself into the cgroup before it execs bin: either way the collector
// does all its work, and forks, inside.
func startInCgroup(newCmd func(string, ...string) *exec.Cmd, dir, bin string, args []string) (*exec.Cmd, error) {
	fd, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	cmd := newCmd(bin, args...)
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(fd.Fd())
	if err := cmd.Start(); err == nil {
		return cmd, nil
	}
	sh := append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, dir, bin}, args...)
	cmd = newCmd("/bin/sh", sh...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

func (m *treeMeter) pid() int { return m.cmd.Process.Pid }

// exited says whether the first process has ended (its tree may live on).
func (m *treeMeter) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// pids are the processes of the tree now.
func (m *treeMeter) pids() []int {
	if m.cgroup != "" {
		b, err := os.ReadFile(filepath.Join(m.cgroup, "cgroup.procs"))
		if err != nil {
			return nil
		}
		return parsePids(string(b))
	}
	if m.exited() {
		return nil
	}
	return procTree(m.pid())
}

// procTree is root and its descendants, from /proc.
func procTree(root int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if st, err := parseProcStat(string(b)); err == nil {
			children[st.PPID] = append(children[st.PPID], pid)
		}
	}
	tree := []int{root}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// poll samples the tree's memory every 100 ms. Its peak is the highest of
// Σ Pss over the processes alive at once (a forked writer shares most of
// its pages with its parent: Pss counts them once) and of the largest
// single process's VmHWM (its true peak, even between two samples).
func (m *treeMeter) poll() {
	defer close(m.pollDone)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var pss, hwm uint64
		pids := m.pids()
		for _, pid := range pids {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
				pss += parsePss(string(b))
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				hwm = max(hwm, parseVmHWM(string(b)))
			}
		}
		m.mu.Lock()
		m.peak = max(m.peak, pss, hwm)
		for _, pid := range pids {
			m.seen[pid] = true
		}
		m.mu.Unlock()
		select {
		case <-m.stopPoll:
			return
		case <-t.C:
		}
	}
}

// cpu is the CPU time, in seconds, that the tree has used so far.
func (m *treeMeter) cpu() (float64, error) {
	if m.cgroup != "" {
		b, err := os.ReadFile(filepath.Join(m.cgroup, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		usec, err := parseCPUStat(string(b))
		return float64(usec) / 1e6, err
	}
	if m.exited() {
		// wait4's rusage: the process and every child it reaped.
		ps := m.cmd.ProcessState
		return (ps.UserTime() + ps.SystemTime()).Seconds(), nil
	}
	var ticks uint64
	for _, pid := range procTree(m.pid()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		if st, err := parseProcStat(string(b)); err == nil {
			ticks += st.CPU
		}
	}
	return float64(ticks) / clockTicks, nil
}

// settle waits until the tree has used less than 3 ms of CPU in 300 ms
// (it has decoded and written what it had queued), at most d.
func (m *treeMeter) settle(d time.Duration) {
	last, _ := m.cpu()
	for deadline := time.Now().Add(d); time.Now().Before(deadline) && !m.exited(); {
		time.Sleep(300 * time.Millisecond)
		now, err := m.cpu()
		if err != nil || now-last < 0.003 {
			return
		}
		last = now
	}
}

// stop sends sig to the first process and waits up to d for the whole
// tree to end (pmacct's plugin outlives its core by its last purge);
// then it kills what is left and says so.
func (m *treeMeter) stop(sig syscall.Signal, d time.Duration) error {
	if !m.exited() {
		m.cmd.Process.Signal(sig)
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if m.exited() && m.treeGone() {
			return m.waitErr()
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.kill()
	return fmt.Errorf("%s did not end within %s after %s: killed", filepath.Base(m.cmd.Path), d, sig)
}

// treeGone says whether no process of the tree is left.
func (m *treeMeter) treeGone() bool {
	if m.cgroup != "" {
		return len(m.pids()) == 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid := range m.seen {
		if syscall.Kill(pid, 0) == nil {
			return false
		}
	}
	return true
}

// kill ends every process of the tree.
func (m *treeMeter) kill() {
	if m.cgroup != "" {
		if os.WriteFile(filepath.Join(m.cgroup, "cgroup.kill"), []byte("1"), 0) != nil {
			for _, pid := range m.pids() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	} else {
		m.mu.Lock()
		for pid := range m.seen {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		m.mu.Unlock()
	}
	if !m.exited() {
		m.cmd.Process.Kill()
	}
	<-m.done
	for i := 0; i < 100 && !m.treeGone(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// waitErr is the first process's exit error, if any. A collector that
// ends on its stop signal (pmacct) is not an error.
func (m *treeMeter) waitErr() error {
	var ee *exec.ExitError
	if errors.As(m.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() &&
			slices.Contains([]syscall.Signal{syscall.SIGTERM, syscall.SIGINT}, ws.Signal()) {
			return nil
		}
	}
	return m.err
}

// peakRSS is the tree's peak memory (see poll). (wait4's ru_maxrss would not do:
// exec records the high-water mark of the mm it replaces, which for a
// child started with CLONE_VM, as Go starts them, is bench's own.)
func (m *treeMeter) peakRSS() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// close stops the memory poller and removes the run's cgroup; the tree
// must have ended (stop or kill).
func (m *treeMeter) close() {
	select {
	case <-m.stopPoll:
	default:
		close(m.stopPoll)
	}
	<-m.pollDone
	if m.cgroup != "" {
		os.Remove(m.cgroup)
	}
}

// logTail is the end of a log file, for error messages.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// udpSockets finds the sockets of /proc/net/udp bound to port on
// 127.0.0.1 or on any address, and sums the datagrams the kernel dropped
// on them (their receive buffer was full).
func udpSockets(procNetUDP string, port int) (found bool, drops uint64) {
	want := []string{fmt.Sprintf("0100007F:%04X", port), fmt.Sprintf("00000000:%04X", port)}
	sc := bufio.NewScanner(strings.NewReader(procNetUDP))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 12 && slices.Contains(want, f[1]) {
			found = true
			if d, err := strconv.ParseUint(f[len(f)-1], 10, 64); err == nil {
				drops += d
			}
		}
	}
	return found, drops
}

// udpBound says whether a collector listens on 127.0.0.1:port.
func udpBound(procNetUDP string, port int) bool {
	found, _ := udpSockets(procNetUDP, port)
	return found
}
