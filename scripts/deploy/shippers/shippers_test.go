// Package shippers holds ready configurations for log shippers that tail
// the JSON flow files of flowcollect-json.service: Grafana Alloy (Loki),
// Fluent Bit, Vector and the Splunk universal forwarder. Its tests run
// flowcollect as that unit's environment file configures it, on live UDP
// traffic, and check each configuration against the files and lines it
// really writes: the glob or whitelist matches the files, the fields the
// configuration reads exist, and its timestamp settings, applied to a real
// line, give the instant of time_received_ns to the nanosecond, in UTC.
package shippers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// logDir is where the unit writes; the tests write under a temp dir and
// map paths back.
const logDir = "/var/log/flowpipe"

// written is what flowcollect wrote in the test.
type written struct {
	dir   string   // stands for logDir
	files []string // full paths
	lines [][]byte // the lines of the first file
}

// deployPath maps a path under the test's dir to the deployed one.
func (w written) deployPath(p string) string {
	return logDir + strings.TrimPrefix(p, w.dir)
}

// flows is written once per test binary and shared by the tests.
var flows written

// collect runs flowcollect once per test binary with the variables of
// scripts/deploy/systemd/default/flowcollect-json (listen and output moved
// under test dirs), sends it IPFIX over loopback and stops it with SIGTERM.
func collect(t *testing.T) written {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs flowcollect")
	}
	if flows.files != nil {
		return flows
	}
	dir := t.TempDir()
	root, _ := filepath.Abs("../../..")
	bin := filepath.Join(dir, "flowcollect")
	build := exec.Command("go", "build", "-o", bin, "./cmd/flowcollect")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	envFile, err := os.ReadFile(filepath.Join(root, "scripts", "deploy", "systemd", "default", "flowcollect-json"))
	if err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "log")
	port := freeUDP(t)
	env := os.Environ()
	for _, line := range strings.Split(string(envFile), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "FLOWCOLLECT_LISTEN":
			v = fmt.Sprintf("netflow://127.0.0.1:%d", port)
		case "FLOWCOLLECT_METRICS_LISTEN":
			v = ""
		case "FLOWCOLLECT_TEMPLATES_FILE":
			v = filepath.Join(dir, "templates.json")
		case "FLOWCOLLECT_OUTPUT":
			if !strings.HasPrefix(v, logDir+"/") {
				t.Fatalf("FLOWCOLLECT_OUTPUT %s is not under %s", v, logDir)
			}
			v = logs + strings.TrimPrefix(v, logDir)
		}
		env = append(env, k+"="+v)
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stderr = env, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "listening") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	g, err := flowgen.New(flowgen.Config{Seed: 3, Protocol: flowgen.IPFIX, IPv6Ratio: 0.3, BaseTime: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(g.Templates())
	for range 5 {
		pkt, _ := g.Next()
		conn.Write(pkt)
		time.Sleep(3 * time.Millisecond) // distinct receive times
	}
	conn.Close()
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("flowcollect: %v\n%s", err, stderr.String())
	}
	files, _ := filepath.Glob(filepath.Join(logs, "*"))
	if len(files) == 0 {
		t.Fatalf("flowcollect wrote no file\n%s", stderr.String())
	}
	b, _ := os.ReadFile(files[0])
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(lines) < 28 {
		t.Fatalf("only %d lines in %s\n%s", len(lines), files[0], stderr.String())
	}
	flows = written{dir: logs, files: files, lines: lines}
	return flows
}

func freeUDP(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// field returns a top-level field of a line as JSON text (numbers as
// written, not through float64).
func field(t *testing.T, line []byte, name string) (string, bool) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	v, ok := m[name]
	if !ok {
		return "", false
	}
	return fmt.Sprint(v), true
}

// wantTime is the instant a line stands for: its time_received_ns.
func wantTime(t *testing.T, line []byte) time.Time {
	t.Helper()
	s, ok := field(t, line, "time_received_ns")
	if !ok {
		t.Fatalf("no time_received_ns in %s", line)
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ns < 1e18 {
		t.Fatalf("time_received_ns %q is no nanosecond epoch", s)
	}
	if ns%1000 == 0 {
		t.Logf("time_received_ns %d has no sub-microsecond digits", ns)
	}
	return time.Unix(0, ns).UTC()
}

// sampleLines are lines whose times differ in their last digits.
func sampleLines(w written) [][]byte {
	return [][]byte{w.lines[0], w.lines[len(w.lines)/2], w.lines[len(w.lines)-1]}
}

// TestAlloy parses the Alloy file, checks that local.file_match's
// __path__ glob matches the files written, then runs the loki.process
// stages that set the time, as Alloy does: stage.regex with Go's regexp
// (Alloy's engine) into the extracted map, then stage.timestamp with its
// format (Unix, UnixMs, UnixUs, UnixNs as integers; else a Go layout in
// the stage's location, UTC by default).
func TestAlloy(t *testing.T) {
	w := collect(t)
	cfg := parseAlloy(t, "alloy/flowpipe.alloy")
	// Every reference names a component the file declares, and the
	// components are wired file_match -> source.file -> process -> write.
	for _, ref := range cfg.refs() {
		parts := strings.Split(string(ref), ".")
		if len(parts) != 4 {
			t.Errorf("reference %s: want component.kind.label.export", ref)
			continue
		}
		cfg.block(t, parts[0]+"."+parts[1], parts[2])
	}
	src := cfg.block(t, "loki.source.file", "flowpipe")
	if src.attrs["targets"] != alloyRef("local.file_match.flowpipe.targets") {
		t.Errorf("loki.source.file targets = %v", src.attrs["targets"])
	}
	if fw, _ := src.attrs["forward_to"].([]any); len(fw) != 1 || fw[0] != alloyRef("loki.process.flowpipe.receiver") {
		t.Errorf("loki.source.file forward_to = %v", src.attrs["forward_to"])
	}
	fm := cfg.block(t, "local.file_match", "flowpipe")
	paths := fm.listOfObjects(t, "path_targets")
	glob := paths[0]["__path__"]
	for _, f := range w.files {
		if ok, _ := filepath.Match(glob, w.deployPath(f)); !ok {
			t.Errorf("__path__ %s does not match %s", glob, w.deployPath(f))
		}
	}
	proc := cfg.block(t, "loki.process", "flowpipe")
	for _, line := range sampleLines(w) {
		extracted := map[string]string{}
		var ts time.Time
		for _, st := range proc.children {
			switch st.name {
			case "stage.regex":
				re := regexp.MustCompile(st.str(t, "expression"))
				m := re.FindSubmatch(line)
				if m == nil {
					t.Fatalf("stage.regex %s matches nothing in %s", re, line)
				}
				for i, n := range re.SubexpNames() {
					if n != "" {
						extracted[n] = string(m[i])
					}
				}
			case "stage.json":
				for name, expr := range st.object(t, "expressions") {
					if _, ok := field(t, line, expr); !ok {
						t.Errorf("stage.json %s = %q: no such field in the line", name, expr)
					}
					v, _ := field(t, line, expr)
					extracted[name] = v
				}
			case "stage.labels":
				for name := range st.object(t, "values") {
					if _, ok := extracted[name]; !ok {
						t.Errorf("stage.labels %s: not extracted", name)
					}
				}
			case "stage.timestamp":
				src := extracted[st.str(t, "source")]
				loc := time.UTC
				if l, ok := st.attrs["location"]; ok {
					var err error
					if loc, err = time.LoadLocation(l.(string)); err != nil {
						t.Fatal(err)
					}
				}
				ts = lokiTimestamp(t, st.str(t, "format"), src, loc)
			}
		}
		if want := wantTime(t, line); !ts.Equal(want) {
			t.Errorf("Alloy time %s, want %s", ts.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
}

// lokiTimestamp parses as Loki's and Alloy's stage.timestamp does.
func lokiTimestamp(t *testing.T, format, s string, loc *time.Location) time.Time {
	t.Helper()
	unit := map[string]int64{"Unix": 1e9, "UnixMs": 1e6, "UnixUs": 1e3, "UnixNs": 1}
	if u, ok := unit[format]; ok {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("stage.timestamp %s: %q: %v", format, s, err)
		}
		return time.Unix(0, v*u).UTC()
	}
	ts, err := time.ParseInLocation(format, s, loc)
	if err != nil {
		t.Fatalf("stage.timestamp %s: %q: %v", format, s, err)
	}
	return ts
}

// TestFluentBit parses the classic configuration: the tail input's Path
// must match the files, the Lua filter's script is run by LuaJIT (Fluent
// Bit's Lua) on real lines as the filter calls it, the parser filter's
// parser must be JSON without a Time_Key (so the parser filter keeps the
// Lua time, as filter_parser does when a parser sets none), and the
// output's label keys must be fields of the line.
func TestFluentBit(t *testing.T) {
	w := collect(t)
	sections := parseFluentBit(t, "fluent-bit/fluent-bit.conf")
	var script, call, parser string
	var labelKeys []string
	for _, s := range sections {
		switch {
		case s.name == "INPUT" && s.get("Name") == "tail":
			for _, f := range w.files {
				if ok, _ := filepath.Match(s.get("Path"), w.deployPath(f)); !ok {
					t.Errorf("tail Path %s does not match %s", s.get("Path"), w.deployPath(f))
				}
			}
			if s.get("Parser") != "" {
				t.Errorf("tail has Parser %s: the Lua filter needs the raw line", s.get("Parser"))
			}
		case s.name == "FILTER" && s.get("Name") == "lua":
			script, call = s.get("Script"), s.get("Call")
			if !strings.EqualFold(s.get("Time_as_Table"), "On") {
				t.Error("lua filter without Time_as_Table On: the script returns {sec, nsec}")
			}
		case s.name == "FILTER" && s.get("Name") == "parser":
			parser = s.get("Parser")
			if s.get("Key_Name") != "log" || !strings.EqualFold(s.get("Reserve_Data"), "On") {
				t.Errorf("parser filter: Key_Name %q Reserve_Data %q", s.get("Key_Name"), s.get("Reserve_Data"))
			}
		case s.name == "OUTPUT":
			for _, k := range strings.Split(s.get("Label_Keys"), ",") {
				if k = strings.TrimSpace(k); k != "" {
					labelKeys = append(labelKeys, strings.TrimPrefix(k, "$"))
				}
			}
		case s.name == "SERVICE":
			var found bool
			for _, p := range parseFluentBit(t, filepath.Join("fluent-bit", s.get("Parsers_File"))) {
				if p.name == "PARSER" && p.get("Name") == "flowpipe_json" {
					found = true
					if !strings.EqualFold(p.get("Format"), "json") || p.get("Time_Key") != "" {
						t.Errorf("parser flowpipe_json: Format %q Time_Key %q", p.get("Format"), p.get("Time_Key"))
					}
				}
			}
			if !found {
				t.Error("no parser flowpipe_json in the Parsers_File")
			}
		}
	}
	if parser != "flowpipe_json" || script == "" || call == "" {
		t.Fatalf("filters: parser %q, lua %q/%q", parser, script, call)
	}
	for _, k := range labelKeys {
		if _, ok := field(t, w.lines[0], k); !ok {
			t.Errorf("Label_Keys %s: no such field", k)
		}
	}
	lua := luaBinary(t)
	for _, line := range sampleLines(w) {
		harness := fmt.Sprintf(`dofile(%q)
local code, ts, rec = %s("flowpipe.flows", {sec = 0, nsec = 0}, {log = [==[%s]==]})
print(code, string.format("%%d %%d", ts.sec, ts.nsec))`, filepath.Join("fluent-bit", script), call, line)
		out, err := exec.Command(lua, "-e", harness).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", lua, err, out)
		}
		var code, sec, nsec int64
		if _, err := fmt.Sscanf(string(out), "%d\t%d %d", &code, &sec, &nsec); err != nil || code != 1 {
			t.Fatalf("lua returned %q", out)
		}
		if got, want := time.Unix(sec, nsec).UTC(), wantTime(t, line); !got.Equal(want) {
			t.Errorf("Fluent Bit time %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
}

// luaBinary is LuaJIT (what Fluent Bit embeds), else a Lua 5.1.
func luaBinary(t *testing.T) string {
	for _, name := range []string{"luajit", "lua5.1"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("luajit not installed")
	}
	t.Skip("luajit not installed")
	return ""
}

var vrlTimestamp = regexp.MustCompile(`(?m)^\s*\.timestamp\s*=\s*from_unix_timestamp!\(\s*int!\(\s*\.([a-z_]+)\s*\)\s*,\s*unit:\s*"([a-z]+)"\s*\)\s*$`)

// TestVector parses the YAML: the file source's include globs must match
// the files; the remap program must parse the message as JSON and set
// .timestamp with from_unix_timestamp from an integer field, whose value
// in a real line, in the program's unit, gives the instant; label
// templates must name fields of the line.
func TestVector(t *testing.T) {
	w := collect(t)
	b, err := os.ReadFile("vector/vector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Sources map[string]struct {
			Type    string   `yaml:"type"`
			Include []string `yaml:"include"`
		} `yaml:"sources"`
		Transforms map[string]struct {
			Type   string   `yaml:"type"`
			Inputs []string `yaml:"inputs"`
			Source string   `yaml:"source"`
		} `yaml:"transforms"`
		Sinks map[string]struct {
			Inputs []string          `yaml:"inputs"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"sinks"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	src, ok := cfg.Sources["flowpipe_files"]
	if !ok || src.Type != "file" {
		t.Fatalf("no file source flowpipe_files: %+v", cfg.Sources)
	}
	for _, f := range w.files {
		matched := false
		for _, g := range src.Include {
			if ok, _ := filepath.Match(g, w.deployPath(f)); ok {
				matched = true
			}
		}
		if !matched {
			t.Errorf("include %v does not match %s", src.Include, w.deployPath(f))
		}
	}
	tr := cfg.Transforms["flowpipe_flows"]
	if tr.Type != "remap" || len(tr.Inputs) != 1 || tr.Inputs[0] != "flowpipe_files" {
		t.Fatalf("transform: %+v", tr)
	}
	if !strings.Contains(tr.Source, "parse_json!(string!(.message))") {
		t.Errorf("remap does not parse .message as JSON:\n%s", tr.Source)
	}
	m := vrlTimestamp.FindStringSubmatch(tr.Source)
	if m == nil {
		t.Fatalf("no `.timestamp = from_unix_timestamp!(int!(.FIELD), unit: ...)` in:\n%s", tr.Source)
	}
	unit := map[string]int64{"seconds": 1e9, "milliseconds": 1e6, "microseconds": 1e3, "nanoseconds": 1}[m[2]]
	if unit == 0 {
		t.Fatalf("unit %q", m[2])
	}
	for _, line := range sampleLines(w) {
		s, ok := field(t, line, m[1])
		if !ok {
			t.Fatalf("no field %s", m[1])
		}
		v, err := strconv.ParseInt(s, 10, 64) // VRL's integers are i64
		if err != nil {
			t.Fatalf("%s = %q is no integer: %v", m[1], s, err)
		}
		if got, want := time.Unix(0, v*unit).UTC(), wantTime(t, line); !got.Equal(want) {
			t.Errorf("Vector time %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
	tmpl := regexp.MustCompile(`\{\{\s*([a-z_]+)\s*\}\}`)
	for name, sink := range cfg.Sinks {
		for label, v := range sink.Labels {
			for _, f := range tmpl.FindAllStringSubmatch(v, -1) {
				if _, ok := field(t, w.lines[0], f[1]); !ok {
					t.Errorf("sink %s label %s: no field %s", name, label, f[1])
				}
			}
		}
	}
}

// TestSplunk parses inputs.conf and props.conf: the monitor stanza's
// directory and whitelist (matched against the full path, as Splunk does)
// must take the files; its sourcetype must have a props stanza whose
// TIMESTAMP_FIELDS is a field of the line and whose TIME_FORMAT, applied
// as Splunk's strptime does (%s seconds since the epoch, %<n>N n digits of
// subseconds), in zone TZ, gives the instant.
func TestSplunk(t *testing.T) {
	w := collect(t)
	inputs := parseConf(t, "splunk/inputs.conf")
	props := parseConf(t, "splunk/props.conf")
	var sourcetype string
	for name, kv := range inputs {
		dir, ok := strings.CutPrefix(name, "monitor://")
		if !ok {
			continue
		}
		wl := regexp.MustCompile(kv["whitelist"])
		for _, f := range w.files {
			p := w.deployPath(f)
			if !strings.HasPrefix(p, dir+"/") || !wl.MatchString(p) {
				t.Errorf("monitor %s whitelist %s does not take %s", dir, wl, p)
			}
		}
		for _, other := range []string{dir + "/flows.json.1", dir + "/flows-20260101-00.json.gz"} {
			if wl.MatchString(other) {
				t.Errorf("whitelist %s takes %s", wl, other)
			}
		}
		sourcetype = kv["sourcetype"]
	}
	st, ok := props[sourcetype]
	if !ok {
		t.Fatalf("no props stanza for sourcetype %q", sourcetype)
	}
	if st["INDEXED_EXTRACTIONS"] != "json" || st["SHOULD_LINEMERGE"] != "false" {
		t.Errorf("props: INDEXED_EXTRACTIONS %q SHOULD_LINEMERGE %q", st["INDEXED_EXTRACTIONS"], st["SHOULD_LINEMERGE"])
	}
	loc, err := time.LoadLocation(st["TZ"])
	if err != nil || st["TZ"] != "UTC" {
		t.Fatalf("TZ %q: %v", st["TZ"], err)
	}
	for _, line := range sampleLines(w) {
		v, ok := field(t, line, st["TIMESTAMP_FIELDS"])
		if !ok {
			t.Fatalf("TIMESTAMP_FIELDS %s: no such field", st["TIMESTAMP_FIELDS"])
		}
		got := splunkStrptime(t, st["TIME_FORMAT"], v, loc)
		if want := wantTime(t, line); !got.Equal(want) {
			t.Errorf("Splunk time %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
}

// splunkStrptime applies the subset of Splunk's TIME_FORMAT that epoch
// times use: %s, then optionally %<n>N (n subsecond digits).
func splunkStrptime(t *testing.T, format, v string, loc *time.Location) time.Time {
	t.Helper()
	m := regexp.MustCompile(`^%s(?:%(\d)N)?$`).FindStringSubmatch(format)
	if m == nil {
		t.Fatalf("TIME_FORMAT %q: not an epoch format this test knows", format)
	}
	digits := 0
	if m[1] != "" {
		digits, _ = strconv.Atoi(m[1])
	}
	if len(v) <= digits {
		t.Fatalf("%q too short for %s", v, format)
	}
	sec, err1 := strconv.ParseInt(v[:len(v)-digits], 10, 64)
	frac, err2 := int64(0), error(nil)
	if digits > 0 {
		frac, err2 = strconv.ParseInt(v[len(v)-digits:], 10, 64)
		for range 9 - digits {
			frac *= 10
		}
	}
	if err1 != nil || err2 != nil {
		t.Fatalf("%q: %v %v", v, err1, err2)
	}
	return time.Unix(sec, frac).In(loc)
}

// parseConf reads a Splunk .conf file: [stanza] then key = value lines.
func parseConf(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	var cur map[string]string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			out[line[1:len(line)-1]] = cur
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == nil {
				t.Fatalf("%s: bad line %q", path, line)
			}
			cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// fbSection is one section of a Fluent Bit classic configuration.
type fbSection struct {
	name string
	kv   [][2]string
}

func (s fbSection) get(k string) string {
	for _, p := range s.kv {
		if strings.EqualFold(p[0], k) {
			return p[1]
		}
	}
	return ""
}

func parseFluentBit(t *testing.T, path string) []fbSection {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []fbSection
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case strings.HasPrefix(trimmed, "[") && strings.HasSuffix(trimmed, "]"):
			out = append(out, fbSection{name: strings.ToUpper(trimmed[1 : len(trimmed)-1])})
		default:
			f := strings.Fields(trimmed)
			if len(out) == 0 || len(f) < 1 || line == trimmed {
				t.Fatalf("%s: bad line %q (entries are indented under a section)", path, line)
			}
			out[len(out)-1].kv = append(out[len(out)-1].kv, [2]string{f[0], strings.TrimSpace(strings.TrimPrefix(trimmed, f[0]))})
		}
	}
	return out
}
