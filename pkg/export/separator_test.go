package export

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// TestValueWithNewline: a Kafka value holding one record of goflow2's
// bin file output as it is (the frame and its newline separator) parses
// as the frame.
func TestValueWithNewline(t *testing.T) {
	m := &flowpb.FlowMessage{Type: flowpb.FlowMessage_SFLOW_5, Bytes: 1500, Packets: 1, SamplingRate: 10, SrcAs: 64500, DstAs: 64501}
	body, _ := m.MarshalVT()
	value := append(protowire.AppendBytes(nil, body), '\n')
	var p Parser
	var r Record
	if err := p.Parse(value, &r); err != nil {
		t.Fatal(err)
	}
	if r.Format != FormatBin || r.SrcAS != 64500 || r.DstAS != 64501 || r.Bytes != 1500 {
		t.Fatalf("%+v", r)
	}
}
