// Package wire reads and writes the two encodings of a flow record at the
// level of bytes, for every flowpipe stage: protobuf's wire format (varints,
// tags, fields, and the varint-length-delimited frames of a stream) and
// JSON (tokens, strings, numbers). It knows no schema: field numbers, names
// and kinds come from pkg/flowpb, which is generated from flow.proto.
//
// Nothing here allocates on the per-record path, and everything that reads
// input bounds-checks it first: malformed bytes give an error (or false),
// never a panic.
//
// # Protobuf fields
//
// [AppendFields] walks the fields of one encoded message and collects the
// ones a stage cares about, named by a [FieldSet], into the caller's
// buffer; it skips every other field without decoding it. Its fast path
// decodes one- and two-byte tags, varints and short length-delimited
// values inline; anything else goes through protowire. It accepts exactly
// what protowire's field walk accepts (groups included), so a stage that
// scans a record accepts what a full decoder would:
//
//	ases := wire.NewFieldSet(flowpb.FieldSrcAs, flowpb.FieldDstAs) // once
//	found, err := wire.AppendFields(found[:0], msg, ases)           // per record
//	if err != nil { ... } // malformed: the byte offset is in err
//	for _, f := range found {
//		if f.Type == protowire.VarintType {
//			v := wire.Varint(msg[f.Value:f.End]) // f.Num's value
//		}
//	}
//
// The Append functions write single fields as proto3 does (zero values
// omitted), forwards, in one pass; flowpb's generated AppendMarshal is made
// of them.
//
// # Frames
//
// A flow stream is a sequence of frames: a varint length, then that many
// bytes of message (Go's protodelim, goflow2's -format=bin). [NextFrame]
// finds the frame at an offset of a buffer, bounded by a maximum size, and
// says how many bytes it still needs when the buffer holds only part of
// it; [ScanFrames] walks every whole frame of a buffer and checks each
// body with [WellFormed2]. The errors name what went wrong ([ErrBadPrefix],
// [ErrTooLarge], [ErrBadMessage]); the caller adds the stream offset.
//
// [WellFormed] is the fast check that a body is a sequence of protobuf
// fields (tags, varints, lengths) without decoding it, for stages that pass
// records through; [WellFormed2] checks two bodies in two thirds of the
// time of two calls.
//
// # JSON
//
// A [JSONScanner] reads one JSON text in memory token by token, checking
// the grammar of RFC 8259 as it goes: objects and arrays with [JSONScanner.Open],
// [JSONScanner.Key] and [JSONScanner.More] (with [JSONScanner.KeyIs] and
// [JSONScanner.Comma], their fast paths for a known layout), strings with [JSONScanner.String]
// (raw, unescaped on demand by [UnquoteJSON]), integers with
// [JSONScanner.Uint] and [JSONScanner.Int], true and false with
// [JSONScanner.Bool], any value with [JSONScanner.Skip]. It builds nothing:
// a value it is not asked to read is skipped, and [JSONScanner.Pos] gives
// the byte offsets a caller needs to copy a member as it is. Errors are
// *[SyntaxError], with the byte offset where the text stopped making sense.
//
//	var s wire.JSONScanner
//	s.Reset(line)
//	more, err := s.Open('{')
//	for more && err == nil {
//		key, _, err := s.Key()
//		...read the value, or s.Skip() it...
//		more, err = s.More('}')
//	}
//	if err == nil && !s.AtEnd() { ... } // something after the object
//
// [AppendJSONString] writes a string as JSON, the same bytes whichever stage
// writes it.
//
// # Who uses what
//
// pkg/framing reads and writes streams (Reader on NextFrame, the JSON
// layout on JSONScanner and AppendJSONString); pkg/enrich splices records
// with AppendFields; pkg/export reads the counted fields with AppendFields
// and pmacct's JSON with JSONScanner; pkg/flowpb's generated AppendMarshal
// is made of the Append functions; a relay that passes frames through
// unread (flowpublish) checks them with ScanFrames.
package wire
