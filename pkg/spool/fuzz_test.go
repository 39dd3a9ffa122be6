package spool

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzCompact feeds arbitrary bytes, behind a few good records, to the
// segment reader (Compact, which Open's scan and every read-back share).
//
// Invariants: no panic; every record it keeps passes its checksum (it
// never yields a record whose checksum failed); the records it keeps and
// the regions it skips cover the input exactly; the good records in front
// are all kept, first and unchanged.
func FuzzCompact(f *testing.F) {
	var good []byte
	for i := 0; i < 3; i++ {
		good = AppendRecord(good, payload(i))
	}
	f.Add([]byte{})
	f.Add(append([]byte{}, good...))
	f.Add(good[:len(good)-3])
	flipped := append([]byte{}, good...)
	flipped[HeaderSize+1] ^= 1
	f.Add(flipped)
	f.Add(AppendRecord(nil, bytes.Repeat([]byte{0}, 300)))
	f.Fuzz(func(t *testing.T, tail []byte) {
		data := append(append([]byte{}, good...), tail...)
		orig := append([]byte{}, data...)
		covered := 0
		n, records := Compact(data, func(r Region) {
			if r.Len <= 0 || r.Off < 0 || r.Off+r.Len > len(orig) {
				t.Fatalf("region %+v of %d bytes", r, len(orig))
			}
			covered += r.Len
		})
		if n > len(data) || covered+n != len(orig) {
			t.Fatalf("kept %d bytes, skipped %d, of %d", n, covered, len(orig))
		}
		kept, rest := 0, data[:n]
		for len(rest) > 0 {
			l, st := parse(rest)
			if st != parsed {
				t.Fatalf("record %d of the output does not pass its checks", kept)
			}
			p := rest[HeaderSize:l]
			if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
				t.Fatal("checksum")
			}
			rest = rest[l:]
			kept++
		}
		if kept != records || records < 3 {
			t.Fatalf("%d records kept, %d said", kept, records)
		}
		if !bytes.Equal(data[:len(good)], good) {
			t.Fatal("good records in front changed")
		}
	})
}
