//go:build unix

package command

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// stagetest is testdata/stagetest, built.
func stagetest(t *testing.T) string { return tools.Build(t, "testdata/stagetest") }

// TestBrokenPipeEndsQuietly runs a real process whose stdout is a closed
// pipe: the write fails with EPIPE and the tool must exit 0 silently
// instead of dying of SIGPIPE.
func TestBrokenPipeEndsQuietly(t *testing.T) {
	bin := stagetest(t)
	errFile := t.TempDir() + "/stderr"
	cmd := exec.Command("bash", "-c", "set -o pipefail; "+bin+" --log-level warn 2>"+errFile+" | head -c 10 >/dev/null; echo rc=$?; cat "+errFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "rc=0" {
		t.Fatalf("want exit 0 and no stderr, got %q", out)
	}
}

// TestSignalsOnAStage drives a real process that copies its stdin (a pipe
// that stays open) to stdout: SIGHUPs run every reload hook and never end
// it, data keeps flowing between them, and SIGTERM interrupts the read that
// waits for more input: exit 0, with every byte written before it out.
func TestSignalsOnAStage(t *testing.T) {
	bin := stagetest(t)
	p := tools.Start(t, bin, "--mode", "cat", "--hooks", "2")
	cmd, stdin, stdout, logs := p.Cmd, p.Stdin, p.Stdout, p.Log
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, stdout); close(copied) }()
	logs.WaitFor(t, "msg=ready", 1, 10*time.Second)

	var sent bytes.Buffer
	w := bufio.NewWriter(io.MultiWriter(stdin, &sent))
	const hups = 5
	for i := range hups {
		for j := range 2000 {
			writeLine(w, i, j)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.WaitFor(t, "reload hook ran", 2*(i+1), 10*time.Second)
	}
	if n := logs.Count("hook=0"); n != hups {
		t.Fatalf("hook 0 ran %d times for %d SIGHUPs", n, hups)
	}
	// stdin stays open: the process waits in a read when SIGTERM comes.
	time.Sleep(50 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-copied
	if code := tools.WaitExit(t, cmd, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, logs.String())
	}
	if !bytes.Equal(out.Bytes(), sent.Bytes()) {
		t.Fatalf("copied %d bytes of %d", out.Len(), sent.Len())
	}
	stdin.Close()
}

func writeLine(w *bufio.Writer, i, j int) {
	w.WriteString("line ")
	w.WriteString(strings.Repeat("abcdefgh", 3))
	w.WriteByte(byte('0' + i))
	w.WriteByte(byte('0' + j%10))
	w.WriteByte('\n')
}

// TestSIGHUPWithoutHooks: a tool that registered nothing to reload logs
// the SIGHUP and goes on; then the second SIGTERM of a tool that does not
// drain exits at once with 1.
func TestSIGHUPWithoutHooks(t *testing.T) {
	bin := stagetest(t)
	p := tools.Start(t, bin, "--mode", "stuck")
	cmd, logs := p.Cmd, p.Log
	logs.WaitFor(t, "msg=ready", 1, 10*time.Second)
	for i := range 3 {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.WaitFor(t, "nothing to reload", i+1, 10*time.Second)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logs.WaitFor(t, "draining", 1, 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil { // while draining too
		t.Fatal(err)
	}
	logs.WaitFor(t, "nothing to reload", 4, 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := tools.WaitExit(t, cmd, 10*time.Second); code != ExitRuntime {
		t.Fatalf("exit %d after a second SIGTERM, want %d:\n%s", code, ExitRuntime, logs.String())
	}
	if !strings.Contains(logs.String(), "stagetest: second signal, exiting without draining") {
		t.Fatalf("no explanation:\n%s", logs.String())
	}
}
