// Package command is the scaffolding shared by the flowpipe CLIs: one way
// to build an app, read every flag from the environment too, turn signals
// into a cancelled context, and map errors to exit codes in one place.
//
// Exit codes: 0 at end of input, on SIGINT/SIGTERM after draining, or when
// the downstream pipe closed; 1 on a runtime error; 2 on bad usage.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Version is stamped at build time with -ldflags "-X ...command.Version=v1.2.3".
var Version = "dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitRuntime = 1
	ExitUsage   = 2
)

// UsageError marks a bad command line or configuration: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Streams are the process's standard streams, injected so that a whole
// CLI runs in tests without touching os.Std*.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// StdStreams returns the process's own streams.
func StdStreams() Streams { return Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }

// App describes one tool. Action runs with a context cancelled on the first
// SIGINT/SIGTERM; it must then drain, flush and return nil.
type App struct {
	Name      string
	Usage     string
	UsageText string
	// Description is shown by --help; put examples here.
	Description string
	Flags       []cli.Flag
	// Args says whether positional arguments are accepted.
	Args   bool
	Action func(ctx context.Context, c *cli.Context, s Streams) error
}

// Run runs app with args (args[0] is the program name) and returns the exit
// code. It never calls os.Exit itself, so deferred cleanups always run.
func Run(ctx context.Context, app App, args []string, s Streams) int {
	ctx, stop := signalContext(ctx, s.Err, app.Name)
	defer stop()

	envPrefix := strings.ToUpper(strings.ReplaceAll(app.Name, "-", "_")) + "_"
	flags := append(append([]cli.Flag{}, app.Flags...), LogFlags()...)
	for _, f := range flags {
		addEnvVar(f, envPrefix)
	}
	ca := &cli.App{
		Name:                   app.Name,
		Usage:                  app.Usage,
		UsageText:              app.UsageText,
		Description:            strings.TrimSpace(app.Description + exitCodesHelp),
		Version:                Version,
		Flags:                  flags,
		Reader:                 s.In,
		Writer:                 s.Out, // --help and --version only; never mixed with data
		ErrWriter:              s.Err,
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
		// urfave/cli v2 calls os.Exit inside Run unless this is set.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &UsageError{Err: err}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 && !app.Args {
				return Usagef("unexpected argument %q", c.Args().First())
			}
			return app.Action(c.Context, c, s)
		},
	}
	err := ca.RunContext(ctx, args)
	return ExitCode(err, app.Name, s.Err)
}

const exitCodesHelp = `

Every flag can also be set from the environment variable shown next to it.
Exit codes: 0 at end of input or after SIGINT/SIGTERM once everything in flight
is flushed (also when the downstream pipe closes); 1 on a runtime error; 2 on
bad usage.`

// ExitCode maps err to an exit code and prints one line for it on stderr.
func ExitCode(err error, name string, stderr io.Writer) int {
	var usage *UsageError
	switch {
	case err == nil, errors.Is(err, syscall.EPIPE), errors.Is(err, context.Canceled):
		return ExitOK
	case errors.As(err, &usage) || isFlagError(err):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitRuntime
	}
}

// isFlagError recognises urfave/cli's own parse errors, which are plain
// errors from the flag package.
func isFlagError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "flag provided but not defined") ||
		strings.HasPrefix(msg, "invalid value") ||
		strings.HasPrefix(msg, "Required flag") ||
		strings.HasPrefix(msg, "flag needs an argument")
}

// signalContext cancels on the first SIGINT/SIGTERM; a second one exits at
// once. SIGPIPE is caught so that a write to a closed pipe returns EPIPE
// (ending the tool quietly with 0) instead of killing the process.
func signalContext(parent context.Context, stderr io.Writer, name string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			fmt.Fprintf(stderr, "%s: second signal, exiting without draining\n", name)
			os.Exit(ExitRuntime)
		case <-done:
		}
	}()
	return ctx, func() {
		close(done)
		signal.Stop(sigs)
		signal.Stop(pipe)
		cancel()
	}
}

// addEnvVar gives a flag the environment variable PREFIX_FLAG_NAME unless it
// already has one.
func addEnvVar(f cli.Flag, prefix string) {
	env := []string{prefix + strings.ToUpper(strings.ReplaceAll(f.Names()[0], "-", "_"))}
	switch f := f.(type) {
	case *cli.StringFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.PathFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.BoolFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.IntFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.Int64Flag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.UintFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.Uint64Flag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.Float64Flag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.DurationFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.StringSliceFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	case *cli.GenericFlag:
		if len(f.EnvVars) == 0 {
			f.EnvVars = env
		}
	}
}
