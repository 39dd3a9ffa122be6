package rotate

import (
	"testing"
)

// BenchmarkScanFrames is what a bin output's writer adds per 64 KiB batch
// of 200-byte records to follow record boundaries (the file write itself
// is as without rotation).
func BenchmarkScanFrames(b *testing.B) {
	rec := make([]byte, 200)
	rec[0], rec[1] = 0xc6, 0x01
	var batch []byte
	for len(batch)+len(rec) <= 64<<10 {
		batch = append(batch, rec...)
	}
	s := scanner{boundary: Frames}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		s.advance(batch)
	}
	b.ReportMetric(float64(len(batch)/len(rec))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
