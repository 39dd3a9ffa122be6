package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// TestMappingCustomFields: flowenrich takes goflow2's own mapping.yaml,
// and with a mapping naming custom fields writes those of bin records
// under their names in JSON and reads them back from JSON into bin at
// their numbers.
func TestMappingCustomFields(t *testing.T) {
	f := newFixture(t)
	mf := filepath.Join(interop.Goflow2Dir(t), "cmd", "goflow2", "mapping.yaml")
	// goflow2Stream's custom fields sit at 2001-2003: a mapping naming two.
	extra := filepath.Join(t.TempDir(), "extra.yaml")
	if err := os.WriteFile(extra, []byte("formatter:\n  protobuf:\n    - {name: counter, index: 2001, type: varint}\n    - {name: label, index: 2002, type: string}\n  render: {label: string}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{mf, extra} {
		code, _, stderr := runApp(t, f.args("--mapping", path, "--format", "json"), bytes.NewReader(goflow2Stream(t, 2)))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", path, code, stderr)
		}
	}
	code, out, stderr := runApp(t, f.args("--mapping", extra, "--format", "json"), bytes.NewReader(goflow2Stream(t, 2)))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"counter":1001`) || !strings.Contains(lines[1], `"label":"custom-bytes"`) {
		t.Fatalf("JSON:\n%s", out)
	}
	// And back: JSON in, bin out, the custom fields at their numbers.
	code, bin, stderr := runApp(t, f.args("--mapping", extra, "--format", "bin"), bytes.NewReader(out))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fs := frames(t, bin)
	if len(fs) != 2 || !bytes.Contains(fs[1], []byte("custom-bytes")) {
		t.Fatalf("bin frames % x", fs)
	}
}
