package framing_test

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// TestCloneSurvivesTheNextRead keeps the first record of a stream, reads a
// second one over the same buffer, and checks the kept one is unchanged.
func TestCloneSurvivesTheNextRead(t *testing.T) {
	first := &flowpb.FlowMessage{SrcAddr: []byte{192, 0, 2, 1}, SrcCountry: "NL", SrcAsName: "EXAMPLE-ONE",
		SrcNetName: "web", SrcNetPrefix: "192.0.2.0/25", SrcNetLabels: map[string]string{"site": "ams1"}}
	second := &flowpb.FlowMessage{SrcAddr: []byte{198, 51, 100, 9}, SrcCountry: "DE", SrcAsName: "EXAMPLE-TWO",
		SrcNetName: "db", SrcNetPrefix: "198.51.1.0/24", SrcNetLabels: map[string]string{"site": "fra1"}}
	for _, format := range []framing.Format{framing.FormatBin, framing.FormatJSON} {
		var buf bytes.Buffer
		w := framing.NewMessageWriter(&buf, format, nil)
		_ = w.Write(first)
		_ = w.Write(second)
		_ = w.Flush()
		r := framing.NewMessageReader(bytes.NewReader(buf.Bytes()), format, 0, nil)
		var m flowpb.FlowMessage
		if err := r.Read(&m); err != nil {
			t.Fatal(err)
		}
		kept := framing.Clone(&m)
		if err := r.Read(&m); err != nil {
			t.Fatal(err)
		}
		if !kept.EqualVT(first) {
			t.Errorf("%v: kept record changed by the next Read:\n got %v\nwant %v", format, kept, first)
		}
	}
}

// TestCloneCoversEveryStringField fails when a string field is added to
// flow.proto without being copied by Clone.
func TestCloneCoversEveryStringField(t *testing.T) {
	fields := (&flowpb.FlowMessage{}).ProtoReflect().Descriptor().Fields()
	strs := 0
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); fd.Kind() == protoreflect.StringKind && !fd.IsMap() {
			strs++
		}
	}
	if strs != 8 {
		t.Fatalf("flow.proto has %d string fields, Clone copies 8: update Clone", strs)
	}
}
