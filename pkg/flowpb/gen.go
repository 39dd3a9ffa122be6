// Package flowpb holds the flow record shared by every flowpipe tool.
//
// FlowMessage is wire-compatible with goflow2 v2's flowpb.FlowMessage. The
// generated vtprotobuf methods (MarshalVT, UnmarshalVT, SizeVT) and
// AppendMarshal/AppendDelimited are the ones to use on hot paths: they
// neither reflect nor allocate beyond the output.
//
// Everything that depends on the list of fields is generated from
// flow.proto by make proto (go generate): protoc writes the message, then
// fieldgen writes the Field* constants, the field table (FieldByName,
// FieldByNumber, Fields), Scalar and AppendMarshal here, and the JSON
// layout in pkg/framing. To add a field: append it to flow.proto with a
// new number, run make proto, done.
package flowpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-vtproto_out=. --go-vtproto_opt=paths=source_relative,features=marshal+unmarshal+unmarshal_unsafe+size+pool+clone+equal,pool=github.com/flowpipe/flowpipe/pkg/flowpb.FlowMessage flow.proto
//go:generate go run -tags fieldgen ./internal/fieldgen -flowpb . -framing ../framing
