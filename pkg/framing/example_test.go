package framing_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// The bin format is a varint length, then the protobuf message: here type
// NETFLOW_V5 (field 1) and bytes 1500 (field 9).
func ExampleWriter() {
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	_ = w.WriteMessage(&flowpb.FlowMessage{Type: flowpb.FlowMessage_NETFLOW_V5, Bytes: 1500})
	_ = w.Flush()
	fmt.Printf("% x\n", buf.Bytes())
	// Output: 05 08 02 48 dc 0b
}

// A MessageReader in auto mode reads goflow2's JSON as well as bin.
func ExampleMessageReader() {
	in := `{"type":"IPFIX","bytes":1500,"src_addr":"192.0.2.1","proto":"TCP","src_net":"192.0.2.0/24"}
{"type":"SFLOW_5","bytes":64,"src_addr":"2001:db8::1","proto":"IPv6-ICMP"}
`
	r := framing.NewMessageReader(strings.NewReader(in), framing.FormatAuto, 0, nil)
	var m flowpb.FlowMessage
	for r.Read(&m) == nil {
		fmt.Println(r.Format(), m.Type, m.Bytes, len(m.SrcAddr), m.Proto, m.SrcNet)
	}
	// Output:
	// json IPFIX 1500 4 6 24
	// json SFLOW_5 64 16 58 0
}
