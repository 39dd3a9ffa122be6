package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const ipfixPcap = "../../pkg/decode/netflow/testdata/softflowd-ipfix.pcap"

// TestOutputPattern decodes a capture into --output with a time pattern,
// in JSON and in bin: the file is named by the current hour in UTC, holds
// every record whole, and a bad pattern or keep count is a usage error.
func TestOutputPattern(t *testing.T) {
	_, want, _ := runApp(t, "--metrics-listen", "", "--format", "json", "-r", ipfixPcap)
	wantLines := strings.Count(want, "\n")
	if wantLines == 0 {
		t.Fatal("no records in the reference run")
	}
	for _, format := range []string{"json", "bin"} {
		dir := t.TempDir()
		before := time.Now().UTC()
		code, stdout, stderr := runApp(t, "--metrics-listen", "", "--format", format, "-r", ipfixPcap,
			"--output", filepath.Join(dir, "flows-%Y%m%d-%H."+format), "--output-keep", "3")
		if code != 0 || stdout != "" {
			t.Fatalf("%s: exit %d, stdout %q: %s", format, code, stdout, stderr)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "flows-*."+format))
		if len(files) != 1 {
			t.Fatalf("%s: files %v", format, files)
		}
		after := time.Now().UTC()
		name := filepath.Base(files[0])
		if name != before.Format("flows-20060102-15.")+format && name != after.Format("flows-20060102-15.")+format {
			t.Errorf("%s: file %s is not named by the hour in UTC", format, name)
		}
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if got := len(readStream(t, b)); got != wantLines {
			t.Errorf("%s: %d records in the file, want %d", format, got, wantLines)
		}
		if format == "json" {
			sc := bufio.NewScanner(strings.NewReader(string(b)))
			for sc.Scan() {
				if !json.Valid(sc.Bytes()) {
					t.Fatalf("not a whole JSON record: %s", sc.Text())
				}
			}
		}
	}
	for _, args := range [][]string{
		{"--output", filepath.Join(t.TempDir(), "flows-%Q.json")},
		{"--output", filepath.Join(t.TempDir(), "%Y", "flows.json")},
		{"--output", filepath.Join(t.TempDir(), "flows-%H.json"), "--output-keep", "-1"},
	} {
		if code, _, errs := runApp(t, append([]string{"--metrics-listen", "", "-r", ipfixPcap}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
}
