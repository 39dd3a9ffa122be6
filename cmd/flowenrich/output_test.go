package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutputPattern checks --output with a time pattern: the enriched
// JSON lands in the file of the current UTC hour, whole, nothing on
// stdout; a bad pattern is a usage error.
func TestOutputPattern(t *testing.T) {
	f := newFixture(t)
	var in strings.Builder
	for range 100 {
		in.WriteString(`{"type":"IPFIX","src_addr":"192.0.2.10","dst_addr":"198.51.100.20","bytes":1500,"custom_x":7}` + "\n")
	}
	dir := t.TempDir()
	before := time.Now().UTC()
	code, out, stderr := runApp(t, f.args("--format", "json", "--output", filepath.Join(dir, "enriched-%Y%m%d-%H.json"), "--output-keep", "24"),
		strings.NewReader(in.String()))
	if code != 0 || len(out) != 0 {
		t.Fatalf("exit %d, stdout %q: %s", code, out, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "enriched-*.json"))
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	if name := filepath.Base(files[0]); name != before.Format("enriched-20060102-15.json") && name != time.Now().UTC().Format("enriched-20060102-15.json") {
		t.Errorf("file %s not named by the UTC hour", name)
	}
	b, _ := os.ReadFile(files[0])
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 100 {
		t.Fatalf("%d lines, want 100", len(lines))
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[99]), &rec); err != nil || rec["src_as"] != float64(64500) {
		t.Errorf("last record %s: %v", lines[99], err)
	}
	if code, _, stderr := runApp(t, f.args("--output", filepath.Join(dir, "x-%q.json")), strings.NewReader("")); code != 2 || !strings.Contains(stderr, "--output") {
		t.Errorf("bad pattern: exit %d: %s", code, stderr)
	}
}
