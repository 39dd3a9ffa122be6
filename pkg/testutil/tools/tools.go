// Package tools finds the external programs tests run (softflowd, tshark,
// kcat, promtool, ...). A missing program skips the test, or fails it when
// the CI environment variable is set: CI installs every one (.ci/run).
package tools

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Require returns the path of program name, found on PATH; when it is
// missing, it skips t, or fails it under CI.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, ok := Optional(t, name)
	if !ok {
		t.Skipf("%s not installed", name)
	}
	return path
}

// Optional returns the path of program name and true. When it is missing
// it returns false, so that the test skips only the part that needs it,
// or, under CI, fails t.
func Optional(t testing.TB, name string) (string, bool) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path, true
	}
	if InCI() {
		t.Fatalf("%s is required in CI: %v", name, err)
	}
	return "", false
}

// InCI reports whether the tests run in CI, where nothing may be skipped
// for a missing tool.
func InCI() bool { return os.Getenv("CI") != "" }

var (
	buildMu sync.Mutex
	built   = map[string]string{} // absolute package directory -> binary
)

// Build builds the main package in dir (relative to the test's working
// directory, "." for the package under test) once per test process, and
// returns the binary's path. Tests of signals, pipes and exit codes run the
// real binary. It skips under -short.
func Build(t testing.TB, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[abs]; ok {
		return bin
	}
	out, err := os.MkdirTemp("", "flowpipe-build")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(out, filepath.Base(abs))
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = abs
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, b)
	}
	built[abs] = bin
	return bin
}

// Output collects what a program under test writes (its stderr, say),
// safe to read from the test while the program writes.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// Bytes is a copy of what was written so far.
func (o *Output) Bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.b.Bytes())
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Count is how many times s was written so far.
func (o *Output) Count(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Count(o.b.Bytes(), []byte(s))
}

// WaitFor waits until s was written n times, and fails t with the whole
// output when that takes longer than timeout.
func (o *Output) WaitFor(t testing.TB, s string, n int, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); o.Count(s) < n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not written %d times in %s:\n%s", s, n, timeout, o.String())
		}
	}
}

// WaitExit waits for the started cmd to exit and returns its exit code; if
// it has not exited within timeout, it kills it and fails t.
func WaitExit(t testing.TB, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %s", filepath.Base(cmd.Path), timeout)
		return -1
	}
}

// Process is a program started by Start: stdin and stdout are pipes the
// test writes and reads, stderr is collected in Log.
type Process struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	Log    *Output
}

// Start starts bin with args, as a stage of a pipeline; it is killed when
// the test ends if it is still running.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Log: &Output{}}
	var err error
	if p.Stdin, err = p.Cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if p.Stdout, err = p.Cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stderr = p.Log
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Cmd.ProcessState == nil {
			_ = p.Cmd.Process.Kill()
			_ = p.Cmd.Wait()
		}
	})
	return p
}
