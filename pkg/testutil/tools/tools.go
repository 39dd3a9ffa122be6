// Package tools finds the external programs tests run (softflowd, tshark,
// kcat, promtool, ...). A missing program skips the test, or fails it when
// the CI environment variable is set: CI installs every one (.ci/run).
package tools

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of program name, found on PATH; when it is
// missing, it skips t, or fails it under CI.
func Require(t testing.TB, name string) string {
	t.Helper()
	path, ok := Optional(t, name)
	if !ok {
		t.Skipf("%s not installed", name)
	}
	return path
}

// Optional returns the path of program name and true. When it is missing
// it returns false, so that the test skips only the part that needs it,
// or, under CI, fails t.
func Optional(t testing.TB, name string) (string, bool) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path, true
	}
	if InCI() {
		t.Fatalf("%s is required in CI: %v", name, err)
	}
	return "", false
}

// InCI reports whether the tests run in CI, where nothing may be skipped
// for a missing tool.
func InCI() bool { return os.Getenv("CI") != "" }
