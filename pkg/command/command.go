// Package command is the skeleton every flowpipe tool stands on, so that a
// tool's main package only declares its flags and wires its library:
//
//   - flags: urfave/cli, each flag also read from <TOOL>_<FLAG>, flags
//     accepted before and after positional arguments (GNU style);
//   - logs: --log-level and --log-format, one log/slog logger on stderr,
//     and telemetry.Throttle for lines that repeat;
//   - metrics: one registry per process, served on --metrics-listen with
//     /healthz and /__health, /debug/pprof/ only with --pprof;
//   - signals: the first SIGINT or SIGTERM cancels the context (the tool
//     drains, flushes and returns), a second one exits at once; SIGHUP
//     runs the tool's reload hooks and never ends a tool; SIGPIPE turns
//     into EPIPE on write, which ends the tool quietly;
//   - standard input that a signal can interrupt (Input), in a pipe grown
//     to PipeSize;
//   - exit codes decided in one place (ExitCode).
//
// Exit codes: 0 at end of input, on SIGINT/SIGTERM after draining, or when
// the downstream pipe closed; 1 on a runtime error; 2 on bad usage.
package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/flowpipe/flowpipe/pkg/telemetry"
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

// App describes one tool.
type App struct {
	Name      string
	Usage     string
	UsageText string
	// Description is shown by --help; put examples here.
	Description string
	// Flags are the tool's own; Run adds the log and metrics flags.
	Flags []cli.Flag
	// Args says whether positional arguments are accepted.
	Args bool
	// MetricsListen is the default of --metrics-listen; empty leaves the
	// metrics server off unless asked for.
	MetricsListen string
	// MetricsAliases are other names of --metrics-listen (a peer tool's).
	MetricsAliases []string
	// Action runs the tool with a context cancelled on the first SIGINT or
	// SIGTERM; it must then drain, flush and return nil.
	Action func(ctx context.Context, st *Stage) error
}

// Stage is one run of a tool, as Run hands it to the Action: the parsed
// flags, the streams, the logger, the metrics registry, and the hooks
// (reload, cleanup) that Run drives.
type Stage struct {
	Name string
	// Flags are the parsed command line.
	Flags *cli.Context
	Streams
	// Log is the process's one logger, on stderr as the log flags say.
	Log *slog.Logger
	// Metrics is the tool's registry, with the Go and process collectors;
	// ServeMetrics serves it.
	Metrics *prometheus.Registry

	sig      *signals
	mu       sync.Mutex
	cleanups []func()
}

// OnCleanup registers fn to run when the Action has returned, in reverse
// order of registration.
func (s *Stage) OnCleanup(fn func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, fn)
	s.mu.Unlock()
}

// OnReload registers fn to run on every SIGHUP, after the hooks registered
// before it. Hooks run one at a time on the signal goroutine, never
// concurrently with each other: a hook that takes long should hand the
// work to the goroutine that owns it. A SIGHUP with no hook is logged and
// ignored.
func (s *Stage) OnReload(fn func()) { s.sig.onReload(fn) }

func (s *Stage) cleanup() {
	s.mu.Lock()
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// Run runs app with args (args[0] is the program name) and returns the exit
// code. It never calls os.Exit itself (but for a second SIGINT/SIGTERM),
// so deferred cleanups always run.
func Run(ctx context.Context, app App, args []string, s Streams) int {
	sig := newSignals(s.Err, app.Name)
	ctx, stop := sig.start(ctx)
	defer stop()

	envPrefix := strings.ToUpper(strings.ReplaceAll(app.Name, "-", "_")) + "_"
	flags := append(append(append([]cli.Flag{}, app.Flags...), metricsFlags(app.MetricsListen, app.MetricsAliases)...), logFlags()...)
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
			log, err := newLogger(c, s.Err)
			if err != nil {
				return err
			}
			st := &Stage{Name: app.Name, Flags: c, Streams: s, Log: log, Metrics: telemetry.NewRegistry(), sig: sig}
			sig.setLog(log)
			defer st.cleanup()
			return app.Action(c.Context, st)
		},
	}
	args, err := interspersed(args, flags)
	if err == nil {
		err = ca.RunContext(ctx, args)
	}
	return ExitCode(err, app.Name, s.Err)
}

const exitCodesHelp = `

Every flag can also be set from the environment variable shown next to it,
and flags may come before or after arguments ("--" ends the flags).
Signals: SIGINT/SIGTERM drain and flush, then exit (a second one exits at
once); SIGHUP reloads what the tool can reload and never stops it.
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

// addEnvVar gives a flag the environment variable PREFIX_FLAG_NAME unless it
// already has one.
func addEnvVar(f cli.Flag, prefix string) {
	env := []string{prefix + strings.ToUpper(strings.ReplaceAll(f.Names()[0], "-", "_"))}
	set := func(vars *[]string) {
		if len(*vars) == 0 {
			*vars = env
		}
	}
	switch f := f.(type) {
	case *cli.StringFlag:
		set(&f.EnvVars)
	case *cli.PathFlag:
		set(&f.EnvVars)
	case *cli.BoolFlag:
		set(&f.EnvVars)
	case *cli.IntFlag:
		set(&f.EnvVars)
	case *cli.Int64Flag:
		set(&f.EnvVars)
	case *cli.UintFlag:
		set(&f.EnvVars)
	case *cli.Uint64Flag:
		set(&f.EnvVars)
	case *cli.Float64Flag:
		set(&f.EnvVars)
	case *cli.DurationFlag:
		set(&f.EnvVars)
	case *cli.StringSliceFlag:
		set(&f.EnvVars)
	case *cli.GenericFlag:
		set(&f.EnvVars)
	}
}
