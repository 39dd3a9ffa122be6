package wire_test

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/wire"
)

// A stage reads the two AS numbers of an encoded record and skips the
// rest without decoding it.
func ExampleAppendFields() {
	msg := (&flowpb.FlowMessage{Bytes: 1500, SrcAs: 64500, DstAs: 64501, SrcAsName: "EXAMPLE"}).AppendMarshal(nil)
	ases := wire.NewFieldSet(flowpb.FieldSrcAs, flowpb.FieldDstAs)
	found, err := wire.AppendFields(nil, msg, ases)
	for _, f := range found {
		if f.Type == protowire.VarintType {
			fmt.Println(f.Num, wire.Varint(msg[f.Value:f.End]))
		}
	}
	fmt.Println(err)
	// Output:
	// 14 64500
	// 15 64501
	// <nil>
}

// Frames are a varint length and a body; NextFrame says what a buffer
// holds at an offset.
func ExampleNextFrame() {
	stream := []byte{3, 0x08, 0x02, 0x00, 5, 0x48}
	body, end, _, err := wire.NextFrame(stream, 0, 1<<20)
	fmt.Printf("% x %d %v\n", body, end, err)
	_, end, need, err := wire.NextFrame(stream, end, 1<<20)
	fmt.Println(end, need, err) // the second frame needs 6 bytes; 2 are here
	// Output:
	// 08 02 00 4 <nil>
	// 0 6 <nil>
}

// A JSON object read key by key: the values a caller wants are read, the
// others skipped (and checked).
func ExampleJSONScanner() {
	var s wire.JSONScanner
	s.Reset([]byte(`{"as_src": 15169, "tags": {"a": [1, 2]}, "bytes": "4500"}`))
	more, err := s.Open('{')
	for more && err == nil {
		key, _, kerr := s.Key()
		if kerr != nil {
			err = kerr
			break
		}
		switch string(key) {
		case "as_src", "bytes":
			var v uint64
			v, err = s.Uint(1<<64 - 1)
			fmt.Println(string(key), v)
		default:
			err = s.Skip()
		}
		if err == nil {
			more, err = s.More('}')
		}
	}
	fmt.Println(err, s.AtEnd())
	// Output:
	// as_src 15169
	// bytes 4500
	// <nil> true
}
