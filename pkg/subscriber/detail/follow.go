package detail

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// DefaultPoll is how often a Follower looks for new records by default.
const DefaultPoll = 250 * time.Millisecond

const (
	readChunk   = 1 << 20
	maxBlock    = 1 << 20 // a longer "record" is garbage: skipped
	fingerprint = 1024    // bytes at the start of a file that identify it
	// idleAfter: a file read to its end and unchanged this long is closed
	// (its position kept) until it grows, so that years of daily or
	// hourly files matched by a glob do not hold a descriptor each.
	idleAfter = 5 * time.Minute
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Patterns are the files to follow: paths or globs (detail-*), read
	// at every poll, so that files created later are followed too.
	Patterns []string
	Poll     time.Duration // 0: DefaultPoll
	// Apply applies a record (Table.Apply); an error rejects it.
	Apply  func(*subscriber.Record) error
	Counts *subscriber.Counts // records read and rejected; may be nil
	Log    *slog.Logger       // rotation, truncation, rejected records (rate-limited); may be nil
}

// Follower follows FreeRADIUS detail files like tail -F: it reads every
// file the patterns match from where it stopped, to its end, at every
// poll; a file renamed away (rotated) is read to its end before it is let
// go; a file that shrinks (copytruncate) is read again from its start; a
// file never read before is read from its start. Files are known by device
// and inode plus a checksum of their first bytes, so that a position
// saved in the state file (Positions, Restore) resumes the right file
// after a restart even if it was renamed meanwhile, and never a new file
// that reuses an inode.
type Follower struct {
	cfg FollowerConfig

	mu    sync.Mutex // held while reading; Positions waits for the records read to be applied
	files map[fileKey]*followed
	saved map[fileKey]position // positions restored, for files not seen yet
	buf   []byte
	warn  rate.Sometimes
}

type fileKey struct{ dev, ino uint64 }

type followed struct {
	key  fileKey
	f    *os.File
	path string
	pos  position
	seen bool // matched by the patterns at this poll
	// size and mtime at the last read
	size  int64
	mtime time.Time
}

// position is where reading of one file stands.
type position struct {
	off   int64  // after the last complete record
	fpLen int    // bytes the fingerprint covers
	fpSum uint64 // CRC-64 of them
	path  string // last name seen, for logs
	idle  bool   // closed while idle, until the file grows
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// NewFollower returns a Follower; nothing is read before CatchUp or Run.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if len(cfg.Patterns) == 0 {
		return nil, errors.New("detail: no file to follow")
	}
	for _, p := range cfg.Patterns {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("detail: pattern %q: %w", p, err)
		}
	}
	if cfg.Apply == nil {
		return nil, errors.New("detail: no Apply function")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Counts == nil {
		cfg.Counts = &subscriber.Counts{}
	}
	return &Follower{cfg: cfg, files: map[fileKey]*followed{}, saved: map[fileKey]position{},
		buf: make([]byte, readChunk), warn: rate.Sometimes{First: 3, Interval: 30 * time.Second}}, nil
}

// CatchUp reads every matched file to its end, then returns.
func (f *Follower) CatchUp(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.poll(ctx)
}

// Run polls until ctx is done, then closes the files.
func (f *Follower) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Poll)
	defer t.Stop()
	defer f.close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f.mu.Lock()
		err := f.poll(ctx)
		f.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			f.warn.Do(func() { f.cfg.Log.Warn("detail files", "err", err) })
		}
	}
}

func (f *Follower) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, fl := range f.files {
		f.saved[k] = fl.pos // Positions still reports them
		fl.f.Close()
	}
	clear(f.files)
}

// poll opens the files the patterns match now, reads each to its end,
// and lets go of those no longer matched after reading them to their end.
func (f *Follower) poll(ctx context.Context) error {
	var errs []error
	var paths []string
	for _, p := range f.cfg.Patterns {
		m, _ := filepath.Glob(p) // patterns were checked
		paths = append(paths, m...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	for _, fl := range f.files {
		fl.seen = false
	}
	matched := make(map[fileKey]bool, len(paths))
	for _, path := range paths {
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() {
			continue // gone since the glob, or a directory
		}
		k := keyOf(st)
		matched[k] = true
		if p, ok := f.saved[k]; ok && p.idle && st.Size() == p.off {
			continue // closed while idle, still unchanged
		}
		if fl, ok := f.files[k]; ok {
			if fl.path != path {
				f.cfg.Log.Info("detail file renamed", "from", fl.path, "path", path)
				fl.path, fl.pos.path = path, path
			}
			fl.seen = true
			continue
		}
		if err := f.open(path, k); err != nil {
			errs = append(errs, err)
		}
	}
	// Files rotated away first (their records are older), then in name
	// order. Order matters little: records apply by their own times.
	order := make([]*followed, 0, len(f.files))
	for _, fl := range f.files {
		order = append(order, fl)
	}
	slices.SortFunc(order, func(a, b *followed) int {
		switch {
		case a.seen != b.seen:
			if !a.seen {
				return -1
			}
			return 1
		case a.path < b.path:
			return -1
		case a.path > b.path:
			return 1
		}
		return 0
	})
	for _, fl := range order {
		if ctx.Err() != nil {
			break
		}
		if err := f.read(fl); err != nil {
			errs = append(errs, err)
		}
		switch {
		case !fl.seen:
			// Rotated away or deleted: it was read to its end above.
			f.cfg.Log.Info("detail file no longer matched, read to its end", "path", fl.path, "offset", fl.pos.off)
			delete(f.files, fl.key)
			fl.f.Close()
		case fl.pos.off == fl.size && time.Since(fl.mtime) > idleAfter:
			f.cfg.Log.Debug("detail file idle, closed until it grows", "path", fl.path, "offset", fl.pos.off)
			p := fl.pos
			p.idle = true
			f.saved[fl.key] = p
			delete(f.files, fl.key)
			fl.f.Close()
		}
	}
	// Positions of files no longer matched are forgotten: such a file
	// coming back is read from its start.
	for k := range f.saved {
		if !matched[k] {
			delete(f.saved, k)
		}
	}
	return errors.Join(errs...)
}

// open starts following a file: at its saved position if the state knew
// it, else at its start.
func (f *Follower) open(path string, k fileKey) error {
	h, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("detail: %w", err)
	}
	st, err := h.Stat()
	if err != nil || keyOf(st) != k {
		h.Close()
		return nil // replaced between stat and open: next poll
	}
	fl := &followed{key: k, f: h, path: path, seen: true, pos: position{path: path}}
	if p, ok := f.saved[k]; ok {
		delete(f.saved, k)
		if sum, n := fingerprintOf(h, p.fpLen); n == p.fpLen && sum == p.fpSum {
			fl.pos = p
			fl.pos.path = path
		} else {
			f.cfg.Log.Info("detail file is not the one saved (inode reused): reading it from its start", "path", path)
		}
	}
	if fl.pos.fpLen == 0 {
		fl.pos.fpSum, fl.pos.fpLen = fingerprintOf(h, fingerprint)
	}
	f.files[k] = fl
	f.cfg.Log.Info("following detail file", "path", path, "offset", fl.pos.off)
	return nil
}

// fingerprintOf is the CRC-64 of the first n bytes of h (fewer if h is
// shorter) and how many it covers.
func fingerprintOf(h *os.File, n int) (uint64, int) {
	b := make([]byte, n)
	m, _ := h.ReadAt(b, 0)
	return crc64.Checksum(b[:m], crcTable), m
}

// read applies the complete records of fl after its position. A file no
// longer matched has its last record applied even without a blank line
// after it: nothing will be appended to it.
func (f *Follower) read(fl *followed) error {
	st, err := fl.f.Stat()
	if err != nil {
		return fmt.Errorf("detail: %s: %w", fl.path, err)
	}
	if st.Size() < fl.pos.off {
		f.cfg.Log.Warn("detail file shrank (truncated): reading it from its start", "path", fl.path,
			"size", st.Size(), "offset", fl.pos.off)
		fl.pos.off = 0
		fl.pos.fpSum, fl.pos.fpLen = fingerprintOf(fl.f, fingerprint)
	}
	if fl.pos.fpLen < fingerprint && st.Size() > int64(fl.pos.fpLen) {
		// The fingerprint grows with a young file, up to its full length.
		fl.pos.fpSum, fl.pos.fpLen = fingerprintOf(fl.f, fingerprint)
	}
	have := 0
	var rec subscriber.Record
	for {
		n, rerr := fl.f.ReadAt(f.buf[have:], fl.pos.off+int64(have))
		have += n
		eof := rerr != nil
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return fmt.Errorf("detail: %s: %w", fl.path, rerr)
		}
		used := 0
		for {
			block, adv := Next(f.buf[used:have], eof && !fl.seen)
			if adv == 0 {
				break
			}
			if block != nil {
				f.apply(fl, block, &rec, fl.pos.off+int64(used))
			}
			used += adv
		}
		fl.pos.off += int64(used)
		copy(f.buf, f.buf[used:have])
		have -= used
		if eof {
			fl.size, fl.mtime = fl.pos.off+int64(have), st.ModTime()
			return nil
		}
		if have == len(f.buf) {
			if len(f.buf) < maxBlock {
				f.buf = slices.Grow(f.buf, maxBlock-len(f.buf))[:maxBlock]
				continue
			}
			// No record ends in a whole buffer: skip it.
			f.cfg.Counts.Rejected[subscriber.SourceDetail][subscriber.ReasonMalformed].Add(1)
			f.warn.Do(func() {
				f.cfg.Log.Warn("detail file: no record end in a whole buffer, skipped", "path", fl.path, "offset", fl.pos.off, "bytes", have)
			})
			fl.pos.off += int64(have)
			have = 0
		}
	}
}

func (f *Follower) apply(fl *followed, block []byte, rec *subscriber.Record, off int64) {
	c := f.cfg.Counts
	c.Read[subscriber.SourceDetail].Add(1)
	err := Parse(block, rec)
	if err == nil {
		err = f.cfg.Apply(rec)
	} else {
		err = &subscriber.RejectError{Reason: subscriber.ReasonMalformed, Err: err}
	}
	if err != nil {
		reason := c.Reject(subscriber.SourceDetail, err)
		f.warn.Do(func() {
			f.cfg.Log.Warn("detail record rejected", "path", fl.path, "offset", off, "reason", reason.String(), "err", err)
		})
	}
}

// Positions encodes where reading stands in every file, for the state
// file. Every record before a position has been applied when it returns.
func (f *Follower) Positions() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []byte
	put := func(k fileKey, p position) {
		b = binary.AppendUvarint(b, k.dev)
		b = binary.AppendUvarint(b, k.ino)
		b = binary.AppendUvarint(b, uint64(p.off))
		b = binary.AppendUvarint(b, uint64(p.fpLen))
		b = binary.BigEndian.AppendUint64(b, p.fpSum)
		b = binary.AppendUvarint(b, uint64(len(p.path)))
		b = append(b, p.path...)
	}
	for k, fl := range f.files {
		put(k, fl.pos)
	}
	for k, p := range f.saved {
		if _, ok := f.files[k]; !ok {
			put(k, p)
		}
	}
	return b
}

// Restore sets the positions saved by Positions; call it before CatchUp.
func (f *Follower) Restore(b []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(b) > 0 {
		var k fileKey
		var p position
		var ok bool
		var plen uint64
		if k.dev, b, ok = uvarint(b); !ok {
			return errBadPositions
		}
		if k.ino, b, ok = uvarint(b); !ok {
			return errBadPositions
		}
		var off, fpLen uint64
		if off, b, ok = uvarint(b); !ok {
			return errBadPositions
		}
		if fpLen, b, ok = uvarint(b); !ok || fpLen > fingerprint || len(b) < 8 {
			return errBadPositions
		}
		p.off, p.fpLen, p.fpSum = int64(off), int(fpLen), binary.BigEndian.Uint64(b)
		b = b[8:]
		if plen, b, ok = uvarint(b); !ok || plen > uint64(len(b)) {
			return errBadPositions
		}
		p.path, b = string(b[:plen]), b[plen:]
		f.saved[k] = p
	}
	return nil
}

var errBadPositions = errors.New("detail: bad saved positions")

func uvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}
