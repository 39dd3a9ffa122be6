package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Records are counted from each collector's own output, by a reader
// independent of the collector, after the collector has ended (its file is
// closed, nfcapd's is renamed from nfcapd.current.PID to its final name).

// countFrames counts the varint-length-prefixed frames of a bin stream
// (flowcollect --format bin, goflow2 -format=bin with an empty separator).
// A truncated last frame is an error: the file was not closed properly.
func countFrames(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var n, off int64
	for {
		size, err := binary.ReadUvarint(br)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("frame %d at byte %d: bad length: %w", n+1, off, err)
		}
		if size == 0 || size > 1<<20 {
			return n, fmt.Errorf("frame %d at byte %d: implausible length %d", n+1, off, size)
		}
		d, err := br.Discard(int(size))
		if err != nil {
			return n, fmt.Errorf("frame %d at byte %d: %d of %d bytes: truncated", n+1, off, d, size)
		}
		off += int64(uvarintLen(size)) + int64(size)
		n++
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// countLines counts newline-terminated lines; a last line without its
// newline is an error (a write cut short).
func countLines(r io.Reader) (int64, error) {
	buf := make([]byte, 1<<16)
	var n int64
	last := byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += int64(bytes.Count(buf[:k], []byte{'\n'}))
			last = buf[k-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if last != '\n' {
		return n, fmt.Errorf("last line (after %d) has no newline: truncated", n)
	}
	return n, nil
}

// countCSVRecords counts the data lines of pmacct's print plugin CSV
// output: every line but the title lines (the first line, repeated
// wherever a purge started a new file).
func countCSVRecords(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var title string
	var n int64
	for sc.Scan() {
		line := sc.Text()
		switch {
		case title == "":
			title = line
			if !strings.Contains(line, "SRC_IP") {
				return 0, fmt.Errorf("first line is not a pmacct CSV title: %.80q", line)
			}
		case line == title, line == "":
		default:
			n++
		}
	}
	return n, sc.Err()
}

// countFile opens path and counts it with count.
func countFile(path string, count func(io.Reader) (int64, error)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := count(f)
	if err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// nfcapdFiles checks that nfcapd left only closed files in dir: a
// nfcapd.current.* file means it did not finish writing.
func nfcapdFiles(names []string) ([]string, error) {
	var done []string
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "nfcapd.current."):
			return nil, fmt.Errorf("%s is still open: nfcapd did not close its file", n)
		case strings.HasPrefix(n, "nfcapd.2"):
			done = append(done, n)
		}
	}
	if len(done) == 0 {
		return nil, errors.New("no nfcapd.YYYYMMDDhhmm file written")
	}
	return done, nil
}

// countNfdump counts the flows nfcapd/sfcapd wrote into dir, read back by
// nfdump itself: `nfdump -R DIR -q -o csv | wc -l` (-q: no header, no
// summary).
func countNfdump(ctx context.Context, nfdump, dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	if _, err := nfcapdFiles(names); err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	cmd := exec.CommandContext(ctx, nfdump, "-R", dir, "-q", "-o", "csv")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, cerr := countLines(out)
	if err := cmd.Wait(); err != nil {
		return n, fmt.Errorf("nfdump -R %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return n, cerr
}

// dirSize is the total size of the files in dir, for the report.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
