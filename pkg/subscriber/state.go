package subscriber

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// The state file: a magic line, then entries (a kind byte, the payload's
// length as a uvarint, the payload), then an end entry holding the
// CRC-32C of everything before it. A file that does not end with a valid
// end entry is rejected whole, so a torn write can never half-load.
const stateMagic = "flowpipe subscriber state v1\n"

const (
	entryHeader   = 1 // clock
	entryNAS      = 2 // one NAS, in index order: kind (0 address, 1 identifier), bytes
	entrySession  = 3
	entryNATBlock = 4
	entryPosition = 5 // a source's position: name, opaque bytes
	entryEnd      = 0xff
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadState is returned by LoadState for a file that is not a complete
// state file.
var ErrBadState = errors.New("subscriber: bad state file")

// snapshot is what SaveState writes, taken under the writer locks and
// encoded after they are released: sessions are read through their atomic
// fields, the rest is immutable once published.
type snapshot struct {
	clock    int64
	nases    []nasKey
	sessions []*Session
	nat      []natEntry
}

type natEntry struct {
	pub uint32
	a   *natAddr
}

func (t *Table) snapshot() snapshot {
	t.mu.Lock()
	sn := snapshot{clock: t.clock.Load(), nases: slices.Clone(t.nases)}
	sn.sessions = make([]*Session, 0, t.Len())
	t.ids.all(func(s *Session) { sn.sessions = append(sn.sessions, s) })
	for _, s := range t.closed {
		// Stopped sessions that no longer own their id (a reused id).
		if s.flags.Load()&flagGone == 0 && t.ids.get(s.nas, s.SessionID()) != s {
			sn.sessions = append(sn.sessions, s)
		}
	}
	t.mu.Unlock()
	t.nat.mu.Lock()
	t.nat.idx.all(func(k uint32, a *natAddr) { sn.nat = append(sn.nat, natEntry{k, a}) })
	t.nat.mu.Unlock()
	return sn
}

// SaveState writes the sessions, the NAT port blocks, the clock and the
// given source positions to path, atomically (a temporary file synced and
// renamed over it). Records applied while it runs may or may not be in
// the file; a position saved with it never runs ahead of the sessions, as
// long as the positions were taken before SaveState was called.
func (t *Table) SaveState(path string, positions map[string][]byte) (err error) {
	sn := t.snapshot()
	// In start order, so that loading rebuilds each chain oldest first
	// and each id ends with its newest session.
	sort.Slice(sn.sessions, func(i, j int) bool { return sn.sessions[i].start.Load() < sn.sessions[j].start.Load() })

	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("subscriber: state: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	crc := crc32.New(castagnoli)
	w := bufio.NewWriterSize(io.MultiWriter(tmp, crc), 1<<16)
	e := stateEncoder{w: w}
	e.raw([]byte(stateMagic))
	e.entry(entryHeader, func(b []byte) []byte { return binary.AppendVarint(b, sn.clock) })
	for _, k := range sn.nases {
		e.entry(entryNAS, func(b []byte) []byte {
			if k.addr.IsValid() {
				return appendBytes(append(b, 0), k.addr.AsSlice())
			}
			return appendBytes(append(b, 1), []byte(k.id))
		})
	}
	for _, s := range sn.sessions {
		if s.flags.Load()&flagGone != 0 {
			continue
		}
		e.entry(entrySession, func(b []byte) []byte { return appendSession(b, s) })
	}
	for _, n := range sn.nat {
		for _, bl := range n.a.blocks {
			e.entry(entryNATBlock, func(b []byte) []byte {
				b = binary.BigEndian.AppendUint32(b, n.pub)
				b = binary.AppendUvarint(b, uint64(bl.lo))
				b = binary.AppendUvarint(b, uint64(bl.hi))
				b = appendBytes(b, bl.private.AsSlice())
				b = binary.AppendVarint(b, bl.from)
				return binary.AppendVarint(b, bl.to.Load())
			})
		}
	}
	names := make([]string, 0, len(positions))
	for name := range positions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		e.entry(entryPosition, func(b []byte) []byte { return appendBytes(appendBytes(b, []byte(name)), positions[name]) })
	}
	if e.err == nil {
		e.err = w.Flush()
	}
	if e.err != nil {
		return fmt.Errorf("subscriber: state: %w", e.err)
	}
	// The end entry's checksum covers everything before it.
	end := binary.BigEndian.AppendUint32([]byte{entryEnd, 4}, crc.Sum32())
	if _, err := tmp.Write(end); err != nil {
		return fmt.Errorf("subscriber: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("subscriber: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("subscriber: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("subscriber: state: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // the rename itself survives a crash
		d.Close()
	}
	return nil
}

func appendSession(b []byte, s *Session) []byte {
	b = binary.AppendUvarint(b, uint64(s.nas))
	b = append(b, byte(s.source), byte(s.flags.Load()&(flagStartKnown|flagStopped)))
	b = binary.AppendVarint(b, s.start.Load())
	b = binary.AppendVarint(b, s.end.Load())
	b = appendBytes(b, []byte(s.SessionID()))
	b = appendBytes(b, []byte(s.User()))
	b = appendBytes(b, []byte(s.CallingStationID()))
	b = binary.BigEndian.AppendUint32(b, s.v4)
	ps := s.Prefixes()
	b = append(b, byte(len(ps)))
	for _, p := range ps {
		a := p.Addr().As16()
		b = append(append(b, a[:]...), byte(p.Bits()))
	}
	return b
}

func appendBytes(b, v []byte) []byte { return append(binary.AppendUvarint(b, uint64(len(v))), v...) }

type stateEncoder struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (e *stateEncoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *stateEncoder) entry(kind byte, payload func([]byte) []byte) {
	e.buf = payload(e.buf[:0])
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := binary.PutUvarint(hdr[1:], uint64(len(e.buf)))
	e.raw(hdr[:1+n])
	e.raw(e.buf)
}

// LoadState reads a state file written by SaveState into t, which must be
// empty, and returns the source positions it held. A missing file is not
// an error (nothing is loaded); a damaged one is ErrBadState, with t left
// empty.
func (t *Table) LoadState(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("subscriber: state: %w", err)
	}
	defer f.Close()
	// First pass: the checksum, so that nothing of a damaged file is used.
	if err := checkState(f); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrBadState, path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("subscriber: state: %w", err)
	}
	positions, err := t.readState(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrBadState, path, err)
	}
	t.Prune()
	return positions, nil
}

// checkState walks the entries up to the end entry and checks its CRC.
func checkState(f io.Reader) error {
	crc := crc32.New(castagnoli)
	r := bufio.NewReaderSize(f, 1<<16)
	return walkState(r, crc, func(byte, []byte) error { return nil })
}

// walkState reads the magic and the entries, calling fn for each but the
// end entry, and checks the end entry's CRC against crc (fed with every
// byte before it).
func walkState(r *bufio.Reader, crc hash.Hash32, fn func(kind byte, payload []byte) error) error {
	magic := make([]byte, len(stateMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != stateMagic {
		return errors.New("not a state file")
	}
	crc.Write(magic)
	var payload []byte
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return errors.New("no end entry: truncated")
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > 1<<20 {
			return errors.New("bad entry length")
		}
		if kind == entryEnd {
			sum := crc.Sum32()
			var b [4]byte
			if n != 4 {
				return errors.New("bad end entry")
			}
			if _, err := io.ReadFull(r, b[:]); err != nil || binary.BigEndian.Uint32(b[:]) != sum {
				return errors.New("checksum mismatch")
			}
			return nil
		}
		payload = slices.Grow(payload[:0], int(n))[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return errors.New("truncated entry")
		}
		var hdr [1 + binary.MaxVarintLen64]byte
		hdr[0] = kind
		crc.Write(hdr[:1+binary.PutUvarint(hdr[1:], n)])
		crc.Write(payload)
		if err := fn(kind, payload); err != nil {
			return err
		}
	}
}

func (t *Table) readState(r *bufio.Reader) (map[string][]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids.n != 0 || len(t.nases) != 0 {
		return nil, errors.New("table not empty")
	}
	positions := map[string][]byte{}
	var clock int64
	err := walkState(r, crc32.New(castagnoli), func(kind byte, p []byte) error {
		d := stateDecoder{b: p}
		switch kind {
		case entryHeader:
			clock = d.varint()
		case entryNAS:
			k := nasKey{}
			if d.byte() == 0 {
				a, ok := netip.AddrFromSlice(d.bytes())
				if !ok {
					return errors.New("bad NAS address")
				}
				k.addr = a
			} else {
				k.id = string(d.bytes())
			}
			t.nasIdx[k] = uint32(len(t.nases))
			t.nases = append(t.nases, k)
		case entrySession:
			if err := t.restoreSession(&d); err != nil {
				return err
			}
		case entryNATBlock:
			var ev natEntry
			ev.pub = d.uint32()
			lo, hi := d.uvarint(), d.uvarint()
			priv, ok := netip.AddrFromSlice(d.bytes())
			from, to := d.varint(), d.varint()
			if d.err != nil || !ok || lo > hi || hi > 65535 {
				return errors.New("bad NAT block")
			}
			t.restoreNAT(ev.pub, &natBlock{lo: uint16(lo), hi: uint16(hi), private: priv, from: from}, to)
		case entryPosition:
			name := string(d.bytes())
			positions[name] = slices.Clone(d.bytes())
		}
		if d.err != nil {
			return d.err
		}
		return nil
	})
	if err != nil {
		t.resetLocked()
		return nil, err
	}
	t.advance(clock)
	return positions, nil
}

func (t *Table) restoreSession(d *stateDecoder) error {
	nas := d.uvarint()
	source, flags := d.byte(), d.byte()
	start, end := d.varint(), d.varint()
	id, user, csid := d.bytes(), d.bytes(), d.bytes()
	v4 := d.uint32()
	np := int(d.byte())
	if d.err != nil || nas >= uint64(len(t.nases)) || Source(source) >= NumSources || end < start ||
		len(id) > MaxStringLen || len(user) > MaxStringLen || len(csid) > MaxStringLen || np > MaxPrefixes {
		return errors.New("bad session")
	}
	r := Record{Source: Source(source), SessionID: string(id), User: string(user), CallingStationID: string(csid)}
	if v4 != 0 {
		r.FramedIP = addrFromU32(v4)
	}
	for range np {
		var a [16]byte
		copy(a[:], d.n(16))
		bitsLen := int(d.byte())
		r.AddPrefix(netip.PrefixFrom(netip.AddrFrom16(a), bitsLen))
	}
	if d.err != nil {
		return d.err
	}
	t.advance(start)
	if end != open {
		t.advance(end)
	}
	t.open(uint32(nas), &r, start, end, uint32(flags)&(flagStartKnown|flagStopped), true)
	return nil
}

func (t *Table) restoreNAT(pub uint32, b *natBlock, to int64) {
	n := &t.nat
	n.mu.Lock()
	defer n.mu.Unlock()
	b.to.Store(to)
	if to == open {
		n.blocks[0].Add(1)
	} else {
		n.blocks[1].Add(1)
	}
	cur := n.idx.get(pub)
	next := &natAddr{maxSpan: b.hi - b.lo}
	if cur != nil {
		next.blocks = append(slices.Clone(cur.blocks), b)
		next.maxSpan = max(next.maxSpan, cur.maxSpan)
	} else {
		next.blocks = []*natBlock{b}
	}
	// Saved in order; kept in order.
	n.idx.set(pub, next)
	n.any.Store(true)
}

// resetLocked empties t after a failed load.
func (t *Table) resetLocked() {
	nt := New(Config{History: t.History()})
	t.v4.reset()
	t.v6.reset()
	t.ids = nt.ids
	t.nasIdx, t.nases, t.closed = nt.nasIdx, nil, nil
	t.clock.Store(0)
	for i := range t.counts {
		t.counts[i][0].Store(0)
		t.counts[i][1].Store(0)
	}
	t.nat.idx.reset()
	t.nat.blocks[0].Store(0)
	t.nat.blocks[1].Store(0)
	t.nat.any.Store(false)
}

type stateDecoder struct {
	b   []byte
	err error
}

func (d *stateDecoder) fail() {
	if d.err == nil {
		d.err = errors.New("truncated payload")
	}
}

func (d *stateDecoder) n(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) byte() byte {
	if b := d.n(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *stateDecoder) uint32() uint32 {
	if b := d.n(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *stateDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	return d.n(int(n))
}
