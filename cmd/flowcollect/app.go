package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func newApp() command.App {
	return command.App{
		Name:  "flowcollect",
		Usage: "receive NetFlow v5/v9, IPFIX and sFlow v5 and write flow records to stdout",
		Flags: []cli.Flag{command.MetricsFlag(":8080")},
		Action: func(ctx context.Context, c *cli.Context, s command.Streams) error {
			return errors.New("not built yet")
		},
	}
}
