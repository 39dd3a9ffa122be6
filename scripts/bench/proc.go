package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// usage is what one process cost: CPU seconds (user+system, all threads)
// and its peak resident set (VmHWM, bytes).
type usage struct {
	CPU     float64
	PeakRSS uint64
}

// liveUsage reads a running process's usage from /proc.
func liveUsage(pid int) (usage, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return usage{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return usage{}, err
	}
	status, err := p.NewStatus()
	if err != nil {
		return usage{}, err
	}
	return usage{CPU: st.CPUTime(), PeakRSS: status.VmHWM}, nil
}

// exitedUsage is the usage of a waited-for process, from wait4's rusage.
func exitedUsage(ps *os.ProcessState) usage {
	u := usage{CPU: (ps.UserTime() + ps.SystemTime()).Seconds()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.PeakRSS = uint64(ru.Maxrss) * 1024 // KiB on Linux
	}
	return u
}

// proc is a started child process with its stderr kept in a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, valid once done is closed
}

// start runs bin with args; stdin and stdout may be nil (/dev/null). Its
// stderr goes to logDir/name.log, so that a failure can be shown.
func start(logDir, name string, stdin io.Reader, stdout io.Writer, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	// Nothing outlives bench, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(logDir + "/" + name + ".log")
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to end by itself, then kills it.
func (p *proc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not end within %s: killed", p.name, d)
	}
}

// stop sends SIGTERM and waits up to d.
func (p *proc) stop(d time.Duration) error {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	return p.wait(d)
}

func (p *proc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w (log: %s)", p.name, p.err, p.logTail())
	}
	return nil
}

func (p *proc) usage() usage { return exitedUsage(p.cmd.ProcessState) }

// logTail is the end of the process's stderr, for error messages.
func (p *proc) logTail() string {
	f, ok := p.cmd.Stderr.(*os.File)
	if !ok {
		return ""
	}
	b, _ := os.ReadFile(f.Name())
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// metric sums every sample of a counter or gauge in an exposition.
func metric(families map[string]*dto.MetricFamily, name string) float64 {
	f, ok := families[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// scrape fetches and parses http://addr/metrics.
func scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: %s", addr, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bufio.NewReader(resp.Body))
}

// waitHTTP polls addr's /metrics until it answers or d passes.
func waitHTTP(ctx context.Context, p *proc, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.exited() {
			return fmt.Errorf("%s ended before serving metrics: %v", p.name, p.exitErr())
		}
		if _, err := scrape(ctx, addr); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: no /metrics on %s after %s", p.name, addr, d)
}

// freePort returns a port that was free on loopback a moment ago.
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freeAddr() (string, error) {
	port, err := freePort("tcp")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}
