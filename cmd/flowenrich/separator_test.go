package main

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// TestGoflow2NewlineSeparatedBin reads goflow2's bin as it writes it by
// default (-transport.file.sep="\n": each frame followed by a newline),
// with no flag: every record comes out enriched, its own fields (custom
// ones included) untouched, in flowpipe's stream without separators.
func TestGoflow2NewlineSeparatedBin(t *testing.T) {
	f := newFixture(t)
	plain := goflow2Stream(t, 50)
	var in []byte
	for b := plain; len(b) > 0; {
		size, n := binary.Uvarint(b)
		in = append(in, b[:n+int(size)]...)
		in = append(in, '\n')
		b = b[n+int(size):]
	}
	code, out, stderr := runApp(t, f.args(), bytes.NewReader(in))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, want, stderr := runApp(t, f.args(), bytes.NewReader(plain))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	inFrames, outFrames := frames(t, plain), frames(t, out)
	if len(outFrames) != len(inFrames) || !bytes.Equal(out, want) {
		t.Fatalf("%d records in, %d out; same output as without separators: %v", len(inFrames), len(outFrames), bytes.Equal(out, want))
	}
	for i := range inFrames {
		if got, want := fields(t, outFrames[i]), fields(t, inFrames[i]); !slices.Equal(got, want) {
			t.Fatalf("record %d: untouched fields differ\n got %q\nwant %q", i, got, want)
		}
	}
}
