package command

import (
	"io"
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"
)

// logFlags are added to every tool.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json (logs go to stderr)"},
	}
}

// newLogger builds the process's one logger from the log flags. Library
// packages never log on their own; they return errors, or take the logger
// they are given.
func newLogger(c *cli.Context, stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, Usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.String("log-format")) {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	default:
		return nil, Usagef("--log-format: want text or json, got %q", c.String("log-format"))
	}
}

// Discard is a logger that drops everything, for tests.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
