package flowpb

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code from flow.proto with the
// pinned generators (make proto-tools) and fails when the checked-in files
// differ: someone edited flow.proto without running make proto.
func TestGeneratedCodeIsFresh(t *testing.T) {
	gobin := filepath.Join(goEnv(t, "GOPATH"), "bin")
	path := gobin + string(os.PathListSeparator) + os.Getenv("PATH")
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-go-vtproto"} {
		if _, err := lookPath(tool, path); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI (make proto-tools): %v", tool, err)
			}
			t.Skipf("%s not installed (make proto-tools)", tool)
		}
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
	cmd.Env = append(os.Environ(), "PATH="+path)
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

func lookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}
