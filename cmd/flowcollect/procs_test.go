package main

import (
	"context"
	"log/slog"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/collect"
	"github.com/flowpipe/flowpipe/pkg/command"
)

// TestSizeProcs: the process gets as many Ps as goroutines decode, never
// more than it had, and GOMAXPROCS from the environment is left alone.
func TestSizeProcs(t *testing.T) {
	procs := 2
	set := func(n int) int {
		old := procs
		if n > 0 {
			procs = n
		}
		return old
	}
	var sized []int
	action := func(ctx context.Context, _ *command.Stage) error {
		for _, cfg := range []collect.Config{
			{Listens: []collect.Listen{{Count: 1}}},
			{Listens: []collect.Listen{{Count: 4}}},
		} {
			procs = 2
			sizeProcs(ctx, cfg, slog.New(slog.DiscardHandler))
			sized = append(sized, procs)
		}
		return nil
	}
	if err := withProcs(action, false, set)(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(sized) != 2 || sized[0] != 1 || sized[1] != 2 {
		t.Errorf("GOMAXPROCS sized to %v, want [1 2] (one socket; four sockets on 2 CPUs)", sized)
	}
	sized = nil
	if err := withProcs(action, true, set)(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(sized) != 2 || sized[0] != 2 || sized[1] != 2 {
		t.Errorf("with GOMAXPROCS in the environment, sized to %v, want it untouched", sized)
	}
}
