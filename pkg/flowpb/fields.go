package flowpb

import (
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Field describes one field of FlowMessage. The table of every field
// (FieldByName, FieldByNumber, Fields), the Field* number constants,
// Scalar and AppendMarshal are generated from flow.proto into
// fields.pb.go: adding a field there and running make proto is all it
// takes for every stage to carry, key, export and render it.
type Field struct {
	Number protowire.Number
	// Name is the field's name in flow.proto, which is also its JSON key.
	Name string
	Kind protoreflect.Kind
	// List is set for a repeated field, Map for a map<string, string>.
	List, Map bool
	// Goflow2 is set for the fields of goflow2's own record (numbers below
	// 1000), which its JSON layout always writes, in flow.proto's order.
	Goflow2 bool
}

// Singular reports whether the field holds one value (not a list or map),
// which Scalar can read.
func (f Field) Singular() bool { return !f.List && !f.Map }

// Numeric reports whether the field's values are integers (numbers,
// enums, bools) rather than strings or bytes.
func (f Field) Numeric() bool {
	return f.Kind != protoreflect.StringKind && f.Kind != protoreflect.BytesKind && f.Kind != protoreflect.MessageKind
}

func boolUint(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}
