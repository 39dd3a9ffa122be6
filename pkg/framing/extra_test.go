package framing_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// TestJSONExtraPassesThrough: the members of a JSON line that are no flow
// field (keys of other producers, custom fields without a mapping here)
// come out of a JSON writer byte for byte, after the flow fields; a
// custom field the options map comes out as that field.
func TestJSONExtraPassesThrough(t *testing.T) {
	in := `{"type":"IPFIX","in_if_name" : "ge-0/0/1" ,"bytes":10,"x":{"a":[1, 2.5e3,null]},"app_name":"web","src_as_name":"Ex","q\u0022":"\u00e9"}` + "\n" +
		`{"bytes":11}` + "\n"
	opts := &framing.JSONOptions{Custom: []framing.CustomField{{Name: "app_name", Number: 1203, Render: framing.RenderString}}}
	r := framing.NewMessageReader(strings.NewReader(in), framing.FormatAuto, 0, opts)
	var out bytes.Buffer
	w := framing.NewMessageWriter(&out, framing.FormatJSON, opts)
	var m flowpb.FlowMessage
	var extras []string
	for r.Read(&m) == nil {
		extras = append(extras, string(r.Extra()))
		if err := w.WriteExtra(&m, r.Extra()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	wantExtra := `"in_if_name" : "ge-0/0/1","x":{"a":[1, 2.5e3,null]},"q\u0022":"\u00e9"`
	if len(extras) != 2 || extras[0] != wantExtra || extras[1] != "" {
		t.Fatalf("Extra() = %q, want %q then nothing", extras, wantExtra)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasSuffix(lines[0], `,"src_as_name":"Ex","app_name":"web",`+wantExtra+`}`) {
		t.Errorf("line 1: %s", lines[0])
	}
	base := string(framing.AppendJSON(nil, &flowpb.FlowMessage{Bytes: 11}, opts))
	if lines[1] != base {
		t.Errorf("line 2: %s, want %s", lines[1], base)
	}

	// bin has no place for them: the record itself goes through.
	var bin bytes.Buffer
	bw := framing.NewMessageWriter(&bin, framing.FormatBin, nil)
	if err := bw.WriteExtra(&flowpb.FlowMessage{Bytes: 1}, []byte(wantExtra)); err != nil || bw.Flush() != nil {
		t.Fatal(err)
	}
	if got := bin.Bytes(); !bytes.Equal(got, (&flowpb.FlowMessage{Bytes: 1}).AppendDelimited(nil)) {
		t.Errorf("bin: % x", got)
	}
}

// TestJSONLayoutHasEveryField: AppendJSON writes every field of the table
// generated from flow.proto: goflow2's always, in flow.proto's order, the
// others when set.
func TestJSONLayoutHasEveryField(t *testing.T) {
	empty := string(framing.AppendJSON(nil, &flowpb.FlowMessage{}, nil))
	at := 0
	for _, f := range flowpb.Fields() {
		i := strings.Index(empty, `"`+f.Name+`":`)
		switch {
		case f.Goflow2 && i < at:
			t.Errorf("goflow2 field %s missing or out of order in %s", f.Name, empty)
		case !f.Goflow2 && i >= 0:
			t.Errorf("unset field %s written: %s", f.Name, empty)
		}
		at = max(at, i)
	}
}

// TestJSONBytesFields: flowpipe's bytes fields (NAT addresses) are address
// text when they are addresses, hex otherwise, and read back as written.
func TestJSONBytesFields(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		text string
	}{
		{[]byte{192, 0, 2, 9}, `"192.0.2.9"`},
		{addrBytes("2001:db8::9"), `"2001:db8::9"`},
		{[]byte{0xde, 0xad, 0xbe, 0xef, 0, 1}, `"deadbeef0001"`},
		{[]byte{1}, `"01"`},
	} {
		m := &flowpb.FlowMessage{PostNatSrcAddr: tc.in}
		line := framing.AppendJSON(nil, m, nil)
		if !bytes.HasSuffix(line, []byte(`,"post_nat_src_addr":`+tc.text+`}`)) {
			t.Errorf("% x: %s", tc.in, line)
		}
		var back flowpb.FlowMessage
		if err := framing.ParseJSON(line, &back, nil); err != nil || !bytes.Equal(back.PostNatSrcAddr, tc.in) {
			t.Errorf("% x: read back % x, %v", tc.in, back.PostNatSrcAddr, err)
		}
	}
	var m flowpb.FlowMessage
	for _, bad := range []string{`{"post_nat_src_addr":"1.2.3"}`, `{"post_nat_src_addr":"abc"}`, `{"post_nat_src_addr":"zz"}`, `{"post_nat_src_addr":1}`} {
		if err := framing.ParseJSON([]byte(bad), &m, nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
