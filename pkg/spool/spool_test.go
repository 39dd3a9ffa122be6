package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// payload i is 8 bytes of i and a filler of i%200 bytes, so records vary
// in size and each says which it is.
func payload(i int) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(i))
	for j := 0; j < i%200; j++ {
		b = append(b, byte(i+j))
	}
	return b
}

func index(t *testing.T, p []byte) int {
	t.Helper()
	if len(p) < 8 {
		t.Fatalf("payload of %d bytes", len(p))
	}
	i := int(binary.BigEndian.Uint64(p))
	if !slices.Equal(p, payload(i)) {
		t.Fatalf("payload %d changed", i)
	}
	return i
}

func open(t *testing.T, opt Options) *Spool {
	t.Helper()
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testOptions(dir string) Options {
	o := DefaultOptions(dir)
	o.SegmentBytes = 1 << 20
	o.MaxBytes = 64 << 20
	return o
}

// write writes records [from, to) in chunks of per records.
func write(t *testing.T, s *Spool, from, to, per int) {
	t.Helper()
	for i := from; i < to; i += per {
		var buf []byte
		n := 0
		for j := i; j < min(i+per, to); j++ {
			buf = AppendRecord(buf, payload(j))
			n++
		}
		if _, err := s.Write(buf, n, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads chunks until want records came (or EOF), acking each
// chunk unless noAck, and returns the record indexes in order.
func readAll(t *testing.T, s *Spool, want int, noAck bool) []int {
	t.Helper()
	var got []int
	buf := make([]byte, maxChunk)
	for len(got) < want {
		c, err := s.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Data == nil && c.Need > 0 {
			buf = make([]byte, c.Need)
			continue
		}
		n := 0
		for p, rest := Next(c.Data); p != nil; p, rest = Next(rest) {
			got = append(got, index(t, p))
			n++
		}
		if n != c.Records {
			t.Fatalf("chunk says %d records, holds %d", c.Records, n)
		}
		if !noAck {
			s.Ack(c.End, c.Records)
		}
	}
	return got
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond: the housekeeper deletes files in the background.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMemoryAndFiles: a reader that keeps up gets chunks from memory; one
// that falls behind reads them back from the files; either way in order,
// and acknowledged segments are deleted.
func TestMemoryAndFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testOptions(dir))
	defer s.Close()

	write(t, s, 0, 10, 5) // reader caught up: two chunks in memory
	buf := make([]byte, maxChunk)
	for i := 0; i < 2; i++ {
		c, err := s.Next(buf)
		if err != nil || c.Disk || c.Records != 5 {
			t.Fatalf("chunk %d: %+v %v", i, c, err)
		}
		s.Ack(c.End, c.Records)
	}
	// Behind: more chunks than memory holds, across several segments.
	const n = 40000
	write(t, s, 10, n, 100)
	if got := len(segments(t, dir)); got < 3 {
		t.Fatalf("%d segments", got)
	}
	got := readAll(t, s, n-10, false)
	if !slices.Equal(got, seq(10, n)) {
		t.Fatalf("read %d records, not 10..%d in order", len(got), n)
	}
	st := s.Stats()
	if st.Drained == 0 || st.Drained > n-10 {
		t.Errorf("drained %d", st.Drained)
	}
	waitFor(t, "acknowledged segments deleted", func() bool { return len(segments(t, dir)) == 1 })
	if st := s.Stats(); st.Records != 0 || st.OldestAge != 0 {
		t.Errorf("stats after acking everything: %+v", st)
	}
	// Caught up again (a Next finds nothing and waits): back to memory.
	next := make(chan Chunk)
	go func() {
		c, err := s.Next(buf)
		if err != nil {
			t.Error(err)
		}
		next <- c
	}()
	waitFor(t, "the reader to wait", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.live })
	write(t, s, n, n+3, 3)
	if c := <-next; c.Disk || c.Records != 3 {
		t.Fatalf("%+v", c)
	}
	s.CloseWrite()
	if _, err := s.Next(buf); err != io.EOF {
		t.Fatalf("after CloseWrite: %v", err)
	}
}

// TestRecovery: records not acknowledged before Close (or a crash: the
// files are the same) are delivered after a new Open, from the
// acknowledged position on.
func TestRecovery(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testOptions(dir))
	const n = 30000
	write(t, s, 0, n, 50)
	got := readAll(t, s, 10000, false) // acknowledged
	_ = readAll(t, s, 5000, true)      // read, not acknowledged: in flight at the crash
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, testOptions(dir))
	defer s.Close()
	if st := s.Stats(); st.Recovered != int64(n-len(got)) || st.Records != st.Recovered || st.OldestAge <= 0 {
		t.Fatalf("stats after reopening: %+v", st)
	}
	s.CloseWrite()
	rest := readAll(t, s, n, false)
	if !slices.Equal(rest, seq(len(got), n)) {
		t.Fatalf("after reopening: %d records from %v, want %d..%d", len(rest), rest[:1], len(got), n)
	}
	waitFor(t, "segments deleted", func() bool { return len(segments(t, dir)) == 0 })
}

// TestCrashAtAnyOffset: a segment cut at every offset of its last records
// (a write torn by a crash) delivers exactly the whole records before the
// cut and counts one torn tail.
func TestCrashAtAnyOffset(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testOptions(dir))
	write(t, s, 0, 20, 1)
	s.Close()
	seg := segments(t, dir)[0]
	full, _ := os.ReadFile(seg)
	ends := []int{segmentHeader}
	for d := full[segmentHeader:]; len(d) > 0; {
		n, _ := parse(d)
		ends = append(ends, ends[len(ends)-1]+n)
		d = d[n:]
	}
	for cut := ends[17]; cut < len(full); cut++ {
		whole := 0
		for whole+1 < len(ends) && ends[whole+1] <= cut {
			whole++
		}
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, filepath.Base(seg)), full[:cut], 0o640); err != nil {
				t.Fatal(err)
			}
			s := open(t, testOptions(d))
			defer s.Close()
			s.CloseWrite()
			if got := readAll(t, s, 100, false); !slices.Equal(got, seq(0, whole)) {
				t.Fatalf("got %v, want 0..%d", got, whole)
			}
			torn := int64(0)
			if cut != ends[whole] {
				torn = 1
			}
			if st := s.Stats(); st.TornTails != torn || st.Damaged != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestDamagedRecords: flipped bytes in a record's payload and in another's
// length: both are skipped and counted, and every other record is
// delivered, after them in the same segment and in the next.
func TestDamagedRecords(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testOptions(dir))
	const n = 20000
	write(t, s, 0, n, 100)
	s.Close()
	segs := segments(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments", len(segs))
	}
	data, _ := os.ReadFile(segs[0])
	// Records 10 and 20 of the first segment: payload and length.
	var offs []int
	for off, d := segmentHeader, data[segmentHeader:]; len(offs) < 21; {
		offs = append(offs, off)
		l, _ := parse(d)
		off += l
		d = d[l:]
	}
	data[offs[10]+HeaderSize+3] ^= 0xff
	data[offs[20]] ^= 0x04
	if err := os.WriteFile(segs[0], data, 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, testOptions(dir))
	defer s.Close()
	s.CloseWrite()
	got := readAll(t, s, n, false)
	want := slices.DeleteFunc(seq(0, n), func(i int) bool { return i == 10 || i == 20 })
	if !slices.Equal(got, want) {
		t.Fatalf("got %d records, want all but 10 and 20", len(got))
	}
	if st := s.Stats(); st.Damaged != 2 || st.TornTails != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDamagedAfterWrite: damage that appears in a segment of this run
// after it was written is found when the records are read back.
func TestDamagedAfterWrite(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testOptions(dir))
	defer s.Close()
	s.mu.Lock()
	s.live = false // as if the reader had fallen behind
	s.mu.Unlock()
	write(t, s, 0, 100, 10)
	seg := segments(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad}, segmentHeader+HeaderSize+2); err != nil { // record 0's payload
		t.Fatal(err)
	}
	f.Close()
	s.CloseWrite()
	if got := readAll(t, s, 100, false); !slices.Equal(got, seq(1, 100)) {
		t.Fatalf("got %v", got)
	}
	if st := s.Stats(); st.Damaged != 1 || st.Records != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testOptions(dir))
	_, err := Open(testOptions(dir))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	want := fmt.Sprintf("locked by process %d", os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	s.Close()
	s = open(t, testOptions(dir)) // released on Close
	s.Close()
}

func fullOptions(dir string, p FullPolicy) Options {
	o := DefaultOptions(dir)
	o.MaxBytes, o.SegmentBytes, o.Full = 4<<20, 1<<20, p
	return o
}

// fill writes records in 100-record chunks as if the reader had fallen
// behind; it may run on another goroutine.
func fill(t *testing.T, s *Spool, records int) {
	s.mu.Lock()
	s.live = false
	s.mu.Unlock()
	for i := 0; i < records; i += 100 {
		var buf []byte
		for j := i; j < i+100; j++ {
			buf = AppendRecord(buf, payload(j))
		}
		if _, err := s.Write(buf, 100, nil); err != nil {
			t.Error(err)
			return
		}
	}
}

func TestFullDropNewest(t *testing.T) {
	s := open(t, fullOptions(t.TempDir(), DropNewest))
	defer s.Close()
	s.mu.Lock()
	s.live = false
	s.mu.Unlock()
	var written []int
	refused := 0
	for i := 0; i < 60000; i += 100 {
		var buf []byte
		for j := i; j < i+100; j++ {
			buf = AppendRecord(buf, payload(j))
		}
		switch _, err := s.Write(buf, 100, nil); {
		case err == nil: // a smaller chunk may still fit after one was refused
			written = append(written, seq(i, i+100)...)
		case errors.Is(err, ErrFull):
			refused += 100
		default:
			t.Fatalf("record %d: %v", i, err)
		}
	}
	st := s.Stats()
	if refused == 0 || st.DroppedNewest != int64(refused) || st.Bytes > 4<<20 {
		t.Fatalf("refused %d, stats %+v", refused, st)
	}
	s.CloseWrite()
	if got := readAll(t, s, 60000, false); !slices.Equal(got, written) {
		t.Fatalf("read %d records, want the %d written", len(got), len(written))
	}
}

func TestFullDropOldest(t *testing.T) {
	s := open(t, fullOptions(t.TempDir(), DropOldest))
	defer s.Close()
	const n = 60000
	fill(t, s, n)
	st := s.Stats()
	if st.DroppedOldest == 0 || st.Bytes > 4<<20 || st.Records+st.DroppedOldest != n {
		t.Fatalf("stats %+v", st)
	}
	s.CloseWrite()
	got := readAll(t, s, n, false)
	if first := int(st.DroppedOldest); !slices.Equal(got, seq(first, n)) {
		t.Fatalf("read %d records from %d, want %d..%d", len(got), got[0], first, n)
	}
}

func TestFullBlock(t *testing.T) {
	s := open(t, fullOptions(t.TempDir(), Block))
	defer s.Close()
	const n = 60000
	done := make(chan struct{})
	go func() {
		defer close(done)
		fill(t, s, n)
	}()
	// The writer stops at the bound until the reader acknowledges.
	waitFor(t, "the spool to fill", func() bool { return s.Stats().Bytes > 3<<20 })
	select {
	case <-done:
		t.Fatal("writer went past a full spool")
	case <-time.After(200 * time.Millisecond):
	}
	got := readAll(t, s, n, false)
	<-done
	if !slices.Equal(got, seq(0, n)) || s.Stats().DroppedOldest+s.Stats().DroppedNewest != 0 {
		t.Fatalf("read %d records", len(got))
	}
	// Interrupt lets a blocked writer through, over the bound.
	done = make(chan struct{})
	go func() {
		defer close(done)
		fill(t, s, n)
	}()
	waitFor(t, "the spool to fill", func() bool { return s.Stats().Bytes > 3<<20 })
	s.Interrupt()
	<-done
	if st := s.Stats(); st.Records != n || st.Bytes <= 4<<20 {
		t.Fatalf("after Interrupt: %+v", st)
	}
}

// TestOptions: bad options are refused before anything is created.
func TestOptions(t *testing.T) {
	if err := DefaultOptions("x").Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {Dir: "x", MaxBytes: 1 << 20}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for _, name := range FullPolicies {
		if p, err := ParseFullPolicy(name); err != nil || p.String() != name {
			t.Errorf("%s: %v %v", name, p, err)
		}
	}
	if _, err := ParseFullPolicy("drop"); err == nil {
		t.Error("drop accepted")
	}
}

// TestRecordNoAllocs: framing a record into a buffer with room allocates
// nothing.
func TestRecordNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	p := payload(150)
	if a := testing.AllocsPerRun(100, func() { buf = AppendRecord(buf[:0], p) }); a != 0 {
		t.Fatalf("%v allocs", a)
	}
}

// TestSyncOnlyWhatWaits: records acknowledged within the sync interval
// are never fsynced; a record that waits longer is.
func TestSyncOnlyWhatWaits(t *testing.T) {
	o := testOptions(t.TempDir())
	// A record waits for an fsync once it is older than the interval: the
	// interval must be far longer than a loaded machine may stall this
	// goroutine between a write and its acknowledgement.
	o.SyncInterval = 300 * time.Millisecond
	var syncs atomic.Int32
	o.OnSync = func(time.Duration) { syncs.Add(1) }
	s := open(t, o)
	defer s.Close()
	for i := 0; i < 10; i++ { // acknowledged at once
		write(t, s, i*10, i*10+10, 10)
		readAll(t, s, 10, false)
		time.Sleep(10 * time.Millisecond)
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d fsyncs of records acknowledged at once", n)
	}
	write(t, s, 100, 110, 10) // waits
	waitFor(t, "an fsync of a waiting record", func() bool { return syncs.Load() > 0 })
}

// TestDropOldestRecovered: a spool full of a previous run's segments
// drops them for new records (none of this run is written yet).
func TestDropOldestRecovered(t *testing.T) {
	dir := t.TempDir()
	o := fullOptions(dir, DropOldest)
	s := open(t, o)
	fill(t, s, 30000) // about 3.5 MiB
	s.Close()
	s = open(t, o)
	defer s.Close()
	recovered := s.Stats().Recovered
	fill(t, s, 30000)
	st := s.Stats()
	if st.DroppedOldest == 0 || st.Records+st.DroppedOldest != recovered+30000 || st.Bytes > 4<<20 {
		t.Fatalf("recovered %d, stats %+v", recovered, st)
	}
	s.CloseWrite()
	if got := readAll(t, s, 100000, false); len(got) != int(st.Records) {
		t.Fatalf("read %d, want %d", len(got), st.Records)
	}
}
