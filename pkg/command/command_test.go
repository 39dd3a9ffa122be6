package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func testApp(action func(ctx context.Context, c *cli.Context, s Streams) error) App {
	return App{
		Name:  "flowtest",
		Usage: "test tool",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen-addr", Value: ":1"},
			&cli.IntFlag{Name: "workers", Value: 1},
			&cli.DurationFlag{Name: "flush-interval"},
			&cli.StringSliceFlag{Name: "allow"},
		},
		Action: action,
	}
}

func run(t *testing.T, app App, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), app, append([]string{app.Name}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		err      error
		want     int
		stderrRe string
	}{
		{"ok", nil, nil, ExitOK, ""},
		{"runtime error", nil, errors.New("broker unreachable"), ExitRuntime, "flowtest: broker unreachable\n"},
		{"usage error from action", nil, Usagef("--workers must be >= 1"), ExitUsage, "flowtest: --workers must be >= 1\n"},
		{"unknown flag", []string{"--bogus"}, nil, ExitUsage, "flowtest: flag provided but not defined: -bogus\n"},
		{"bad int", []string{"--workers", "x"}, nil, ExitUsage, "flowtest: invalid value"},
		{"unexpected argument", []string{"extra"}, nil, ExitUsage, "flowtest: unexpected argument \"extra\"\n"},
		{"downstream closed", nil, fmt.Errorf("write: %w", syscall.EPIPE), ExitOK, ""},
		{"signalled", nil, context.Canceled, ExitOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := testApp(func(context.Context, *cli.Context, Streams) error { return tc.err })
			code, _, stderr := run(t, app, tc.args...)
			if code != tc.want {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.want, stderr)
			}
			if !strings.HasPrefix(stderr, tc.stderrRe) || (tc.stderrRe == "" && stderr != "") {
				t.Errorf("stderr %q, want prefix %q", stderr, tc.stderrRe)
			}
		})
	}
}

func TestEveryFlagHasAnEnvVar(t *testing.T) {
	t.Setenv("FLOWTEST_LISTEN_ADDR", ":2055")
	t.Setenv("FLOWTEST_WORKERS", "3")
	t.Setenv("FLOWTEST_FLUSH_INTERVAL", "150ms")
	t.Setenv("FLOWTEST_ALLOW", "10.0.0.0/8,192.0.2.0/24")
	t.Setenv("FLOWTEST_LOG_LEVEL", "debug")
	var got string
	app := testApp(func(_ context.Context, c *cli.Context, _ Streams) error {
		got = fmt.Sprintf("%s %d %s %v %s", c.String("listen-addr"), c.Int("workers"), c.Duration("flush-interval"), c.StringSlice("allow"), c.String("log-level"))
		return nil
	})
	if code, _, stderr := run(t, app); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := ":2055 3 150ms [10.0.0.0/8 192.0.2.0/24] debug"; got != want {
		t.Fatalf("flags from env = %q, want %q", got, want)
	}
	_, help, _ := run(t, app, "--help")
	for _, env := range []string{"$FLOWTEST_LISTEN_ADDR", "$FLOWTEST_WORKERS", "$FLOWTEST_LOG_FORMAT", "Exit codes:"} {
		if !strings.Contains(help, env) {
			t.Errorf("--help does not mention %s:\n%s", env, help)
		}
	}
}

func TestVersionAndHelpGoToStdout(t *testing.T) {
	app := testApp(func(context.Context, *cli.Context, Streams) error { return errors.New("must not run") })
	code, out, _ := run(t, app, "--version")
	if code != 0 || !strings.Contains(out, "flowtest version "+Version) {
		t.Fatalf("--version: exit %d, stdout %q", code, out)
	}
}

func TestLoggerFlags(t *testing.T) {
	var logs bytes.Buffer
	app := testApp(func(_ context.Context, c *cli.Context, s Streams) error {
		log, err := NewLogger(c, &logs)
		if err != nil {
			return err
		}
		log.Debug("hidden")
		log.Warn("shown", "exporter", "192.0.2.1")
		return nil
	})
	if code, _, stderr := run(t, app, "--log-format", "json", "--log-level", "warn"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if s := logs.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"exporter":"192.0.2.1"`) {
		t.Fatalf("logs = %q", s)
	}
	if code, _, _ := run(t, app, "--log-format", "xml"); code != ExitUsage {
		t.Fatalf("bad --log-format: exit %d, want 2", code)
	}
}

// TestBrokenPipeEndsQuietly runs a real process whose stdout is a closed
// pipe: the write fails with EPIPE and the tool must exit 0 silently
// instead of dying of SIGPIPE.
func TestBrokenPipeEndsQuietly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := t.TempDir() + "/pipetest"
	build := exec.Command("go", "build", "-o", bin, "./testdata/pipetest")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	errFile := t.TempDir() + "/stderr"
	cmd := exec.Command("bash", "-c", "set -o pipefail; "+bin+" 2>"+errFile+" | head -c 10 >/dev/null; echo rc=$?; cat "+errFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != "rc=0" {
		t.Fatalf("want exit 0 and no stderr, got %q", out)
	}
}

// TestGrowPipe: a pipe is enlarged (unless this user's pipe limits forbid
// it, when it keeps its size); a regular file is left alone.
func TestGrowPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	before, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := GrowPipe(r)
	after, err := unix.FcntlInt(r.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != after || after < before {
		t.Fatalf("GrowPipe = %d; size %d before, %d after", got, before, after)
	}
	if os.Geteuid() == 0 && after < PipeSize {
		t.Fatalf("as root the pipe should reach %d, got %d", PipeSize, after)
	}
	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := GrowPipe(f); n != 0 {
		t.Fatalf("GrowPipe(file) = %d, want 0", n)
	}
	if n := GrowPipe(strings.NewReader("x")); n != 0 {
		t.Fatalf("GrowPipe(reader) = %d, want 0", n)
	}
}
