package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binDir holds the binaries TestMain built: the four tools, devbroker and
// flowgen. Empty under -short.
var binDir string

// moduleRoot is the repository's root (where go.mod is).
var moduleRoot string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// buildAndRun builds every binary once, so that the tests run what
// `make build` ships and not an in-process copy.
func buildAndRun(m *testing.M) (int, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return 0, fmt.Errorf("go env GOMOD: %w", err)
	}
	moduleRoot = filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "flowpipe-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/flowcollect", "./cmd/flowenrich", "./cmd/flowpublish", "./cmd/flowexport",
		"./scripts/dev/devbroker", "./scripts/dev/flowgen")
	build.Dir = moduleRoot
	if b, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build: %w\n%s", err, b)
	}
	binDir = dir
	return m.Run(), nil
}

func bin(name string) string { return filepath.Join(binDir, name) }
