package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// TestSIGTERMDrains runs the built binary on a pipe that stays open: the
// records sent come out while the input is idle (flush before a blocking
// read), and SIGTERM then ends it with exit 0 and a closed stdout.
func TestSIGTERMDrains(t *testing.T) {
	bin := tools.Build(t, ".")
	f := newFixture(t)
	p := tools.Start(t, bin, f.args("--format", "json")[1:]...)
	cmd, stdin, stdout, stderr := p.Cmd, p.Stdin, p.Stdout, p.Log
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

// TestSIGHUPUnderLoad streams records through the built binary while
// SIGHUP comes between every chunk (--reload-interval 0: SIGHUP is the
// only reload), the networks file changing halfway: the process lives
// through every SIGHUP, each reloads the files, records after the change
// carry the new network name, and every record read is written, in order.
func TestSIGHUPUnderLoad(t *testing.T) {
	bin := tools.Build(t, ".")
	f := newFixture(t)
	p := tools.Start(t, bin, f.args("--format", "json", "--reload-interval", "0")[1:]...)
	cmd, stdin, stdout, logs := p.Cmd, p.Stdin, p.Stdout, p.Log
	var lines []string
	read := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		close(read)
	}()
	const chunks, perChunk = 20, 5000
	w := bufio.NewWriterSize(stdin, 1<<16)
	for c := range chunks {
		for i := c * perChunk; i < (c+1)*perChunk; i++ {
			fmt.Fprintf(w, `{"src_addr":"10.1.%d.%d","dst_addr":"192.0.2.1","sequence_num":%d}`+"\n", i>>8&255, i&255, i)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if c == chunks/2 {
			if err := os.WriteFile(f.nets, []byte("networks:\n  - name: renamed\n    cidrs: [10.0.0.0/8]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.WaitFor(t, "msg=reloaded", c+1, 20*time.Second)
	}
	stdin.Close()
	<-read
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	if len(lines) != chunks*perChunk {
		t.Fatalf("%d records out of %d in", len(lines), chunks*perChunk)
	}
	for i, l := range lines {
		if !strings.Contains(l, fmt.Sprintf(`"sequence_num":%d,`, i)) {
			t.Fatalf("record %d out of order: %s", i, l)
		}
	}
	if first, last := lines[0], lines[len(lines)-1]; !strings.Contains(first, `"src_net_name":"lan"`) || !strings.Contains(last, `"src_net_name":"renamed"`) {
		t.Fatalf("reload not applied:\nfirst %s\nlast  %s", first, last)
	}
}
