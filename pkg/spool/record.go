package spool

import (
	"encoding/binary"
	"hash/crc32"
)

// A record on disk is an 8-byte header and its payload:
//
//	bytes 0-2  payload length, little-endian (at most MaxPayload)
//	byte  3    check of the length (so that a damaged length is seen as
//	           damaged, and a reader can find the next record after it)
//	bytes 4-7  CRC-32C (Castagnoli) of the payload, little-endian
//
// Records follow each other with no padding. A reader trusts a record only
// when both checks pass; after a damaged one it looks for the next offset
// where both pass again.

// HeaderSize is the bytes a record adds to its payload.
const HeaderSize = 8

// MaxPayload is the largest payload a record holds.
const MaxPayload = 1<<24 - 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// lengthCheck is the byte stored beside a length: a multiplicative hash,
// so that one flipped bit in the length changes it.
func lengthCheck(n uint32) byte { return byte((n*0x9e3779b1)>>24) ^ 0xa5 }

// BeginRecord reserves a record header at the end of dst; append the
// payload, then call EndRecord with the length dst had before.
func BeginRecord(dst []byte) []byte {
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
}

// EndRecord fills in the header of the record that starts at dst[start:].
// It panics if the payload exceeds MaxPayload: callers bound their records.
func EndRecord(dst []byte, start int) []byte {
	payload := dst[start+HeaderSize:]
	n := uint32(len(payload))
	if n > MaxPayload {
		panic("spool: record payload too large")
	}
	h := dst[start : start+HeaderSize]
	binary.LittleEndian.PutUint32(h, n|uint32(lengthCheck(n))<<24)
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// AppendRecord appends payload as one record.
func AppendRecord(dst, payload []byte) []byte {
	start := len(dst)
	dst = append(BeginRecord(dst), payload...)
	return EndRecord(dst, start)
}

// Next splits the first record off data, which must hold whole records
// that were checked (as every Chunk's Data is). It returns a nil rest when
// data is exhausted or malformed.
func Next(data []byte) (payload, rest []byte) {
	if len(data) < HeaderSize {
		return nil, nil
	}
	end := HeaderSize + int(binary.LittleEndian.Uint32(data)&MaxPayload)
	if end > len(data) {
		return nil, nil
	}
	return data[HeaderSize:end:end], data[end:]
}

type parseStatus int

const (
	parsed  parseStatus = iota
	short               // data ends inside the header or the payload
	damaged             // a check failed
)

// parse checks the record at the start of data and returns its length
// with its header.
func parse(data []byte) (n int, st parseStatus) {
	if len(data) < HeaderSize {
		return 0, short
	}
	w := binary.LittleEndian.Uint32(data)
	size := w & MaxPayload
	if byte(w>>24) != lengthCheck(size) {
		return 0, damaged
	}
	end := HeaderSize + int(size)
	if end > len(data) {
		return end, short
	}
	if crc32.Checksum(data[HeaderSize:end], castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
		return 0, damaged
	}
	return end, parsed
}

// Region is a run of bytes that holds no trustworthy record.
type Region struct {
	Off, Len int
	// Tail is set when the region runs to the end of the data: what a
	// crash in the middle of a write leaves.
	Tail bool
}

// walk calls rec for each record of data that passes both checks, in
// order, with its offset and length (header included), and bad for each
// region in between that does not: after a damaged record it resumes at
// the next offset where a whole record passes both checks. It returns the
// number of records found.
func walk(data []byte, rec func(off, n int), bad func(Region)) int {
	records := 0
	// A false header check (one offset in 256) costs a checksum of the
	// length it claims; garbage of many megabytes could cost hours. Past
	// this budget the rest of the data is reported as one region.
	budget := 4*len(data) + 1<<20
	for off := 0; off < len(data); {
		n, st := parse(data[off:])
		if st == parsed {
			rec(off, n)
			records++
			off += n
			continue
		}
		next := resync(data, off+1, &budget)
		bad(Region{Off: off, Len: next - off, Tail: next == len(data)})
		off = next
	}
	return records
}

// resync returns the first offset from at on where a whole record passes
// both checks, or len(data) (also once budget bytes were checksummed).
func resync(data []byte, at int, budget *int) int {
	for i := at; i+HeaderSize <= len(data) && *budget > 0; i++ {
		w := binary.LittleEndian.Uint32(data[i:])
		size := int(w & MaxPayload)
		if byte(w>>24) != lengthCheck(uint32(size)) || i+HeaderSize+size > len(data) {
			continue
		}
		*budget -= size
		if _, st := parse(data[i:]); st == parsed {
			return i
		}
	}
	return len(data)
}

// Compact checks the records of data, moves those that pass both checks
// to its front (in order) and returns how many bytes and records they
// fill, and the damaged regions it removed (offsets in the original data).
func Compact(data []byte, bad func(Region)) (n, records int) {
	w := 0
	records = walk(data, func(off, l int) {
		if w != off {
			copy(data[w:], data[off:off+l])
		}
		w += l
	}, bad)
	return w, records
}
