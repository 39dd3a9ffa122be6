package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func newApp() command.App {
	return command.App{
		Name:  "flowexport",
		Usage: "consume flows from Kafka and export per-AS-pair Prometheus counters",
		Flags: []cli.Flag{command.MetricsFlag(":9590")},
		Action: func(ctx context.Context, c *cli.Context, s command.Streams) error {
			return errors.New("not built yet")
		},
	}
}
