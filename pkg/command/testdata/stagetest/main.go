// Command stagetest is a tool built on pkg/command, for the package's tests
// of real signals and pipes:
//
//	--mode write   writes lines to stdout until the context ends or a write fails
//	--mode cat     copies stdin to stdout through Stage.Input, flushing each read
//	--mode stuck   ignores the context: only a second signal ends it
//
// --hooks N registers N reload hooks, each logging "reload hook ran".
package main

import (
	"context"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func main() {
	app := command.App{
		Name: "stagetest",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mode", Value: "write"},
			&cli.IntFlag{Name: "hooks"},
		},
		Action: run,
	}
	os.Exit(command.Run(context.Background(), app, os.Args, command.StdStreams()))
}

func run(ctx context.Context, st *command.Stage) error {
	for i := range st.Flags.Int("hooks") {
		st.OnReload(func() { st.Log.Info("reload hook ran", "hook", i) })
	}
	st.Log.Info("ready")
	switch st.Flags.String("mode") {
	case "write":
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for ctx.Err() == nil {
			if _, err := st.Out.Write(line); err != nil {
				return err
			}
		}
	case "cat":
		in := st.Input(ctx)
		n, err := io.Copy(st.Out, in)
		st.Log.Info("copied", "bytes", n)
		if ctx.Err() != nil {
			return nil
		}
		return err
	case "stuck":
		<-ctx.Done()
		select {} // a second signal exits
	}
	return nil
}
