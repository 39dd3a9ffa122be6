package framing

import (
	"slices"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// TestReadersOfOtherKinds: the readers fieldgen picks for field kinds
// flow.proto has no field of yet (int64, lists of strings, of bytes, of
// signed integers) read what the writers write. TestAddFieldToProto
// exercises them through generated code.
func TestReadersOfOtherKinds(t *testing.T) {
	parse := func(text string, read func(p *jsonParser) error) {
		t.Helper()
		p := jsonParser{m: &flowpb.FlowMessage{}}
		p.s.Reset([]byte(text))
		if err := read(&p); err != nil || !p.s.AtEnd() {
			t.Fatalf("%s: %v", text, err)
		}
	}
	var i64 int64
	parse(`-9223372036854775808`, func(p *jsonParser) error { return p.i64(&i64) })
	if i64 != -1<<63 {
		t.Errorf("i64: %d", i64)
	}
	var ints []int32
	parse(`[-1, 2147483647, "-5", null]`, func(p *jsonParser) error { return parseInts(p, &ints, -1<<31, 1<<31-1) })
	if !slices.Equal(ints, []int32{-1, 1<<31 - 1, -5, 0}) {
		t.Errorf("ints: %v", ints)
	}
	var strs []string
	parse(`["a", "\u00e9", ""]`, func(p *jsonParser) error { return p.strings(&strs) })
	if !slices.Equal(strs, []string{"a", "é", ""}) {
		t.Errorf("strings: %q", strs)
	}
	var bs [][]byte
	parse(`["192.0.2.1", "deadbeef01", ""]`, func(p *jsonParser) error { return p.bytesTexts(&bs) })
	if len(bs) != 3 || string(bs[0]) != "\xc0\x00\x02\x01" || string(bs[1]) != "\xde\xad\xbe\xef\x01" || len(bs[2]) != 0 {
		t.Errorf("bytes: %x", bs)
	}
	p := jsonParser{m: &flowpb.FlowMessage{}}
	p.s.Reset([]byte(`[1, "x"]`))
	if err := parseInts(&p, &ints, -10, 10); err == nil {
		t.Error("a string in a list of integers accepted")
	}
}
