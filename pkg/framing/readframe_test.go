package framing_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

func TestReadFrame(t *testing.T) {
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	msgs := []*flowpb.FlowMessage{{Bytes: 1}, {Bytes: 2, SrcAddr: []byte{192, 0, 2, 1}}}
	for _, m := range msgs {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	r := framing.NewMessageReader(&buf, framing.FormatAuto, 0, nil)
	if f, err := r.Detect(); err != nil || f != framing.FormatBin {
		t.Fatalf("Detect() = %v, %v", f, err)
	}
	var offset int64
	for i, want := range msgs {
		frame, off, err := r.ReadFrame()
		if err != nil || off != offset {
			t.Fatalf("frame %d: offset %d, err %v; want offset %d", i, off, err, offset)
		}
		if !bytes.Equal(frame, want.AppendMarshal(nil)) || !bytes.Equal(r.Raw(), frame) {
			t.Fatalf("frame %d: % x", i, frame)
		}
		offset = r.Offset()
	}
	if _, _, err := r.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}

	j := framing.NewMessageReader(strings.NewReader(`{"type":"IPFIX"}`+"\n"), framing.FormatAuto, 0, nil)
	if _, _, err := j.ReadFrame(); !errors.Is(err, framing.ErrNotBin) {
		t.Fatalf("JSON stream: %v, want ErrNotBin", err)
	}
	var m flowpb.FlowMessage
	if err := j.Read(&m); err != nil || m.Type != flowpb.FlowMessage_IPFIX {
		t.Fatalf("Read after ReadFrame refused: %v %v", err, &m)
	}
}
