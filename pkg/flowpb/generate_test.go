package flowpb_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// TestGeneratedCodeIsFresh regenerates the Go code from flow.proto with the
// pinned generators (make proto-tools) and fieldgen, and fails when the
// checked-in files differ: someone edited flow.proto without running make
// proto.
func TestGeneratedCodeIsFresh(t *testing.T) {
	protoTools(t)
	out := t.TempDir()
	runProtoc(t, "flow.proto", out)
	for _, f := range []string{"flow.pb.go", "flow_vtproto.pb.go"} {
		sameFile(t, filepath.Join(out, f), f)
	}
	// fieldgen reads the descriptor compiled into this package: it is fresh
	// once flow.pb.go is.
	flowpbOut, framingOut := t.TempDir(), t.TempDir()
	goRun(t, nil, "run", "-tags", "fieldgen", "./internal/fieldgen", "-flowpb", flowpbOut, "-framing", framingOut)
	sameFile(t, filepath.Join(flowpbOut, "fields.pb.go"), "fields.pb.go")
	sameFile(t, filepath.Join(framingOut, "fields.pb.go"), filepath.Join("..", "framing", "fields.pb.go"))
}

func sameFile(t *testing.T, fresh, checkedIn string) {
	t.Helper()
	want, err := os.ReadFile(fresh)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(checkedIn)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run make proto", checkedIn)
	}
}

// protoTools puts the generators on PATH, or skips (fails in CI).
func protoTools(t *testing.T) {
	t.Helper()
	// make proto-tools installs the generators into GOPATH/bin.
	t.Setenv("PATH", filepath.Join(goEnv(t, "GOPATH"), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-go-vtproto"} {
		tools.Require(t, tool)
	}
}

// runProtoc runs gen.go's protoc line on proto (in its own directory),
// writing into out.
func runProtoc(t *testing.T, proto, out string) {
	t.Helper()
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
		args[i] = strings.NewReplacer("--go_out=.", "--go_out="+out, "--go-vtproto_out=.", "--go-vtproto_out="+out,
			"--proto_path=.", "--proto_path="+filepath.Dir(proto)).Replace(a)
	}
	args[len(args)-1] = filepath.Base(proto)
	cmd := exec.Command("protoc", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
}

// goRun runs the go command in this directory.
func goRun(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// TestAddFieldToProto is the promise of flow.proto's header: adding a
// field and regenerating is all it takes for every stage to carry, splice,
// key, export and render it. It appends fields of every supported kind
// to a copy of flow.proto, regenerates everything from it (protoc, then fieldgen) and
// runs TestEveryFieldCarried on the regenerated code through a build
// overlay: no other file changes.
func TestAddFieldToProto(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the stages (-short)")
	}
	protoTools(t)
	dir := t.TempDir()
	src, err := os.ReadFile("flow.proto")
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.LastIndexByte(src, '}')
	added := `  string carried_tenant = 1990;
  uint32 carried_vrf_id = 1991;
  bytes carried_peer_addr = 1992;
  int64 carried_offset = 1993;
  repeated string carried_tags = 1994;
  repeated bytes carried_hops = 1995;
  repeated int32 carried_deltas = 1996;
  map<string, string> carried_attrs = 1997;
`
	proto := filepath.Join(dir, "flow.proto")
	if err := os.WriteFile(proto, slices.Concat(src[:end], []byte(added), src[end:]), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(dir, "gen")
	flowpbOut, framingOut := filepath.Join(dir, "flowpb"), filepath.Join(dir, "framing")
	for _, d := range []string{gen, flowpbOut, framingOut} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runProtoc(t, proto, gen)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	replace := map[string]string{
		filepath.Join(here, "flow.pb.go"):         filepath.Join(gen, "flow.pb.go"),
		filepath.Join(here, "flow_vtproto.pb.go"): filepath.Join(gen, "flow_vtproto.pb.go"),
	}
	overlay := filepath.Join(dir, "overlay.json")
	writeOverlay(t, overlay, replace)
	goRun(t, nil, "run", "-overlay", overlay, "-tags", "fieldgen", "./internal/fieldgen", "-flowpb", flowpbOut, "-framing", framingOut)
	replace[filepath.Join(here, "fields.pb.go")] = filepath.Join(flowpbOut, "fields.pb.go")
	replace[filepath.Join(here, "..", "framing", "fields.pb.go")] = filepath.Join(framingOut, "fields.pb.go")
	writeOverlay(t, overlay, replace)
	goRun(t, []string{addedFieldsEnv + "=carried_tenant,carried_vrf_id,carried_peer_addr,carried_offset,carried_tags,carried_hops,carried_deltas,carried_attrs"},
		"test", "-overlay", overlay, "-count=1", "-run", "^TestEveryFieldCarried$", ".")
}

func writeOverlay(t *testing.T, path string, replace map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func goEnv(t *testing.T, key string) string {
	b, err := exec.Command("go", "env", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
