package flowpb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// TestGeneratedCodeIsFresh regenerates the Go code from flow.proto with the
// pinned generators (make proto-tools) and fails when the checked-in files
// differ: someone edited flow.proto without running make proto.
func TestGeneratedCodeIsFresh(t *testing.T) {
	// make proto-tools installs the generators into GOPATH/bin.
	t.Setenv("PATH", filepath.Join(goEnv(t, "GOPATH"), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-go-vtproto"} {
		tools.Require(t, tool)
	}
	out := t.TempDir()
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate protoc "); ok {
			args = strings.Fields(rest)
		}
	}
	if args == nil {
		t.Fatal("no go:generate protoc line in gen.go")
	}
	for i, a := range args {
		args[i] = strings.NewReplacer("--go_out=.", "--go_out="+out, "--go-vtproto_out=.", "--go-vtproto_out="+out).Replace(a)
	}
	cmd := exec.Command("protoc", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	for _, f := range []string{"flow.pb.go", "flow_vtproto.pb.go"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make proto", f)
		}
	}
}

func goEnv(t *testing.T, key string) string {
	b, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
