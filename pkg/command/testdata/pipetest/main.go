// Command pipetest writes forever to stdout, to test that a closed
// downstream pipe ends a flowpipe tool quietly with exit code 0.
package main

import (
	"context"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func main() {
	app := command.App{
		Name: "pipetest",
		Action: func(ctx context.Context, _ *cli.Context, s command.Streams) error {
			line := []byte(strings.Repeat("x", 1023) + "\n")
			for ctx.Err() == nil {
				if _, err := s.Out.Write(line); err != nil {
					return err
				}
			}
			return nil
		},
	}
	os.Exit(command.Run(context.Background(), app, os.Args, command.StdStreams()))
}
