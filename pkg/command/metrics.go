package command

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/telemetry"
)

// MetricsFlag is the --metrics-listen flag; an empty default means off.
func MetricsFlag(defaultAddr string) cli.Flag {
	usage := "serve Prometheus /metrics on this address (empty: off)"
	return &cli.StringFlag{Name: "metrics-listen", Value: defaultAddr, Usage: usage}
}

// StartMetrics serves reg on --metrics-listen when it is set. The returned
// stop function is safe to call when nothing was started.
func StartMetrics(c *cli.Context, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	addr := c.String("metrics-listen")
	if addr == "" {
		return func() {}, nil
	}
	srv, err := telemetry.Serve(addr, reg, log)
	if err != nil {
		return nil, err
	}
	return func() { _ = srv.Shutdown() }, nil
}
