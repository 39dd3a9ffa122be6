// Package rotate writes a stream of records to files named after the time,
// as nfcapd names its files, so that a log shipper can tail a glob:
//
//	/var/log/flowpipe/flows-%Y%m%d-%H.json   one file per hour, UTC
//
// The name is formatted from the current time with strftime-like
// conversions (%Y %y %m %d %j %H %M %S, %s for Unix seconds, %% for %),
// in UTC unless told otherwise; the finest conversion sets how often a new
// file begins. Conversions are allowed in the file name only, not in the
// directory.
//
// What a shipper can rely on:
//   - A file only ever grows: it is opened for appending, never truncated,
//     renamed or rewritten. After a restart within the same period the
//     period's file is appended to.
//   - A new file begins only between two records (JSON lines or varint
//     frames), so every file holds whole records; the previous file is
//     then closed and never written again, even if the clock steps back.
//   - With Keep > 0, once a new file begins, the oldest files the pattern
//     produced beyond the Keep most recent closed ones are removed (files
//     of other names in the directory are never touched).
//
// A path without conversions is one file, appended to and reopened by
// Reopen (for logrotate's move-then-signal, on SIGHUP).
package rotate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Boundary says how records are delimited in the stream, so that a file
// begins only between two of them.
type Boundary int

const (
	// Lines: each record ends with '\n' (JSON lines).
	Lines Boundary = iota
	// Frames: each record is an unsigned varint length and that many
	// bytes (flowpipe's and goflow2's bin stream).
	Frames
)

// Config configures a Writer.
type Config struct {
	// Path is the file, possibly with time conversions.
	Path string
	// Keep is how many closed files to keep besides the current one; 0
	// keeps them all. Only meaningful with conversions.
	Keep int
	// Location is the zone names are formatted in; nil is UTC.
	Location *time.Location
	// Boundary delimits records.
	Boundary Boundary
	// Perm is the mode of new files; 0 is 0644.
	Perm fs.FileMode
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// OnRotate, when set, is told about each new file: the one closed
	// (empty for the first), the one opened, and the files removed by
	// Keep (with the error of a failed removal, if any).
	OnRotate func(closed, opened string, removed []string, err error)
}

// Writer is an io.Writer over the rotated files. Write and Reopen may be
// called from different goroutines.
type Writer struct {
	cfg Config
	pat *pattern // nil: a fixed path

	mu       sync.Mutex
	f        *os.File
	path     string
	openedAt time.Time // clock reading when f was opened
	checkAt  time.Time // next instant the name may change
	pending  bool      // a new file is due at the next record boundary
	scan     scanner
	closed   bool
}

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("rotate: writer closed")

// New opens the file for the current time. A path with conversions is
// detected by its '%'.
func New(cfg Config) (*Writer, error) {
	if cfg.Path == "" {
		return nil, errors.New("rotate: no path")
	}
	if cfg.Keep < 0 {
		return nil, fmt.Errorf("rotate: keep must be >= 0, got %d", cfg.Keep)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Perm == 0 {
		cfg.Perm = 0o644
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{cfg: cfg, scan: scanner{boundary: cfg.Boundary}}
	if HasPattern(cfg.Path) {
		p, err := parsePattern(cfg.Path)
		if err != nil {
			return nil, err
		}
		w.pat = p
	}
	if err := w.openCurrent(); err != nil {
		return nil, err
	}
	return w, nil
}

// HasPattern reports whether path has time conversions.
func HasPattern(path string) bool { return strings.Contains(path, "%") }

// Path is the file being written.
func (w *Writer) Path() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.path
}

// Write appends p. When a new file is due, the rest of the record under
// way goes to the old file and the next records to the new one.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	if w.pat != nil && !w.pending {
		if now := w.cfg.Now(); !now.Before(w.checkAt) {
			w.pending = w.pat.name(now.In(w.cfg.Location)) != w.path && now.After(w.openedAt)
			w.checkAt = w.pat.next(now.In(w.cfg.Location))
		}
	}
	n := 0
	if w.pending {
		cut := w.scan.recordEnd(p)
		if cut < 0 { // the record under way does not end in p
			m, err := w.f.Write(p)
			w.scan.advance(p[:m])
			return m, err
		}
		m, err := w.f.Write(p[:cut])
		w.scan.advance(p[:m])
		n += m
		if err != nil {
			return n, err
		}
		if err := w.rotate(); err != nil {
			return n, err
		}
		p = p[cut:]
	}
	m, err := w.f.Write(p)
	if w.pat != nil { // a fixed path never asks where a record ends
		w.scan.advance(p[:m])
	}
	return n + m, err
}

// Reopen opens the current name anew and closes the old file: for a
// fixed path, after logrotate moved it; with conversions, it re-evaluates
// the name (a file removed by hand is recreated). If the open fails the
// old file is kept, and the error says why.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.pat != nil && w.scan.mid() {
		// Not between records: let the next boundary switch files.
		w.pending = true
		return nil
	}
	old := w.f
	if err := w.openCurrent(); err != nil {
		return err
	}
	return old.Close()
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

// rotate closes the current file, opens the one for now and applies Keep.
func (w *Writer) rotate() error {
	closed := w.path
	old := w.f
	if err := w.openCurrent(); err != nil {
		w.pending = true // try again at the next boundary
		return err
	}
	cerr := old.Close()
	removed, rerr := w.prune()
	if w.cfg.OnRotate != nil {
		w.cfg.OnRotate(closed, w.path, removed, errors.Join(cerr, rerr))
	}
	return nil
}

// openCurrent opens the file for the current time (or the fixed path).
func (w *Writer) openCurrent() error {
	now := w.cfg.Now()
	path := w.cfg.Path
	if w.pat != nil {
		local := now.In(w.cfg.Location)
		path = w.pat.name(local)
		w.checkAt = w.pat.next(local)
		if err := os.MkdirAll(w.pat.dir, 0o755); err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, w.cfg.Perm)
	if err != nil {
		return fmt.Errorf("rotate: %w", err)
	}
	w.f, w.path, w.openedAt, w.pending = f, path, now, false
	return nil
}

// prune removes the oldest files of the pattern beyond Keep closed ones.
func (w *Writer) prune() ([]string, error) {
	if w.cfg.Keep == 0 || w.pat == nil {
		return nil, nil
	}
	entries, err := os.ReadDir(w.pat.dir)
	if err != nil {
		return nil, fmt.Errorf("rotate: %w", err)
	}
	type file struct {
		path  string
		mtime time.Time
	}
	var files []file
	for _, e := range entries {
		if !e.Type().IsRegular() || !w.pat.match.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(w.pat.dir, e.Name())
		if p == w.path {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		files = append(files, file{p, info.ModTime()})
	}
	if len(files) <= w.cfg.Keep {
		return nil, nil
	}
	// Oldest first: by modification time, then by name.
	slices.SortFunc(files, func(a, b file) int {
		if c := a.mtime.Compare(b.mtime); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	var removed []string
	var errs []error
	for _, f := range files[:len(files)-w.cfg.Keep] {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("rotate: %w", err))
			continue
		}
		removed = append(removed, f.path)
	}
	return removed, errors.Join(errs...)
}

// scanner follows record boundaries across writes, without allocating.
type scanner struct {
	boundary Boundary
	// Lines: whether the last byte written was not '\n'.
	midLine bool
	// Frames: body bytes of the current frame still to come, and the
	// bytes of a length prefix split across writes.
	body   uint64
	prefix [binary.MaxVarintLen64]byte
	plen   int
}

// mid reports whether the stream is inside a record.
func (s *scanner) mid() bool {
	if s.boundary == Lines {
		return s.midLine
	}
	return s.body > 0 || s.plen > 0
}

// recordEnd is the offset in p just after the record under way ends: 0
// when the stream is between records, -1 when that record does not end
// within p.
func (s *scanner) recordEnd(p []byte) int {
	if !s.mid() {
		return 0
	}
	if s.boundary == Lines {
		for i, c := range p {
			if c == '\n' {
				return i + 1
			}
		}
		return -1
	}
	t := *s
	for i := 0; i < len(p); {
		if t.body > 0 {
			n := min(t.body, uint64(len(p)-i))
			t.body -= n
			i += int(n)
			if t.body == 0 {
				return i
			}
			continue
		}
		if t.prefixByte(p[i]) && t.body == 0 {
			return i + 1 // an empty frame
		}
		i++
	}
	return -1
}

// prefixByte adds one byte of a length prefix and reports whether the
// prefix is complete (its value then in body).
func (s *scanner) prefixByte(c byte) bool {
	s.prefix[s.plen] = c
	s.plen++
	if c < 0x80 || s.plen == len(s.prefix) {
		s.body, _ = binary.Uvarint(s.prefix[:s.plen])
		s.plen = 0
		return true
	}
	return false
}

// advance records that p was written.
func (s *scanner) advance(p []byte) {
	if len(p) == 0 {
		return
	}
	if s.boundary == Lines {
		s.midLine = p[len(p)-1] != '\n'
		return
	}
	for len(p) > 0 {
		if s.body > 0 {
			n := min(s.body, uint64(len(p)))
			s.body -= n
			p = p[n:]
			continue
		}
		s.prefixByte(p[0])
		p = p[1:]
	}
}

// CheckPath reports whether path is a valid fixed path or pattern, without
// opening anything: a bad pattern is a usage error, a failing open a
// runtime one.
func CheckPath(path string) error {
	if path == "" {
		return errors.New("rotate: no path")
	}
	if !HasPattern(path) {
		return nil
	}
	_, err := parsePattern(path)
	return err
}
