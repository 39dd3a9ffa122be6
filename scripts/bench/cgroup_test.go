package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCgroup2Mount(t *testing.T) {
	// A hybrid system: v1 controllers, the v2 hierarchy at unified.
	hybrid := `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct`
	if got := cgroup2Mount(hybrid); got != "/sys/fs/cgroup/unified" {
		t.Errorf("hybrid: %q", got)
	}
	unified := `30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot`
	if got := cgroup2Mount(unified); got != "/sys/fs/cgroup" {
		t.Errorf("unified: %q", got)
	}
	// A bind mount of a sub-tree is no use for our own path; octal escapes.
	other := `40 25 0:26 /foo /mnt/sub rw - cgroup2 cgroup2 rw
41 25 0:26 / /mnt/with\040space rw - cgroup2 cgroup2 rw`
	if got := cgroup2Mount(other); got != "/mnt/with space" {
		t.Errorf("escaped: %q", got)
	}
	if got := cgroup2Mount(`33 31 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu`); got != "" {
		t.Errorf("v1 only: %q", got)
	}
}

func TestCgroup2Path(t *testing.T) {
	p, ok := cgroup2Path("9:name=systemd:/\n4:memory:/process_api/6e87\n0::/\n")
	if !ok || p != "/" {
		t.Errorf("hybrid: %q %v", p, ok)
	}
	p, ok = cgroup2Path("0::/user.slice/user-1000.slice/session-2.scope\n")
	if !ok || p != "/user.slice/user-1000.slice/session-2.scope" {
		t.Errorf("unified: %q %v", p, ok)
	}
	if _, ok := cgroup2Path("4:memory:/x\n"); ok {
		t.Error("v1 only: found a v2 path")
	}
}

func TestParseCPUStat(t *testing.T) {
	v, err := parseCPUStat("usage_usec 817540\nuser_usec 817540\nsystem_usec 0\nnice_usec 0\n")
	if err != nil || v != 817540 {
		t.Errorf("got %d, %v", v, err)
	}
	if _, err := parseCPUStat("user_usec 1\n"); err == nil {
		t.Error("no usage_usec: no error")
	}
}

func TestParsePids(t *testing.T) {
	got := parsePids("1480\n1482\n\n2001\n")
	if len(got) != 3 || got[0] != 1480 || got[2] != 2001 {
		t.Errorf("got %v", got)
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "1482 (nfacctd: Print Plugin (x)) S 1480 1480 1 0 -1 4194624 5000 0 0 0 120 30 7 3 20 0 1 0 12345 0 0"
	st, err := parseProcStat(line)
	if err != nil || st.PPID != 1480 || st.CPU != 160 {
		t.Errorf("got %+v, %v", st, err)
	}
	if _, err := parseProcStat("1 (x) S 0"); err == nil {
		t.Error("short line: no error")
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tnfcapd\nVmPeak:\t   20000 kB\nVmHWM:\t    7168 kB\nVmRSS:\t    7000 kB\n"
	if got := parseVmHWM(status); got != 7168<<10 {
		t.Errorf("got %d", got)
	}
	if got := parseVmHWM("Name:\tkthreadd\n"); got != 0 {
		t.Errorf("kernel thread: %d", got)
	}
}

func TestUDPSockets(t *testing.T) {
	// Two SO_REUSEPORT sockets on 0x9A83, one on any address, and the
	// sender's connected socket whose remote port is 0x9A83.
	udp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  481: 0100007F:9A83 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123456 2 0000000000000000 17
  481: 0100007F:9A83 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123458 2 0000000000000000 3
  482: 00000000:0801 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123457 2 0000000000000000 0
 9919: 0100007F:E9BE 0100007F:9A83 01 00000000:00000000 00:00000000 00000000     0        0 102617 2 000000005598f498 5
`
	for port, want := range map[int]bool{0x9A83: true, 2049: true, 2055: false, 0x839A: false} {
		if got := udpBound(udp, port); got != want {
			t.Errorf("udpBound(%d) = %v, want %v", port, got, want)
		}
	}
	if found, drops := udpSockets(udp, 0x9A83); !found || drops != 20 {
		t.Errorf("udpSockets = %v, %d; want true, 20", found, drops)
	}
}

func TestParsePss(t *testing.T) {
	rollup := "559270863000-7ffd40924000 ---p 00000000 00:00 0  [rollup]\nRss:   1672 kB\nPss:    223 kB\nPss_Dirty:  112 kB\n"
	if got := parsePss(rollup); got != 223<<10 {
		t.Errorf("got %d", got)
	}
}

// TestTreeMeter measures a small shell tree, in a cgroup where this
// machine allows one and from /proc: the CPU of a child that has ended
// counts, and a tree that outlives its first process is waited for, then
// killed. (No collector: /bin/sh only.)
func TestTreeMeter(t *testing.T) {
	parents := map[string]cgroupParent{"proc": {why: "test"}}
	if cg := newCgroupParent(); cg.dir != "" {
		defer cg.close()
		parents["cgroup"] = cg
	} else {
		t.Logf("no cgroup v2 here (%s): /proc only", cg.why)
	}
	for name, parent := range parents {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// A child that burns CPU and is reaped before the shell ends.
			m, err := startMetered(parent, "busy", dir+"/busy.log", "/bin/sh", "-c",
				`(i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done); sleep 0.3`)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.stop(0, 30*time.Second); err != nil { // signal 0: let it end by itself
				t.Fatal(err)
			}
			cpu, err := m.cpu()
			m.close()
			if err != nil || cpu < 0.005 {
				t.Errorf("cpu = %v, %v; want the busy child's CPU", cpu, err)
			}
			if m.peakRSS() == 0 {
				t.Error("no peak memory seen")
			}
			if wantCgroup := name == "cgroup"; (m.method == "cgroup v2 cpu.stat") != wantCgroup {
				t.Errorf("method %q", m.method)
			}

			// A grandchild that ignores the end of its parent.
			m, err = startMetered(parent, "linger", dir+"/linger.log", "/bin/sh", "-c", `sleep 30 & echo started; wait`)
			if err != nil {
				t.Fatal(err)
			}
			defer m.close()
			for deadline := time.Now().Add(10 * time.Second); len(m.pids()) < 2 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(150 * time.Millisecond) // one memory poll sees the tree
			err = m.stop(syscall.SIGTERM, 500*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), "did not end") {
				t.Errorf("stop: err = %v, want a tree that did not end", err)
			}
			if !m.treeGone() {
				t.Error("the tree is still there after kill")
			}
		})
	}
}
