package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// start runs the broker in-process and returns its announced address.
func start(t *testing.T, args ...string) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, pw, io.Discard); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no address announced: %v (%v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr = strings.TrimSpace(strings.TrimPrefix(line, "devbroker: listening on "))
	return addr, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("devbroker did not stop")
		}
	}
}

// TestPersistsAcrossRestart: records, the topic's id and partitions survive
// a stop and start on the same data dir.
func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	addr, stop := start(t, "--listen", "127.0.0.1:0", "--data-dir", dir, "--topic", "flows,other", "--partitions", "3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("flows"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte{byte(i)}}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, "flows", "other")
	if err != nil {
		t.Fatal(err)
	}
	id := details["flows"].ID
	if len(details["flows"].Partitions) != 3 || len(details["other"].Partitions) != 3 {
		t.Fatalf("topics: %+v", details)
	}
	cl.Close()
	stop()

	addr, stop = start(t, "--listen", "127.0.0.1:0", "--data-dir", dir, "--topic", "flows", "--partitions", "3")
	defer stop()
	cl, err = kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("flows"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	details, err = kadm.NewClient(cl).ListTopics(ctx, "flows")
	if err != nil {
		t.Fatal(err)
	}
	if details["flows"].ID != id {
		t.Fatalf("topic id changed across restart: %v -> %v", id, details["flows"].ID)
	}
	n := 0
	for n < 100 && ctx.Err() == nil {
		n += cl.PollFetches(ctx).NumRecords()
	}
	if n != 100 {
		t.Fatalf("%d records after restart, want 100", n)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--listen", "nope"}, {"--listen", "127.0.0.1:x"}, {"--nosuch"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
