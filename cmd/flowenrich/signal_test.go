package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDrains runs the built binary on a pipe that stays open: the
// records sent come out while the input is idle (flush before a blocking
// read), and SIGTERM then ends it with exit 0 and a closed stdout.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	f := newFixture(t)
	bin := filepath.Join(t.TempDir(), "flowenrich")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, f.args("--format", "json")[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	const n = 100
	go func() {
		w := bufio.NewWriter(stdin)
		for i := range n {
			fmt.Fprintf(w, `{"src_addr":"192.0.2.%d","dst_addr":"10.0.0.1","sequence_num":%d}`+"\n", i%250, i)
		}
		w.Flush() // and leave stdin open: the input is idle, not ended
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(20 * time.Second)
	for i := range n {
		select {
		case l := <-lines:
			if !strings.Contains(l, fmt.Sprintf(`"sequence_num":%d,`, i)) || !strings.Contains(l, `"src_as":64500`) {
				t.Fatalf("record %d: %s", i, l)
			}
		case <-timeout:
			t.Fatalf("only %d of %d records out while the input was idle; stderr: %s", i, n, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected output after SIGTERM: %s", l)
		}
	case <-timeout:
		t.Fatal("stdout not closed after SIGTERM")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v; stderr: %s", err, stderr.String())
	}
}
