// Package spool is a durable first-in first-out queue of records on disk:
// a write-ahead log in numbered segment files, one writer, one reader, and
// acknowledgements that delete what was delivered.
//
// The writer appends whole records (framed with BeginRecord/EndRecord or
// AppendRecord: a length and a CRC-32C each) with Write: sequential writes
// into the current segment, which is rolled over at Options.SegmentBytes. A
// Write is in the operating system's page cache when it returns, so a killed
// process loses nothing it wrote. Every Options.SyncInterval the files are
// fsynced if a record older than that still waits for the reader's
// acknowledgement, and they are at Close: a power loss can take at most the
// last interval's writes. Records acknowledged within the interval are
// never fsynced.
//
// The reader takes Chunks in order with Next: while it keeps up, straight
// from the writer's memory (a chunk's Ref is the writer's handle on it);
// once it falls behind, read back from the segment files. It acknowledges
// chunks with Ack in the order it got them; a segment is deleted once every
// record in it was acknowledged, and the acknowledged position is kept in a
// small file so that a restart resumes there.
//
// Open recovers a directory left by a crash: every record after the
// acknowledged position is delivered again (at-least-once: duplicates are
// the records in flight at the crash); a segment cut in the middle of a
// record is truncated at its last whole record; a damaged record is
// skipped and the reader resumes at the next record that passes its
// checks, in the same segment or the next. Each is counted in Stats and
// logged with its file and offset. A lock file refuses a second process
// on the same directory.
//
// The directory is bounded by Options.MaxBytes; when it is full, Write
// waits for acknowledgements (Block), deletes the oldest segment (DropOldest)
// or refuses the new records (DropNewest), and counts what it dropped.
package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FullPolicy says what Write does when the spool has no room.
type FullPolicy int

const (
	// Block waits until acknowledgements make room.
	Block FullPolicy = iota
	// DropOldest deletes the oldest segments, delivered or not.
	DropOldest
	// DropNewest refuses the records being written.
	DropNewest
)

// FullPolicies are the names ParseFullPolicy accepts.
var FullPolicies = []string{"drop-oldest", "drop-newest", "block"}

func (p FullPolicy) String() string {
	switch p {
	case DropOldest:
		return "drop-oldest"
	case DropNewest:
		return "drop-newest"
	}
	return "block"
}

// ParseFullPolicy reads drop-oldest, drop-newest or block.
func ParseFullPolicy(s string) (FullPolicy, error) {
	for _, p := range []FullPolicy{DropOldest, DropNewest, Block} {
		if s == p.String() {
			return p, nil
		}
	}
	return Block, fmt.Errorf("spool: unknown full policy %q (want %s)", s, strings.Join(FullPolicies, ", "))
}

// Options configure a spool.
type Options struct {
	Dir string
	// MaxBytes bounds the size of the segment files together.
	MaxBytes int64
	// SegmentBytes is the size at which a segment is rolled over; at
	// most MaxBytes/4 (so that dropping one frees room).
	SegmentBytes int64
	Full         FullPolicy
	// SyncInterval bounds what a power loss can take: every interval, the
	// files are fsynced if a record older than it is not acknowledged yet.
	// <= 0: only at Close.
	SyncInterval time.Duration
	// MemoryChunks is how many written chunks wait in memory for a reader
	// that keeps up before it is sent to the files.
	MemoryChunks int
	Log          *slog.Logger
	// OnSync, if set, is called with the duration of each periodic fsync.
	OnSync func(time.Duration)
}

// Defaults.
const (
	DefaultMaxBytes     = 4 << 30
	DefaultSegmentBytes = 64 << 20
	DefaultSyncInterval = time.Second
	defaultMemoryChunks = 16
	// maxChunk is the size a read-back chunk grows to, a whole number of
	// records (larger only for one larger record).
	maxChunk = 256 << 10
)

// DefaultOptions returns the defaults for dir.
func DefaultOptions(dir string) Options {
	return Options{Dir: dir, MaxBytes: DefaultMaxBytes, SegmentBytes: DefaultSegmentBytes,
		SyncInterval: DefaultSyncInterval, MemoryChunks: defaultMemoryChunks}
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Dir == "":
		return errors.New("spool: no directory")
	case o.MaxBytes < 4<<20:
		return fmt.Errorf("spool: max bytes must be at least 4 MiB, got %d", o.MaxBytes)
	case o.SegmentBytes < 0:
		return errors.New("spool: negative segment size")
	}
	return nil
}

// Pos is a position in the spool: a segment and an offset in its file.
type Pos struct {
	Seg uint64
	Off int64
}

// Chunk is a run of whole records for the reader.
type Chunk struct {
	// Data holds the records, each checked; split them with Next.
	Data    []byte
	Records int
	// End is the position after the chunk: Ack it once every record in
	// it was delivered.
	End Pos
	// Disk is set when the chunk was read back from a segment file (into
	// the buffer given to Spool.Next); otherwise Data is the writer's
	// memory and Ref the handle it passed to Write.
	Disk bool
	Ref  any
	// Need, when Data is nil, is the buffer size the next chunk needs.
	Need int
}

// Stats are the spool's counts.
type Stats struct {
	Records   int64 // records written and not yet acknowledged (nor dropped)
	Bytes     int64 // size of the segment files
	Segments  int
	OldestAge time.Duration // age of the oldest unacknowledged record
	Recovered int64         // records found after the acknowledged position at Open
	Drained   int64         // records the reader got from the files
	// Dropped by policy when full, and in damaged regions.
	DroppedOldest, DroppedNewest int64
	// Damage found: segments cut inside a record, damaged records,
	// segments with a bad file header.
	TornTails, Damaged, BadHeaders int64
}

// Errors.
var (
	// ErrLocked is returned by Open when another process holds the
	// directory's lock.
	ErrLocked = errors.New("spool directory is in use by another process")
	// ErrFull is returned by Write under DropNewest when the records were
	// not written.
	ErrFull = errors.New("spool full")
	// ErrClosed is returned once the spool is closed.
	ErrClosed = errors.New("spool closed")
)

const (
	segmentExt    = ".seg"
	ackFileName   = "acked"
	lockFileName  = "lock"
	segmentHeader = 16 // magic (8 bytes) and creation time (unix ns)
	ackFileSize   = 20 // segment, offset, CRC-32C
)

var segmentMagic = [8]byte{'F', 'L', 'W', 'S', 'P', 'O', 'O', 'L'}

// mark is one chunk of a segment: [off, end) holds recs records written
// at t (unix ns) or later. Marks are in order; bytes between one's end
// and the next's off are damage already counted.
type mark struct {
	off, end int64
	recs     int64
	t        int64
}

type segment struct {
	id        uint64
	path      string
	size      int64 // bytes in the file (whole records)
	records   int64 // records in it (after the acknowledged position)
	taken     int64 // records handed to the reader
	created   int64 // unix ns
	marks     []mark
	recovered bool // found at Open; its damage was counted then
	split     bool // the reader read up to size: the next write starts a mark
}

// Spool is one open spool directory.
type Spool struct {
	opt  Options
	log  *slog.Logger
	lock *os.File
	ack  *os.File

	mu     sync.Mutex
	room   sync.Cond // writer waits for room
	data   sync.Cond // reader waits for data
	segs   []*segment
	active *segment
	w      *os.File     // active segment's file
	sealed []sealedFile // rolled-over files not yet fsynced and closed
	nextID uint64
	bytes  int64
	recs   int64

	rpos  Pos // where the reader reads the files next
	rseg  uint64
	rfile *os.File
	// reading: readFiles reads rfile without the lock; rstale: the file
	// was removed meanwhile and is closed after that read.
	reading, rstale bool
	live            bool // the reader is caught up: writes go to mem
	mem             []Chunk
	wdone           bool // no more writes
	rstop           bool // no more reads
	closed          bool
	// interrupted makes a blocked Write go on over the bound.
	interrupted bool

	acked, persisted Pos
	dirDirty         bool
	ackSignal        chan struct{}
	stop             chan struct{}
	housekeeper      sync.WaitGroup

	recovered                      int64
	drained                        atomic.Int64
	droppedOldest, droppedNewest   atomic.Int64
	tornTails, damaged, badHeaders atomic.Int64
}

// Open opens (creating it if needed) and locks the spool directory and
// recovers what it holds.
func Open(opt Options) (*Spool, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.SegmentBytes == 0 {
		opt.SegmentBytes = DefaultSegmentBytes
	}
	opt.SegmentBytes = max(min(opt.SegmentBytes, opt.MaxBytes/4), 1<<20)
	if opt.MemoryChunks <= 0 {
		opt.MemoryChunks = defaultMemoryChunks
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opt.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{opt: opt, log: opt.Log, ackSignal: make(chan struct{}, 1), stop: make(chan struct{}), nextID: 1}
	s.room.L, s.data.L = &s.mu, &s.mu
	var err error
	if s.lock, err = lockDir(opt.Dir); err != nil {
		return nil, err
	}
	if err := s.recover(); err != nil {
		s.lock.Close()
		return nil, err
	}
	s.housekeeper.Add(1)
	go s.housekeep()
	return s, nil
}

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.opt.Dir }

// recover reads the acknowledged position and scans the segments after it.
func (s *Spool) recover() error {
	var err error
	s.ack, err = os.OpenFile(filepath.Join(s.opt.Dir, ackFileName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var b [ackFileSize]byte
	if n, _ := s.ack.ReadAt(b[:], 0); n == ackFileSize &&
		crc32.Checksum(b[:16], castagnoli) == binary.LittleEndian.Uint32(b[16:]) {
		s.acked = Pos{Seg: binary.LittleEndian.Uint64(b[:]), Off: int64(binary.LittleEndian.Uint64(b[8:]))}
	} else if n > 0 {
		s.log.Warn("spool: acknowledged-position file is damaged; delivering the whole spool again",
			"file", s.ack.Name())
	}
	s.persisted = s.acked

	entries, err := os.ReadDir(s.opt.Dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segmentExt) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var buf []byte
	for _, id := range ids {
		s.nextID = max(s.nextID, id+1)
		path := s.segmentPath(id)
		if id < s.acked.Seg {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			continue
		}
		seg, nbuf, err := s.scan(id, path, buf)
		buf = nbuf
		if err != nil {
			return err
		}
		if seg.records == 0 {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.recs += seg.records
	}
	s.recovered = s.recs
	if len(s.segs) == 0 {
		s.live = true
		s.rpos = Pos{Seg: s.nextID, Off: segmentHeader}
	} else {
		first := s.segs[0]
		s.rpos = Pos{Seg: first.id, Off: first.marks[0].off}
		s.log.Info("spool: records to deliver from a previous run", "dir", s.opt.Dir,
			"count", s.recs, "segments", len(s.segs), "bytes", s.bytes)
	}
	return nil
}

func (s *Spool) segmentPath(id uint64) string {
	return filepath.Join(s.opt.Dir, fmt.Sprintf("%020d%s", id, segmentExt))
}

// scan reads a segment found at Open: its records after the acknowledged
// position, as marks; damage counted and logged; a cut tail truncated.
func (s *Spool) scan(id uint64, path string, buf []byte) (*segment, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, buf, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, buf, fmt.Errorf("spool: %w", err)
	}
	size := st.Size()
	buf = slices.Grow(buf[:0], int(size))[:size]
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, buf, fmt.Errorf("spool: read %s: %w", path, err)
	}
	seg := &segment{id: id, path: path, size: size, recovered: true, created: st.ModTime().UnixNano()}
	if size < segmentHeader || [8]byte(buf[:8]) != segmentMagic {
		s.badHeaders.Add(1)
		s.log.Error("spool: segment has a bad file header; reading its records anyway", "file", path)
	} else {
		seg.created = int64(binary.LittleEndian.Uint64(buf[8:]))
	}
	start := int64(min(size, segmentHeader))
	if id == s.acked.Seg && s.acked.Off > start && s.acked.Off <= size {
		if n, st := parse(buf[s.acked.Off:]); s.acked.Off == size || st == parsed && n > 0 {
			start = s.acked.Off
		} else {
			s.log.Warn("spool: acknowledged position is not at a record; delivering its segment again",
				"file", path, "offset", s.acked.Off)
		}
	}
	var cur *mark
	validEnd := start
	walk(buf[start:], func(off, n int) {
		o := start + int64(off)
		if cur == nil || cur.end != o || cur.end-cur.off+int64(n) > maxChunk {
			seg.marks = append(seg.marks, mark{off: o, end: o, t: seg.created})
			cur = &seg.marks[len(seg.marks)-1]
		}
		cur.end += int64(n)
		cur.recs++
		seg.records++
		validEnd = o + int64(n)
	}, func(r Region) {
		off := start + int64(r.Off)
		if r.Tail {
			s.tornTails.Add(1)
			s.log.Warn("spool: segment ends inside a record (a crash while writing); cutting it",
				"file", path, "offset", off, "bytes", r.Len)
			return
		}
		s.damaged.Add(1)
		s.log.Error("spool: damaged record skipped (checksum failed); resuming at the next good record",
			"file", path, "offset", off, "bytes", r.Len)
	})
	if validEnd < size && validEnd >= segmentHeader {
		if err := f.Truncate(validEnd); err != nil {
			return nil, buf, fmt.Errorf("spool: cut %s: %w", path, err)
		}
		seg.size = validEnd
	}
	return seg, buf, nil
}

// Write appends data, records whole records, to the spool. When the
// reader is caught up the chunk also goes to it from memory: Write returns
// handed true, and the caller must keep data unchanged until the reader is
// done with it; ref (the caller's handle on data) comes with the chunk. Under DropNewest a full
// spool returns ErrFull (the records are counted as dropped); under Block
// Write waits for room, unless Interrupt was called.
func (s *Spool) Write(data []byte, records int, ref any) (handed bool, err error) {
	if len(data) == 0 {
		return false, nil
	}
	need := int64(len(data))
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.bytes+need > s.opt.MaxBytes && !s.interrupted {
		switch s.opt.Full {
		case DropNewest:
			s.droppedNewest.Add(int64(records))
			return false, ErrFull
		case DropOldest:
			if len(s.segs) == 0 || len(s.segs) == 1 && s.segs[0] == s.active {
				if s.active == nil || s.active.size <= segmentHeader {
					goto write // one write larger than the bound: let it through
				}
				if err := s.roll(); err != nil {
					return false, err
				}
			}
			s.dropOldest()
			continue
		}
		s.room.Wait()
	}
write:
	if s.closed || s.wdone {
		return false, ErrClosed
	}
	if s.active == nil || s.active.size > segmentHeader && s.active.size+need > s.opt.SegmentBytes {
		if err := s.roll(); err != nil {
			return false, err
		}
	}
	seg := s.active
	off := seg.size
	if _, err := s.w.Write(data); err != nil {
		// The file may hold part of data: cut it, so that it ends at a record.
		_ = s.w.Truncate(off)
		return false, fmt.Errorf("spool: write %s: %w", seg.path, err)
	}
	handed = s.live && len(s.mem) < s.opt.MemoryChunks
	if s.live && !handed {
		s.live = false // the reader reads the files from here on
		seg.split = true
	}
	now := time.Now().UnixNano()
	if n := len(seg.marks); n == 0 || seg.split || seg.marks[n-1].end-seg.marks[n-1].off+need > maxChunk {
		seg.marks = append(seg.marks, mark{off: off, end: off, t: now})
		seg.split = false
	}
	m := &seg.marks[len(seg.marks)-1]
	m.end += need
	m.recs += int64(records)
	seg.size += need
	seg.records += int64(records)
	s.bytes += need
	s.recs += int64(records)
	if handed {
		end := Pos{Seg: seg.id, Off: seg.size}
		s.mem = append(s.mem, Chunk{Data: data, Records: records, End: end, Ref: ref})
		seg.taken += int64(records)
		s.rpos = end
	}
	s.data.Signal()
	return handed, nil
}

// roll starts a new segment; the old one is fsynced and closed by the
// housekeeper.
func (s *Spool) roll() error {
	id := s.nextID
	path := s.segmentPath(id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	now := time.Now()
	var h [segmentHeader]byte
	copy(h[:], segmentMagic[:])
	binary.LittleEndian.PutUint64(h[8:], uint64(now.UnixNano()))
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	s.nextID++
	if s.w != nil {
		s.sealed = append(s.sealed, sealedFile{s.active.id, s.w})
	}
	if s.active != nil && s.rpos.Seg == s.active.id && s.rpos.Off == s.active.size {
		s.rpos = Pos{Seg: id, Off: segmentHeader} // the reader had read all of it
	}
	seg := &segment{id: id, path: path, size: segmentHeader, created: now.UnixNano()}
	s.segs = append(s.segs, seg)
	s.active, s.w = seg, f
	s.bytes += segmentHeader
	s.dirDirty = true
	return nil
}

// dropOldest deletes the oldest segment that is not being written and
// counts its records that the reader had not taken.
func (s *Spool) dropOldest() {
	seg := s.segs[0]
	lost := seg.records - seg.taken
	s.droppedOldest.Add(lost)
	s.recs -= lost
	s.bytes -= seg.size
	s.segs = s.segs[1:]
	if s.rpos.Seg <= seg.id {
		if len(s.segs) > 0 {
			s.rpos = Pos{Seg: s.segs[0].id, Off: s.segs[0].firstOff()}
		} else {
			s.rpos = Pos{Seg: s.nextID, Off: segmentHeader}
		}
	}
	s.removeFile(seg)
	s.log.Warn("spool: full; dropped its oldest segment", "file", seg.path, "count", lost)
}

func (seg *segment) firstOff() int64 {
	if len(seg.marks) > 0 {
		return seg.marks[0].off
	}
	return segmentHeader
}

func (s *Spool) removeFile(seg *segment) {
	if s.rfile != nil && s.rseg == seg.id {
		if s.reading {
			s.rstale = true // readFiles closes it after its read (an unlinked file still reads)
		} else {
			s.rfile.Close()
		}
		s.rfile = nil
	}
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("spool: cannot delete a segment", "file", seg.path, "err", err)
	}
	s.dirDirty = true
}

// CloseWrite says no more records will be written: Next returns io.EOF
// once the reader has everything.
func (s *Spool) CloseWrite() {
	s.mu.Lock()
	s.wdone = true
	s.data.Broadcast()
	s.mu.Unlock()
}

// Interrupt makes a Write that waits for room (Block) go on over the
// bound, and every later one too: a shutdown must not lose what was read.
func (s *Spool) Interrupt() {
	s.mu.Lock()
	s.interrupted = true
	s.room.Broadcast()
	s.mu.Unlock()
}

// StopReading makes a Next that waits, and every later one, return
// ErrClosed; what was not read stays in the spool.
func (s *Spool) StopReading() {
	s.mu.Lock()
	s.rstop = true
	s.data.Broadcast()
	s.mu.Unlock()
}

// Next returns the next chunk of records, waiting for one. Chunks read
// back from the files are read into buf; if the next one does not fit, Next
// returns a Chunk with only Need set. It returns io.EOF after CloseWrite
// once everything written was returned, ErrClosed after StopReading.
func (s *Spool) Next(buf []byte) (Chunk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.rstop || s.closed {
			return Chunk{}, ErrClosed
		}
		if len(s.mem) > 0 {
			c := s.mem[0]
			n := copy(s.mem, s.mem[1:]) // a few entries: cheaper than a ring
			s.mem[n] = Chunk{}
			s.mem = s.mem[:n]
			return c, nil
		}
		if !s.live {
			c, err, ok := s.readFiles(buf)
			if ok || err != nil {
				return c, err
			}
			continue // caught up: live now
		}
		if s.wdone {
			return Chunk{}, io.EOF
		}
		s.data.Wait()
	}
}

// readFiles reads the next chunk at rpos; ok false means the reader is
// caught up (and is now live).
func (s *Spool) readFiles(buf []byte) (c Chunk, err error, ok bool) {
	for {
		i := slices.IndexFunc(s.segs, func(g *segment) bool { return g.id >= s.rpos.Seg })
		if i < 0 {
			s.live = true
			return Chunk{}, nil, false
		}
		seg := s.segs[i]
		if seg.id > s.rpos.Seg {
			s.rpos = Pos{Seg: seg.id, Off: seg.firstOff()}
		}
		j := slices.IndexFunc(seg.marks, func(m mark) bool { return m.end > s.rpos.Off })
		if j < 0 {
			if seg == s.active {
				s.live = true
				seg.split = true
				return Chunk{}, nil, false
			}
			s.rpos = Pos{Seg: seg.id + 1}
			continue
		}
		m := seg.marks[j]
		from := max(m.off, s.rpos.Off)
		n := m.end - from
		if n > int64(len(buf)) {
			return Chunk{Need: int(n)}, nil, true
		}
		if s.rfile == nil || s.rseg != seg.id {
			if s.rfile != nil {
				s.rfile.Close()
			}
			if s.rfile, err = os.Open(seg.path); err != nil {
				s.rfile = nil
				return Chunk{}, fmt.Errorf("spool: %w", err), true
			}
			s.rseg = seg.id
		}
		if from == m.off {
			seg.taken += m.recs
		}
		end := Pos{Seg: seg.id, Off: m.end}
		s.rpos = end
		if j == len(seg.marks)-1 && seg == s.active {
			seg.split = true // the next write starts a new chunk
		}
		f, recovered := s.rfile, seg.recovered
		s.reading = true
		s.mu.Unlock()
		_, err = f.ReadAt(buf[:n], from)
		s.mu.Lock()
		s.reading = false
		if s.rstale {
			f.Close()
			s.rstale = false
		}
		if err != nil {
			return Chunk{}, fmt.Errorf("spool: read %s: %w", seg.path, err), true
		}
		valid, records := Compact(buf[:n], func(r Region) {
			if recovered {
				return // counted by the scan at Open
			}
			s.damaged.Add(1)
			s.log.Error("spool: damaged record skipped (checksum failed)", "file", seg.path,
				"offset", from+int64(r.Off), "bytes", r.Len)
		})
		if lost := m.recs - int64(records); lost > 0 && from == m.off {
			s.recs -= lost // damaged since it was written
		}
		s.drained.Add(int64(records))
		return Chunk{Data: buf[:valid], Records: records, End: end, Disk: true}, nil, true
	}
}

// Ack acknowledges the chunks up to end, holding records records: it
// must be called in the order Next returned them (a chunk not delivered
// keeps every later one in the spool).
func (s *Spool) Ack(end Pos, records int) {
	s.mu.Lock()
	s.acked = end
	s.recs -= int64(records)
	s.mu.Unlock()
	select {
	case s.ackSignal <- struct{}{}:
	default:
	}
}

// housekeep deletes acknowledged segments, persists the acknowledged
// position and fsyncs every SyncInterval.
func (s *Spool) housekeep() {
	defer s.housekeeper.Done()
	var tick <-chan time.Time
	if s.opt.SyncInterval > 0 {
		t := time.NewTicker(s.opt.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.ackSignal:
			s.release()
		case <-tick:
			start := time.Now()
			synced, err := s.sync(false)
			if err != nil {
				s.log.Error("spool: fsync failed", "err", err)
			}
			if synced && s.opt.OnSync != nil {
				s.opt.OnSync(time.Since(start))
			}
		}
	}
}

// release deletes the segments every record of which was acknowledged and
// writes the acknowledged position.
func (s *Spool) release() {
	s.mu.Lock()
	acked := s.acked
	var gone []*segment
	for len(s.segs) > 0 {
		seg := s.segs[0]
		if seg.id > acked.Seg || seg.id == acked.Seg && (seg == s.active || acked.Off < seg.size) {
			break
		}
		gone = append(gone, seg)
		s.segs = s.segs[1:]
		s.bytes -= seg.size
		s.removeFile(seg)
	}
	if len(gone) > 0 {
		s.room.Broadcast()
	}
	write := acked != s.persisted
	s.persisted = acked
	s.mu.Unlock()
	if write {
		if err := s.writeAck(acked); err != nil {
			s.log.Error("spool: cannot record the acknowledged position", "err", err)
		}
	}
}

func (s *Spool) writeAck(p Pos) error {
	var b [ackFileSize]byte
	binary.LittleEndian.PutUint64(b[:], p.Seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.Off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], castagnoli))
	_, err := s.ack.WriteAt(b[:], 0)
	return err
}

type sealedFile struct {
	id uint64
	f  *os.File
}

// sync fsyncs the rolled-over files (and closes them), the current one,
// the acknowledged position and, after files came or went, the directory.
// When force is false and no record waiting for Kafka is older than the
// sync interval, the segments are not fsynced: a power loss may take
// the last interval's writes anyway, and records Kafka acknowledges
// within it need no fsync (at high rates their files are deleted before
// the kernel writes them back at all).
func (s *Spool) sync(force bool) (bool, error) {
	s.mu.Lock()
	need := force || s.recs > 0 && time.Duration(time.Now().UnixNano()-s.oldestTime()) >= s.opt.SyncInterval
	var sealed []sealedFile
	keep := s.sealed[:0]
	for _, sf := range s.sealed {
		switch {
		case !slices.ContainsFunc(s.segs, func(g *segment) bool { return g.id == sf.id }):
			sf.f.Close() // deleted: nothing to keep
		case need:
			sealed = append(sealed, sf)
		default:
			keep = append(keep, sf)
		}
	}
	s.sealed = keep
	w := s.w
	dir := s.dirDirty && need
	if dir {
		s.dirDirty = false
	}
	s.mu.Unlock()
	if !need {
		return false, nil
	}
	var errs []error
	for _, sf := range sealed {
		errs = append(errs, sf.f.Sync(), sf.f.Close())
	}
	if w != nil {
		errs = append(errs, w.Sync())
	}
	errs = append(errs, s.ack.Sync())
	if dir {
		if d, err := os.Open(s.opt.Dir); err == nil {
			errs = append(errs, d.Sync(), d.Close())
		}
	}
	return true, errors.Join(errs...)
}

// Close persists the acknowledged position, fsyncs and closes every file
// and releases the lock. What was not acknowledged stays for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed, s.interrupted = true, true
	s.data.Broadcast()
	s.room.Broadcast()
	s.mu.Unlock()
	close(s.stop)
	s.housekeeper.Wait()
	s.release()
	_, err := s.sync(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		err = errors.Join(err, s.w.Close())
		s.w = nil
	}
	if s.rfile != nil {
		s.rfile.Close()
		s.rfile = nil
	}
	err = errors.Join(err, s.ack.Close(), s.lock.Close())
	return err
}

// Stats returns the spool's counts.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{Records: max(s.recs, 0), Bytes: s.bytes, Segments: len(s.segs), Recovered: s.recovered}
	if st.Records > 0 {
		st.OldestAge = time.Duration(time.Now().UnixNano() - s.oldestTime())
	}
	s.mu.Unlock()
	st.Drained = s.drained.Load()
	st.DroppedOldest, st.DroppedNewest = s.droppedOldest.Load(), s.droppedNewest.Load()
	st.TornTails, st.Damaged, st.BadHeaders = s.tornTails.Load(), s.damaged.Load(), s.badHeaders.Load()
	return st
}

// oldestTime is when the chunk holding the first unacknowledged record
// was written (for recovered segments: when the segment was made).
func (s *Spool) oldestTime() int64 {
	for _, seg := range s.segs {
		for _, m := range seg.marks {
			if seg.id > s.acked.Seg || seg.id == s.acked.Seg && m.end > s.acked.Off {
				return m.t
			}
		}
	}
	return time.Now().UnixNano()
}
