package command

import (
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/telemetry"
)

// metricsFlags are added to every tool: --metrics-listen with the tool's
// default, and --pprof.
func metricsFlags(defaultAddr string, aliases []string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-listen", Aliases: aliases, Value: defaultAddr,
			Usage: "serve Prometheus /metrics, /healthz and /__health on this `ADDRESS` (empty: off)"},
		&cli.BoolFlag{Name: "pprof", Usage: "also serve /debug/pprof/ on --metrics-listen (profiles show internals; keep that address private)"},
	}
}

// ServeMetrics serves the stage's registry on --metrics-listen, if set,
// until the Action returns, and returns the address listened on ("" when
// off). Register the tool's collectors first: a scrape may come at once.
func (s *Stage) ServeMetrics() (string, error) {
	addr := s.Flags.String("metrics-listen")
	pprof := s.Flags.Bool("pprof")
	if addr == "" {
		if pprof {
			return "", Usagef("--pprof needs --metrics-listen")
		}
		return "", nil
	}
	srv, err := telemetry.Serve(addr, s.Metrics, telemetry.ServerConfig{Pprof: pprof, Log: s.Log})
	if err != nil {
		return "", err
	}
	s.OnCleanup(func() { _ = srv.Shutdown() })
	return srv.Addr(), nil
}
