package interop

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// Goflow2Module is the goflow2 module the tests compare with.
const Goflow2Module = "github.com/netsampler/goflow2/v2@v2.2.6"

// Goflow2Dir returns the directory of the goflow2 v2.2.6 module (its own
// files: cmd/goflow2/mapping.yaml, docs), fetched through the Go module
// proxy when it is not in the module cache yet. Without it the test is
// skipped, or failed under CI.
func Goflow2Dir(t testing.TB) string {
	t.Helper()
	goflow2Once.Do(func() {
		out, err := exec.Command("go", "mod", "download", "-json", Goflow2Module).Output()
		if err != nil {
			goflow2Err = fmt.Errorf("go mod download %s: %v", Goflow2Module, err)
			return
		}
		const key = `"Dir": "`
		i := bytes.Index(out, []byte(key))
		if i < 0 {
			goflow2Err = fmt.Errorf("go mod download %s: no Dir in %s", Goflow2Module, out)
			return
		}
		rest := out[i+len(key):]
		goflow2Dir = string(rest[:bytes.IndexByte(rest, '"')])
	})
	if goflow2Err != nil {
		if tools.InCI() {
			t.Fatal(goflow2Err)
		}
		t.Skip(goflow2Err)
	}
	return goflow2Dir
}

var (
	goflow2Once sync.Once
	goflow2Dir  string
	goflow2Err  error

	goflow2BinOnce sync.Once
	goflow2Bin     string
	goflow2BinErr  error
)

// Goflow2Binary builds goflow2 v2.2.6 from its module (go install into a
// temporary GOBIN, once per test process) and returns its path. It skips
// under -short, and when the module cannot be had (fails under CI).
func Goflow2Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds goflow2")
	}
	Goflow2Dir(t)
	goflow2BinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowpipe-goflow2")
		if err != nil {
			goflow2BinErr = err
			return
		}
		cmd := exec.Command("go", "install", "github.com/netsampler/goflow2/v2/cmd/goflow2@v2.2.6")
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			goflow2BinErr = fmt.Errorf("go install goflow2: %v\n%s", err, out)
			return
		}
		goflow2Bin = filepath.Join(dir, "goflow2")
	})
	if goflow2BinErr != nil {
		if tools.InCI() {
			t.Fatal(goflow2BinErr)
		}
		t.Skip(goflow2BinErr)
	}
	return goflow2Bin
}

// Goflow2 is a running goflow2 process writing to a file.
type Goflow2 struct {
	Cmd    *exec.Cmd
	Port   int    // UDP port it listens on
	Output string // file it writes
	Log    *tools.Output
}

// StartGoflow2 starts goflow2 listening on a free loopback UDP port with
// scheme ("netflow" or "sflow"), one socket and one worker (so that its
// records come out in the order of the datagrams, and templates are known
// before the data that follows them), writing to a file in a temp dir, with
// args added (-format=json, -mapping=..., -transport.file.sep=...). It
// returns once goflow2 is up; the test's cleanup stops it.
func StartGoflow2(t testing.TB, scheme string, args ...string) *Goflow2 {
	t.Helper()
	bin := Goflow2Binary(t)
	port := freeUDPPort(t)
	out := filepath.Join(t.TempDir(), "goflow2.out")
	all := append([]string{"-listen", fmt.Sprintf("%s://127.0.0.1:%d?count=1&workers=1", scheme, port), "-addr", "",
		"-transport", "file", "-transport.file", out}, args...)
	cmd := exec.Command(bin, all...)
	g := &Goflow2{Cmd: cmd, Port: port, Output: out, Log: &tools.Output{}}
	cmd.Stdout, cmd.Stderr = g.Log, g.Log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(t) })
	g.Log.WaitFor(t, "starting collection", 1, 20*time.Second)
	// goflow2 logs that before it binds its socket: wait until the port
	// shows in /proc/net/udp (a datagram sent earlier would be lost).
	// Binding it to find out could make goflow2's own bind fail.
	hexPort := fmt.Sprintf(":%04X ", port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile("/proc/net/udp")
		if err != nil { // not Linux: give it a moment
			time.Sleep(200 * time.Millisecond)
			break
		}
		if bytes.Contains(b, []byte(hexPort)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goflow2 did not bind port %d: %s", port, g.Log.String())
		}
	}
	return g
}

// Stop ends goflow2 (SIGTERM: it flushes and closes its file) and waits.
func (g *Goflow2) Stop(t testing.TB) {
	t.Helper()
	if g.Cmd.ProcessState != nil {
		return
	}
	_ = g.Cmd.Process.Signal(os.Interrupt)
	tools.WaitExit(t, g.Cmd, 20*time.Second)
}

// WaitRecords waits until goflow2's file holds n records (lines for
// JSON, counted by the given function otherwise), failing after timeout.
func (g *Goflow2) WaitRecords(t testing.TB, count func([]byte) int, n int, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(g.Output)
		if count(b) >= n {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("goflow2 wrote %d records, want %d; its log:\n%s", count(b), n, tail(g.Log.String()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CountLines counts newline-terminated lines.
func CountLines(b []byte) int { return bytes.Count(b, []byte{'\n'}) }

// Send sends datagrams to 127.0.0.1:port, pausing a little every few so
// that a receiver's socket buffer never overflows, and after the first
// (the templates, where there are some).
func Send(t testing.TB, port int, datagrams [][]byte) {
	t.Helper()
	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, d := range datagrams {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
		if i%16 == 15 || i == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
