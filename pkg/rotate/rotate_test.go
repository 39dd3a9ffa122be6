package rotate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 29, 0, 59, 58, 0, time.UTC)

func TestPatternNames(t *testing.T) {
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, tc := range []struct {
		pattern, want string
		next          time.Time
	}{
		{"/var/log/flows-%Y%m%d-%H.json", "/var/log/flows-20260203-04.json", time.Date(2026, 2, 3, 5, 0, 0, 0, time.UTC)},
		{"flows-%y%j.%M%S", "flows-26034.0506", at.Add(time.Second)},
		{"d/f-%s-100%%.json", "d/f-1770091506-100%.json", at.Add(time.Second)},
		{"f-%Y-%m.json", "f-2026-02.json", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)},
		{"f-%Y.json", "f-2026.json", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"f-%Y%m%d.json", "f-20260203.json", time.Date(2026, 2, 4, 0, 0, 0, 0, time.UTC)},
	} {
		p, err := parsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		if got := p.name(at); got != tc.want {
			t.Errorf("%s: name %s, want %s", tc.pattern, got, tc.want)
		}
		if got := p.next(at); !got.Equal(tc.next) {
			t.Errorf("%s: next %s, want %s", tc.pattern, got, tc.next)
		}
		if !p.match.MatchString(filepath.Base(tc.want)) {
			t.Errorf("%s: its own name %s does not match %s", tc.pattern, tc.want, p.match)
		}
	}
	for _, bad := range []string{"/var/%Y/flows.json", "flows-%Q.json", "flows-%", "dir/"} {
		if _, err := parsePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// lines returns the complete lines of a file and fails on a partial one.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Errorf("%s ends inside a record: %q", path, b[max(0, len(b)-20):])
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestRotateLines writes JSON lines in chunks that split records, across
// hour boundaries, and checks that every file holds whole records, in
// order, none lost or doubled, named by the hour of its first record.
func TestRotateLines(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	var rotations []string
	w, err := New(Config{Path: filepath.Join(dir, "flows-%Y%m%d-%H.json"), Now: clk.Now,
		OnRotate: func(closed, opened string, removed []string, err error) {
			rotations = append(rotations, filepath.Base(closed)+">"+filepath.Base(opened))
			if err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	var stream []byte
	for i := range 30 {
		stream = fmt.Appendf(stream, `{"n":%d,"pad":"%s"}`+"\n", i, strings.Repeat("x", i))
	}
	// Chunks of 37 bytes; the clock moves 10 minutes before every third.
	for i, off := 0, 0; off < len(stream); i++ {
		if i%3 == 2 {
			clk.Add(10 * time.Minute)
		}
		end := min(off+37, len(stream))
		if n, err := w.Write(stream[off:end]); err != nil || n != end-off {
			t.Fatalf("write: %d, %v", n, err)
		}
		off = end
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "flows-*.json"))
	slices.Sort(files)
	var got []string
	for _, f := range files {
		got = append(got, lines(t, f)...)
	}
	if want := strings.Split(strings.TrimSuffix(string(stream), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("records across files differ from those written:\n%q\n%q", got, want)
	}
	if len(files) < 3 {
		t.Errorf("only %d files over %d hours: %v", len(files), 3, files)
	}
	if rotations[0] != "flows-20260329-00.json>flows-20260329-01.json" {
		t.Errorf("rotations %v", rotations)
	}
	if _, err := w.Write([]byte("x\n")); err != ErrClosed {
		t.Errorf("write after close: %v", err)
	}
}

// frames encodes records as varint-length frames.
func frames(records [][]byte) []byte {
	var b []byte
	for _, r := range records {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// readFrames decodes a file of frames, failing on a partial one.
func readFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			t.Fatalf("%s: partial frame at the end", path)
		}
		out = append(out, b[k:k+int(n)])
		b = b[k+int(n):]
	}
	return out
}

// TestRotateFrames does the same with bin frames of sizes that need one-
// and two-byte prefixes (empty frames too), split at random points,
// rotating every second.
func TestRotateFrames(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	w, err := New(Config{Path: filepath.Join(dir, "flows-%H%M%S.bin"), Now: clk.Now, Boundary: Frames})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var records [][]byte
	for i := range 400 {
		r := make([]byte, rng.IntN(300))
		for j := range r {
			r[j] = byte(i)
		}
		records = append(records, r)
	}
	stream := frames(records)
	for off := 0; off < len(stream); {
		end := min(off+1+rng.IntN(200), len(stream))
		if _, err := w.Write(stream[off:end]); err != nil {
			t.Fatal(err)
		}
		off = end
		clk.Add(time.Duration(rng.IntN(700)) * time.Millisecond)
	}
	w.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "flows-*.bin"))
	slices.Sort(files)
	var got [][]byte
	for _, f := range files {
		got = append(got, readFrames(t, f)...)
	}
	if len(files) < 20 || len(got) != len(records) {
		t.Fatalf("%d files, %d records; want many files and %d records", len(files), len(got), len(records))
	}
	for i := range records {
		if !bytes.Equal(got[i], records[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}

// TestRotateKeep checks that only Keep closed files stay, the oldest go,
// and files the pattern does not produce are left alone.
func TestRotateKeep(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"flows-notes.json", "other.txt", "flows-2026032900.json.gz"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("keep me\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: t0}
	var removed []string
	w, err := New(Config{Path: filepath.Join(dir, "flows-%Y%m%d%H.json"), Keep: 2, Now: clk.Now,
		OnRotate: func(_, _ string, r []string, err error) {
			removed = append(removed, r...)
			if err != nil {
				t.Error(err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := fmt.Fprintf(w, "{\"hour\":%d}\n", i); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Hour)
		// Modification times follow the hours, as they would.
		_ = os.Chtimes(w.Path(), clk.Now(), clk.Now())
	}
	if _, err := w.Write([]byte("{\"hour\":6}\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{"flows-2026032900.json.gz", "flows-2026032904.json", "flows-2026032905.json", "flows-2026032906.json", "flows-notes.json", "other.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	if len(removed) != 4 {
		t.Errorf("removed %v", removed)
	}
}

// TestRotateClockStepsBack checks that a file once closed is never written
// again, even when the clock goes back to its period, and that a restart
// in the same period appends.
func TestRotateClockStepsBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f-%H.json")
	clk := &clock{t: t0} // 00:59:58
	w, err := New(Config{Path: path, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a\n"))
	clk.Add(5 * time.Second) // 01:00:03
	w.Write([]byte("b\n"))
	clk.Add(-10 * time.Second) // back to 00:59:53
	w.Write([]byte("c\n"))
	clk.Add(20 * time.Second) // 01:00:13
	w.Write([]byte("d\n"))
	w.Close()
	if got := lines(t, filepath.Join(dir, "f-00.json")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("f-00: %q", got)
	}
	if got := lines(t, filepath.Join(dir, "f-01.json")); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Errorf("f-01: %q", got)
	}
	// A restart in the same hour appends.
	w, err = New(Config{Path: path, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("e\n"))
	w.Close()
	if got := lines(t, filepath.Join(dir, "f-01.json")); !slices.Equal(got, []string{"b", "c", "d", "e"}) {
		t.Errorf("after restart f-01: %q", got)
	}
}

// TestReopenFixedPath is logrotate's way: move the file, then Reopen.
func TestReopenFixedPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flows.json")
	w, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("1\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("2\n")) // still the moved file
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("3\n"))
	w.Close()
	if got := lines(t, path+".1"); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("moved file: %q", got)
	}
	if got := lines(t, path); !slices.Equal(got, []string{"3"}) {
		t.Errorf("new file: %q", got)
	}
	// A failed reopen keeps the old file.
	w, _ = New(Config{Path: path})
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	os.Rename(path, path+".2")
	if os.Geteuid() != 0 {
		if err := w.Reopen(); err == nil {
			t.Error("reopen in a read-only directory succeeded")
		}
	}
	w.Close()
}

// TestShipperNeverSeesShrinkOrRewrite runs a tailer, as Fluent Bit, Vector
// or the Splunk forwarder tail a glob, next to a writer rotating every
// (fake) second with Keep, and checks that no file it sees ever gets
// shorter or changes bytes it already read, and that every file ends with
// a whole line.
func TestShipperNeverSeesShrinkOrRewrite(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: t0}
	w, err := New(Config{Path: filepath.Join(dir, "flows-%H%M%S.json"), Now: clk.Now, Keep: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		seen := map[string][]byte{}
		for !stop.Load() {
			files, _ := filepath.Glob(filepath.Join(dir, "flows-*.json"))
			slices.Sort(files)
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					continue // removed by Keep
				}
				old := seen[f]
				if len(b) < len(old) || !bytes.Equal(b[:len(old)], old) {
					done <- fmt.Errorf("%s shrank or changed: %d bytes, had %d", f, len(b), len(old))
					return
				}
				seen[f] = b
			}
		}
		done <- nil
	}()
	rec := []byte(`{"type":"IPFIX","time_received_ns":1774745998000000000,"bytes":1500}` + "\n")
	bw := bufio.NewWriterSize(w, 1000) // splits records, as bufio does
	for i := range 20000 {
		bw.Write(rec)
		if i%500 == 0 {
			clk.Add(time.Second)
		}
	}
	bw.Flush()
	w.Close()
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "flows-*.json"))
	total := 0
	for _, f := range files {
		total += len(lines(t, f))
	}
	if total != 20000 || len(files) < 30 {
		t.Errorf("%d records in %d files", total, len(files))
	}
}

// FuzzFrameScanner checks the frame scanner against a plain decoder:
// for any stream cut into any chunks, recordEnd says where the record
// under way ends, and advance keeps the right state.
func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c', 0, 1, 'x'}, uint8(2))
	f.Add(frames([][]byte{make([]byte, 200), nil, {1}}), uint8(5))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		// Record ends by a plain decode.
		ends := map[int]bool{0: true}
		for off := 0; off < len(stream); {
			n, k := binary.Uvarint(stream[off:])
			if k <= 0 || uint64(len(stream)-off-k) < n {
				stream = stream[:off] // keep whole frames only
				break
			}
			off += k + int(n)
			ends[off] = true
		}
		s := scanner{boundary: Frames}
		size := int(chunk%64) + 1
		for off := 0; off < len(stream); off += size {
			p := stream[off:min(off+size, len(stream))]
			cut := s.recordEnd(p)
			var want int = -1
			for i := 0; i <= len(p); i++ {
				if ends[off+i] {
					want = i
					break
				}
			}
			if cut != want {
				t.Fatalf("at %d: recordEnd %d, want %d", off, cut, want)
			}
			s.advance(p)
			if s.mid() == ends[off+len(p)] {
				t.Fatalf("at %d: mid %v after advance", off+len(p), s.mid())
			}
		}
	})
}
