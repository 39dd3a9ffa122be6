// Package flowpb holds the flow record shared by every flowpipe tool.
//
// FlowMessage is wire-compatible with goflow2 v2's flowpb.FlowMessage. The
// generated vtprotobuf methods (MarshalVT, UnmarshalVT, SizeVT) are the ones
// to use on hot paths: they neither reflect nor allocate beyond the output.
package flowpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size+pool+clone+equal,pool=github.com/flowpipe/flowpipe/pkg/flowpb.FlowMessage flow.proto
