// Package systemd holds the units, their environment files and the
// sysusers entry; its tests check them with systemd's own analyzer.
package systemd

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// maxExposure is the highest `systemd-analyze security` exposure a unit
// may have (0 best, 10 worst).
const maxExposure = 2.5

// tool looks up a program; it skips without it, and fails under CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("runs %s", name)
	}
	return tools.Require(t, name)
}

func units(t *testing.T) []string {
	t.Helper()
	u, err := filepath.Glob("*.service")
	if err != nil || len(u) == 0 {
		t.Fatalf("no units: %v", err)
	}
	return u
}

// directive returns the values of key in the unit's [Service] section.
func directives(t *testing.T, unit, key string) []string {
	t.Helper()
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key && !strings.HasPrefix(line, "#") {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

// stageForVerify copies the units into a directory with their programs
// (/usr/local/bin/flow*, the pipeline wrapper) pointing at executables
// that exist here, the one change systemd-analyze verify needs: it checks
// that ExecStart= is executable and has no --root for that.
func stageForVerify(t *testing.T) (dir string, staged []string) {
	t.Helper()
	dir = t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"flowcollect", "flowenrich", "flowpublish", "flowexport"} {
		if err := os.Symlink("/bin/true", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	wrapper, _ := filepath.Abs("flowpipe-pipeline")
	for _, u := range units(t) {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/", bin+"/")
		s = strings.ReplaceAll(s, "/usr/local/lib/flowpipe/flowpipe-pipeline", wrapper)
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		staged = append(staged, p)
	}
	return dir, staged
}

// TestVerify runs `systemd-analyze verify` on every unit: any message
// about our units fails the test (messages about the host's own units,
// which verify also loads, are ignored).
func TestVerify(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	_, staged := stageForVerify(t)
	for _, u := range staged {
		out, err := exec.Command(sa, "verify", "--man=no", u).CombinedOutput()
		var ours []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, filepath.Base(u)) {
				ours = append(ours, line)
			}
		}
		if err != nil || len(ours) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
		}
	}
}

var exposureRE = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+)`)

// TestSecurity runs `systemd-analyze security --offline=yes` (systemd 252
// and later) on every unit: the exposure must be at most maxExposure, and
// the settings the deployment relies on must be there.
func TestSecurity(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	for _, u := range units(t) {
		abs, _ := filepath.Abs(u)
		out, err := exec.Command(sa, "security", "--offline=yes",
			fmt.Sprintf("--threshold=%d", int(maxExposure*10)), abs).CombinedOutput()
		m := exposureRE.FindSubmatch(out)
		if m == nil {
			t.Errorf("%s: no exposure level in:\n%s", u, out)
			continue
		}
		level, _ := strconv.ParseFloat(string(m[2]), 64)
		if err != nil || level > maxExposure {
			t.Errorf("%s: exposure %.1f (max %.1f), %v\n%s", u, level, maxExposure, err, out)
		}
		t.Logf("%s: exposure %.1f", u, level)
		for key, want := range map[string]string{
			"CapabilityBoundingSet":   "",
			"ProtectSystem":           "strict",
			"MemoryDenyWriteExecute":  "yes",
			"NoNewPrivileges":         "yes",
			"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
			"User":                    "flowpipe",
		} {
			if got := directives(t, u, key); !slices.Contains(got, want) {
				t.Errorf("%s: %s=%v, want %q", u, key, got, want)
			}
		}
		if got := directives(t, u, "SystemCallFilter"); !slices.Contains(got, "@system-service") {
			t.Errorf("%s: SystemCallFilter=%v, want @system-service", u, got)
		}
		if len(directives(t, u, "StateDirectory")) == 0 {
			t.Errorf("%s: no StateDirectory=", u)
		}
		if len(directives(t, u, "AmbientCapabilities")) > 0 && directives(t, u, "AmbientCapabilities")[0] != "" {
			t.Errorf("%s: ambient capabilities %v", u, directives(t, u, "AmbientCapabilities"))
		}
	}
}

// toolsOf lists the tools a unit runs.
func toolsOf(t *testing.T, unit string) []string {
	start := strings.Join(directives(t, unit, "ExecStart"), " ")
	if strings.Contains(start, "flowpipe-pipeline") {
		return []string{"flowcollect", "flowenrich", "flowpublish"}
	}
	for _, name := range []string{"flowcollect", "flowenrich", "flowpublish", "flowexport"} {
		if strings.Contains(start, "/"+name) {
			return []string{name}
		}
	}
	t.Fatalf("%s: runs no known tool: %s", unit, start)
	return nil
}

// envOf reads the environment files a unit names from default/ (where
// /etc/default/NAME comes from). An optional file we do not ship (the
// legacy /etc/default/flowpipe) is skipped; a required one must exist.
func envOf(t *testing.T, unit string) (env map[string]string, files []string) {
	t.Helper()
	env = map[string]string{}
	for _, ef := range directives(t, unit, "EnvironmentFile") {
		optional := strings.HasPrefix(ef, "-")
		path := strings.TrimPrefix(ef, "-")
		local := filepath.Join("default", strings.TrimPrefix(path, "/etc/default/"))
		b, err := os.ReadFile(local)
		if err != nil {
			if optional && path == "/etc/default/flowpipe" {
				continue
			}
			t.Errorf("%s: EnvironmentFile=%s: no %s shipped", unit, path, local)
			continue
		}
		files = append(files, local)
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s: bad line %q", local, line)
				continue
			}
			env[k] = v
		}
	}
	return env, files
}

// toolDefaults are the tools' own defaults for what binds a port.
var toolDefaults = map[string]map[string]string{
	"flowcollect": {"LISTEN": "netflow://:2055,ipfix://:4739,sflow://:6343", "METRICS_LISTEN": "127.0.0.1:8080"},
	"flowexport":  {"METRICS_LISTEN": ":9590"},
	"flowenrich":  {"METRICS_LISTEN": ""},
	"flowpublish": {"METRICS_LISTEN": ""},
}

// portsOf lists "udp/PORT" and "tcp/PORT" a unit's tools bind, with its
// environment files and the tools' defaults.
func portsOf(t *testing.T, unit string) []string {
	env, _ := envOf(t, unit)
	var ports []string
	for _, name := range toolsOf(t, unit) {
		prefix := strings.ToUpper(name) + "_"
		get := func(k string) string {
			if v, ok := env[prefix+k]; ok {
				return v
			}
			return toolDefaults[name][k]
		}
		if strings.Contains(env[prefix+"ARGS"], "listen") {
			t.Errorf("%s: %sARGS sets a listen address: keep them in %sLISTEN/METRICS_LISTEN", unit, prefix, prefix)
		}
		if name == "flowcollect" {
			for _, uri := range strings.Split(get("LISTEN"), ",") {
				u, err := url.Parse(uri)
				if err != nil || u.Port() == "" {
					t.Errorf("%s: listen URI %q", unit, uri)
					continue
				}
				ports = append(ports, "udp/"+u.Port())
			}
		}
		if addr := get("METRICS_LISTEN"); addr != "" {
			_, port, ok := strings.Cut(addr, ":")
			if !ok {
				t.Errorf("%s: metrics address %q", unit, addr)
			}
			ports = append(ports, "tcp/"+port)
		}
	}
	return ports
}

// TestNoSharedPorts checks that no two units (and no two tools of the
// pipeline) bind the same port, so every unit can run on one host.
func TestNoSharedPorts(t *testing.T) {
	owner := map[string]string{}
	for _, u := range units(t) {
		for _, p := range portsOf(t, u) {
			if other, ok := owner[p]; ok {
				t.Errorf("%s bound by %s and %s", p, other, u)
			}
			owner[p] = u
		}
	}
	if len(owner) < 8 {
		t.Errorf("only %d ports found: %v", len(owner), owner)
	}
	t.Logf("ports: %v", owner)
}

// TestEnvironmentFiles checks that every tool a unit runs has its own
// environment file, and that every variable in it is one the tool reads:
// its --help lists it (or it is the *_ARGS the unit passes on).
func TestEnvironmentFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs each tool's --help")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	help := map[string]string{}
	for _, u := range units(t) {
		env, files := envOf(t, u)
		for _, name := range toolsOf(t, u) {
			own := strings.TrimSuffix(strings.TrimSuffix(u, ".service"), "-json")
			if !slices.ContainsFunc(files, func(f string) bool {
				return filepath.Base(f) == name || (own == name && filepath.Base(f) == strings.TrimSuffix(u, ".service"))
			}) {
				t.Errorf("%s: no environment file for %s (have %v)", u, name, files)
			}
			if _, ok := help[name]; !ok {
				cmd := exec.Command("go", "run", "./cmd/"+name, "--help")
				cmd.Dir = root
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s --help: %v\n%s", name, err, out)
				}
				help[name] = string(out)
			}
		}
		for k := range env {
			name := strings.ToLower(strings.SplitN(k, "_", 2)[0])
			if !slices.Contains(toolsOf(t, u), name) {
				t.Errorf("%s: %s is for no tool of this unit", u, k)
				continue
			}
			if strings.HasSuffix(k, "_ARGS") {
				continue
			}
			if !strings.Contains(help[name], "$"+k) {
				t.Errorf("%s: %s is no variable of %s", u, k, name)
			}
		}
	}
}

// TestLogrotate runs logrotate in debug mode (nothing is rotated) on the
// shipped file: it must parse, rotate daily (Debian's logrotate.timer runs
// once a day, so "hourly" would silently mean daily) and never
// copytruncate (which shrinks a file under a shipper).
func TestLogrotate(t *testing.T) {
	lr := tool(t, "logrotate")
	conf := filepath.Join("..", "logrotate", "flowcollect")
	out, err := exec.Command(lr, "--debug", "--state", filepath.Join(t.TempDir(), "state"), conf).CombinedOutput()
	if err != nil || strings.Contains(string(out), "error:") {
		t.Errorf("logrotate -d: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(conf)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "hourly" || f[0] == "copytruncate" {
			t.Errorf("%s: %s", conf, line)
		}
	}
	if !strings.Contains(string(out), "rotating pattern: /var/log/flowpipe/flows.json") {
		t.Errorf("logrotate does not see the pattern:\n%s", out)
	}
}
