package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
)

func newApp() command.App {
	return command.App{
		Name:  "flowenrich",
		Usage: "add ASN, AS name, country and CIDR context to a flow stream",
		Flags: []cli.Flag{command.MetricsFlag("")},
		Action: func(ctx context.Context, c *cli.Context, s command.Streams) error {
			return errors.New("not built yet")
		},
	}
}
