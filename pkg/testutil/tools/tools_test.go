package tools

import (
	"runtime"
	"testing"
)

func TestRequireFindsATool(t *testing.T) {
	if p := Require(t, "go"); p == "" {
		t.Fatal("go not found, though the tests run with it")
	}
}

// TestRequireMissing: a missing tool skips outside CI and fails in CI.
func TestRequireMissing(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		var skipped, failed bool
		done := make(chan struct{})
		go func() { // Skip and Fatal end the goroutine
			defer close(done)
			ft := &fakeT{TB: t}
			defer func() { skipped, failed = ft.skipped, ft.failed }()
			Require(ft, "flowpipe-no-such-tool")
		}()
		<-done
		if ci == "" && (!skipped || failed) || ci != "" && (skipped || !failed) {
			t.Errorf("CI=%q: skipped %v, failed %v", ci, skipped, failed)
		}
	}
}

// fakeT records Skip and Fatal instead of ending the real test.
type fakeT struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Skipf(string, ...any) {
	f.skipped = true
	runtime.Goexit()
}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	runtime.Goexit()
}
