package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"
)

func testApp(action func(ctx context.Context, st *Stage) error) App {
	return App{
		Name:  "flowtest",
		Usage: "test tool",
		Args:  true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen-addr", Value: ":1"},
			&cli.IntFlag{Name: "workers", Value: 1},
			&cli.DurationFlag{Name: "flush-interval"},
			&cli.StringSliceFlag{Name: "allow", Aliases: []string{"a"}},
			&cli.BoolFlag{Name: "dry-run"},
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
		noArgs   bool
		err      error
		want     int
		stderrRe string
	}{
		{"ok", nil, false, nil, ExitOK, ""},
		{"runtime error", nil, false, errors.New("broker unreachable"), ExitRuntime, "flowtest: broker unreachable\n"},
		{"usage error from action", nil, false, Usagef("--workers must be >= 1"), ExitUsage, "flowtest: --workers must be >= 1\n"},
		{"unknown flag", []string{"--bogus"}, false, nil, ExitUsage, "flowtest: flag provided but not defined: -bogus\n"},
		{"bad int", []string{"--workers", "x"}, false, nil, ExitUsage, "flowtest: invalid value"},
		{"unexpected argument", []string{"extra"}, true, nil, ExitUsage, "flowtest: unexpected argument \"extra\"\n"},
		{"downstream closed", nil, false, fmt.Errorf("write: %w", syscall.EPIPE), ExitOK, ""},
		{"signalled", nil, false, context.Canceled, ExitOK, ""},
		{"bad log level", []string{"--log-level", "loud"}, false, nil, ExitUsage, "flowtest: --log-level"},
		{"pprof without a metrics address", []string{"--pprof"}, false, nil, ExitUsage, "flowtest: --pprof needs --metrics-listen\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := testApp(func(_ context.Context, st *Stage) error {
				if _, err := st.ServeMetrics(); err != nil {
					return err
				}
				return tc.err
			})
			app.Args = !tc.noArgs
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
	t.Setenv("FLOWTEST_METRICS_LISTEN", "127.0.0.1:0")
	t.Setenv("FLOWTEST_PPROF", "true")
	var got string
	app := testApp(func(_ context.Context, st *Stage) error {
		c := st.Flags
		got = fmt.Sprintf("%s %d %s %v %s %s %v", c.String("listen-addr"), c.Int("workers"), c.Duration("flush-interval"),
			c.StringSlice("allow"), c.String("log-level"), c.String("metrics-listen"), c.Bool("pprof"))
		return nil
	})
	if code, _, stderr := run(t, app); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := ":2055 3 150ms [10.0.0.0/8 192.0.2.0/24] debug 127.0.0.1:0 true"; got != want {
		t.Fatalf("flags from env = %q, want %q", got, want)
	}
	_, help, _ := run(t, app, "--help")
	for _, env := range []string{"$FLOWTEST_LISTEN_ADDR", "$FLOWTEST_WORKERS", "$FLOWTEST_LOG_FORMAT", "$FLOWTEST_METRICS_LISTEN",
		"$FLOWTEST_PPROF", "Exit codes:", "SIGHUP"} {
		if !strings.Contains(help, env) {
			t.Errorf("--help does not mention %s:\n%s", env, help)
		}
	}
}

func TestVersionAndHelpGoToStdout(t *testing.T) {
	app := testApp(func(context.Context, *Stage) error { return errors.New("must not run") })
	code, out, _ := run(t, app, "--version")
	if code != 0 || !strings.Contains(out, "flowtest version "+Version) {
		t.Fatalf("--version: exit %d, stdout %q", code, out)
	}
}

func TestLoggerFlags(t *testing.T) {
	app := testApp(func(_ context.Context, st *Stage) error {
		st.Log.Debug("hidden")
		st.Log.Warn("shown", "exporter", "192.0.2.1")
		return nil
	})
	code, _, stderr := run(t, app, "--log-format", "json", "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "hidden") || !strings.Contains(stderr, `"exporter":"192.0.2.1"`) {
		t.Fatalf("logs = %q", stderr)
	}
	if code, _, _ := run(t, app, "--log-format", "xml"); code != ExitUsage {
		t.Fatalf("bad --log-format: exit %d, want 2", code)
	}
}

// TestFlagsAfterArguments: flags are read wherever they stand, as GNU
// tools read them (issue 17: `flowcollect -r a.pcap b.pcap --format bin`
// took --format for a file name); "--" ends them.
func TestFlagsAfterArguments(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    string
		wantArg []string
	}{
		{[]string{"a.pcap", "b.pcap", "--workers", "3"}, "3 [] false", []string{"a.pcap", "b.pcap"}},
		{[]string{"--allow", "a.pcap", "b.pcap", "--workers=4", "c"}, "4 [a.pcap] false", []string{"b.pcap", "c"}},
		{[]string{"-a", "10.0.0.0/8", "x", "--dry-run", "y", "-a", "192.0.2.0/24"}, "1 [10.0.0.0/8 192.0.2.0/24] true", []string{"x", "y"}},
		{[]string{"x", "--", "--workers", "5", "-"}, "1 [] false", []string{"x", "--workers", "5", "-"}},
		{[]string{"--dry-run=false", "-", "--workers", "-2"}, "-2 [] false", []string{"-"}},
	} {
		var got string
		var gotArgs []string
		app := testApp(func(_ context.Context, st *Stage) error {
			got = fmt.Sprintf("%d %v %v", st.Flags.Int("workers"), st.Flags.StringSlice("allow"), st.Flags.Bool("dry-run"))
			gotArgs = st.Flags.Args().Slice()
			return nil
		})
		if code, _, stderr := run(t, app, tc.args...); code != 0 {
			t.Fatalf("%q: exit %d: %s", tc.args, code, stderr)
		}
		if got != tc.want || !slices.Equal(gotArgs, tc.wantArg) {
			t.Errorf("%q: flags %q args %q, want %q and %q", tc.args, got, gotArgs, tc.want, tc.wantArg)
		}
	}
	// A flag missing its value is still an error, wherever it stands.
	app := testApp(func(context.Context, *Stage) error { return nil })
	if code, _, stderr := run(t, app, "a.pcap", "--workers"); code != ExitUsage || !strings.Contains(stderr, "flag needs an argument") {
		t.Fatalf("--workers without a value: exit %d, %q", code, stderr)
	}
}

// TestMetricsServer: /metrics, both health paths, and pprof only when
// asked for.
func TestMetricsServer(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", pprof), func(t *testing.T) {
			got := map[string]int{}
			app := testApp(func(_ context.Context, st *Stage) error {
				addr, err := st.ServeMetrics()
				if err != nil {
					return err
				}
				for _, path := range []string{"/metrics", "/healthz", "/__health", "/debug/pprof/"} {
					resp, err := http.Get("http://" + addr + path)
					if err != nil {
						return err
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					got[path] = resp.StatusCode
				}
				return nil
			})
			args := []string{"--metrics-listen", "127.0.0.1:0"}
			if pprof {
				args = append(args, "--pprof")
			}
			if code, _, stderr := run(t, app, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			want := map[string]int{"/metrics": 200, "/healthz": 200, "/__health": 200, "/debug/pprof/": 404}
			if pprof {
				want["/debug/pprof/"] = 200
			}
			for path, code := range want {
				if got[path] != code {
					t.Errorf("GET %s: %d, want %d", path, got[path], code)
				}
			}
		})
	}
}

// TestCleanupOrder: cleanups run after the Action, last registered first.
func TestCleanupOrder(t *testing.T) {
	var order []string
	app := testApp(func(_ context.Context, st *Stage) error {
		st.OnCleanup(func() { order = append(order, "first") })
		st.OnCleanup(func() { order = append(order, "second") })
		order = append(order, "action")
		return nil
	})
	run(t, app)
	if got := strings.Join(order, ","); got != "action,second,first" {
		t.Fatalf("order %s", got)
	}
}

func TestInterspersedKeepsUnknownFlags(t *testing.T) {
	got, _ := interspersed([]string{"x", "a", "--bogus", "b", "c"}, nil)
	if want := regexp.MustCompile(`^x --bogus -- a b c$`); !want.MatchString(strings.Join(got, " ")) {
		t.Fatalf("got %q", got)
	}
	if got, _ := interspersed([]string{"x"}, nil); len(got) != 1 {
		t.Fatalf("got %q", got)
	}
}
