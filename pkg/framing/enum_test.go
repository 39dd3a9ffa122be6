package framing_test

import (
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// TestUnnamedEnumValuesRoundTrip: proto3 enums are open int32s; a value
// without a name (negative too) is written as its number and must parse
// back (found by publish's FuzzRecord).
func TestUnnamedEnumValuesRoundTrip(t *testing.T) {
	for _, v := range []int32{-1014559204, -1, 5, 2147483647, -2147483648} {
		m := &flowpb.FlowMessage{
			Type:          flowpb.FlowMessage_FlowType(v),
			FlowDirection: flowpb.FlowMessage_FlowDirection(v),
			LayerStack:    []flowpb.FlowMessage_LayerStack{flowpb.FlowMessage_LayerStack(v), flowpb.FlowMessage_IPv4},
		}
		line := framing.AppendJSON(nil, m, nil)
		var back flowpb.FlowMessage
		if err := framing.ParseJSON(line, &back, nil); err != nil {
			t.Fatalf("%d: %v\n%s", v, err, line)
		}
		if back.Type != m.Type || back.FlowDirection != m.FlowDirection || len(back.LayerStack) != 2 || back.LayerStack[0] != m.LayerStack[0] {
			t.Fatalf("%d: got %v from %s", v, &back, line)
		}
	}
	var m flowpb.FlowMessage
	if err := framing.ParseJSON([]byte(`{"type":-7}`), &m, nil); err != nil || m.Type != -7 {
		t.Fatalf("bare negative number: %v %v", err, m.Type)
	}
	if err := framing.ParseJSON([]byte(`{"type":"-2147483649"}`), &m, nil); err == nil {
		t.Fatal("out-of-range enum accepted")
	}
}
