package testutil_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductDoesNotImportTestutil keeps the public boundary visible: the
// tools and product packages build without any of the test support tree.
func TestProductDoesNotImportTestutil(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}: {{join .Deps \" \"}}",
		"github.com/flowpipe/flowpipe/cmd/...", "github.com/flowpipe/flowpipe/pkg/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const tree = "github.com/flowpipe/flowpipe/pkg/testutil"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ": ")
		if strings.HasPrefix(pkg, tree) {
			continue
		}
		for _, d := range strings.Fields(deps) {
			if strings.HasPrefix(d, tree) {
				t.Errorf("%s imports %s (test support belongs in _test.go files)", pkg, d)
			}
		}
	}
}
