package spool

import (
	"bytes"
	"testing"
)

// BenchmarkWrite is the writer's cost per record: framing 200-byte
// payloads (a flow record with its length, as flowpublish spools them)
// into 256 KiB chunks and writing them to segment files, with a reader
// that keeps up (chunks also go to it from memory; it acknowledges
// them, so segments are deleted) or none (everything to the files only,
// a broker outage). Fsyncs run every second as by default. It reports
// records/s, MB/s of file writes and the bytes each record takes on disk.
func BenchmarkWrite(b *testing.B) {
	for _, reader := range []bool{true, false} {
		name := "reader=none"
		if reader {
			name = "reader=live"
		}
		b.Run(name, func(b *testing.B) {
			opt := DefaultOptions(b.TempDir())
			opt.MaxBytes = 1 << 40
			s, err := Open(opt)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			done := make(chan struct{})
			if reader {
				go func() {
					defer close(done)
					for {
						c, err := s.Next(nil)
						if err != nil {
							return
						}
						s.Ack(c.End, c.Records)
					}
				}()
			} else {
				s.mu.Lock()
				s.live = false
				s.mu.Unlock()
				close(done)
			}
			p := bytes.Repeat([]byte{0x5a}, 200)
			buf := make([]byte, 0, maxChunk)
			n, written := 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if len(buf)+HeaderSize+len(p) > cap(buf) {
					if _, err := s.Write(buf, n, nil); err != nil {
						b.Fatal(err)
					}
					written += len(buf)
					buf, n = make([]byte, 0, maxChunk), 0 // handed chunks must stay unchanged
				}
				buf = AppendRecord(buf, p)
				n++
			}
			if _, err := s.Write(buf, n, nil); err != nil {
				b.Fatal(err)
			}
			written += len(buf)
			s.CloseWrite()
			<-done
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "records/s")
			b.ReportMetric(float64(written)/sec/1e6, "MB/s")
			b.ReportMetric(float64(written)/float64(b.N), "bytes/record")
		})
	}
}
