package main

import (
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/kafkaopt"
	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/subscriber/feed"
	"github.com/flowpipe/flowpipe/pkg/subscriber/radius"
)

// sessionFlags are the flags of the subscriber session sources.
func sessionFlags() []cli.Flag {
	cat := "Subscriber sessions (RADIUS accounting):"
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "radius-detail", Category: cat,
			Usage: "FreeRADIUS detail file to follow (a path or a glob, quoted: 'radacct/flowenrich/detail-*'); repeatable"},
		&cli.StringFlag{Name: "radius-listen", Category: cat,
			Usage: "receive copies of RADIUS accounting (RFC 2866) on this UDP address, e.g. :1814"},
		&cli.PathFlag{Name: "radius-secret-file", Category: cat,
			Usage: "file whose first line is the listener's shared secret"},
		&cli.StringSliceFlag{Name: "radius-allow", Category: cat,
			Usage: "network the listener accepts packets from (CIDR); repeatable; default: any"},
		&cli.StringFlag{Name: "sessions-topic", Category: cat,
			Usage: "Kafka topic of accounting records as JSON objects keyed by RADIUS attribute name (brokers: --sessions-brokers)"},
		&cli.DurationFlag{Name: "session-history", Value: subscriber.DefaultHistory, Category: cat,
			Usage: "keep stopped sessions this long, on the records' clock, for late flows"},
		&cli.PathFlag{Name: "sessions-state", Category: cat,
			Usage: "state file: sessions, NAT port blocks and detail positions, saved every minute and at exit, loaded at start"},
		&cli.DurationFlag{Name: "sessions-catchup-timeout", Value: feed.DefaultCatchUpTimeout, Category: cat,
			Usage: "at start, wait at most this long for the Kafka topic's backlog before flows pass (0: do not wait)"},
	}
	return append(flags, kafkaopt.Flags("sessions-")...)
}

// sessionsConfig reads the session flags; bad combinations are usage
// errors.
func sessionsConfig(c *cli.Context, log *slog.Logger) (feed.Config, error) {
	cfg := feed.Config{
		Listen:         c.String("radius-listen"),
		Topic:          c.String("sessions-topic"),
		History:        c.Duration("session-history"),
		StatePath:      c.Path("sessions-state"),
		CatchUpTimeout: c.Duration("sessions-catchup-timeout"),
		Log:            log,
	}
	for _, p := range c.StringSlice("radius-detail") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.DetailPatterns = append(cfg.DetailPatterns, p)
		}
	}
	for _, a := range c.StringSlice("radius-allow") {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				if ip, aerr := netip.ParseAddr(s); aerr == nil {
					p = netip.PrefixFrom(ip, ip.BitLen())
				} else {
					return cfg, command.Usagef("--radius-allow %q: want a CIDR", s)
				}
			}
			cfg.Allow = append(cfg.Allow, p.Masked())
		}
	}
	if c.Duration("session-history") <= 0 {
		return cfg, command.Usagef("--session-history: must be positive")
	}
	if c.Duration("sessions-catchup-timeout") < 0 {
		return cfg, command.Usagef("--sessions-catchup-timeout: must not be negative")
	}
	secretFile := c.Path("radius-secret-file")
	switch {
	case cfg.Listen != "" && secretFile == "":
		return cfg, command.Usagef("--radius-listen needs --radius-secret-file")
	case cfg.Listen == "" && (secretFile != "" || len(cfg.Allow) > 0):
		return cfg, command.Usagef("--radius-secret-file and --radius-allow need --radius-listen")
	case cfg.StatePath != "" && !cfg.Enabled():
		return cfg, command.Usagef("--sessions-state needs a session source (--radius-detail, --radius-listen or --sessions-topic)")
	}
	if secretFile != "" {
		secret, err := radius.ReadSecret(secretFile)
		if err != nil {
			return cfg, err
		}
		cfg.Secret = secret
	}
	if cfg.Topic != "" {
		kcfg, err := kafkaopt.FromCLI(c, "sessions-")
		if err != nil {
			return cfg, err
		}
		if kcfg.ClientID == "" {
			kcfg.ClientID = "flowenrich"
		}
		opts, err := kcfg.Opts()
		if err != nil {
			return cfg, err
		}
		cfg.KafkaOpts = append(opts, kafkaopt.WithLogger(log))
	}
	if cfg.CatchUpTimeout == 0 {
		cfg.CatchUpTimeout = time.Nanosecond // 0 means: do not wait
	}
	return cfg, nil
}
