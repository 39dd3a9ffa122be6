package export

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/flowpipe/flowpipe/pkg/wire"
)

// pmacct's JSON, read with wire's JSON scanner: its records are flat
// objects, whose nested values (tags, ...) are skipped.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonError says why a value is not flow JSON.
func jsonError(err error) error {
	if se, ok := err.(*wire.SyntaxError); ok {
		return fmt.Errorf("export: %w: %s at column %d", ErrBadJSON, se.Reason, se.Offset+1)
	}
	return err
}

// isPmacct reads keys until one tells the dialect, checking the syntax of
// what it reads (of the whole object when no key decides).
func (p *Parser) isPmacct(value []byte) (bool, error) {
	s := &p.js
	s.Reset(value)
	more, err := s.Open('{')
	var buf [32]byte
	for more && err == nil {
		key, esc, kerr := s.Key()
		if kerr != nil {
			return false, jsonError(kerr)
		}
		if esc {
			key = wire.UnquoteJSON(buf[:0], key)
		}
		if pm, decided := dialect(key); decided {
			return pm, nil
		}
		if err = s.Skip(); err == nil {
			more, err = s.More('}')
		}
	}
	if err == nil && !s.AtEnd() {
		err = s.Fail(s.Pos(), "data after the object")
	}
	return false, jsonError(err)
}

func (p *Parser) parsePmacct(value []byte, r *Record) error {
	p.scratch = p.scratch[:0]
	var haveCounter bool
	var peer []byte
	s := &p.js
	s.Reset(value)
	more, err := s.Open('{')
	var buf [32]byte
	for more && err == nil {
		key, esc, kerr := s.Key()
		if kerr != nil {
			return jsonError(kerr)
		}
		if esc {
			key = wire.UnquoteJSON(buf[:0], key)
		}
		var v uint64
		switch string(key) {
		case "as_src":
			v, err = s.Uint(math.MaxUint32)
			r.SrcAS = uint32(v)
		case "as_dst":
			v, err = s.Uint(math.MaxUint32)
			r.DstAS = uint32(v)
		case "bytes":
			r.Bytes, err = s.Uint(math.MaxUint64)
			haveCounter = true
		case "packets":
			r.Packets, err = s.Uint(math.MaxUint64)
			haveCounter = true
		case "flows":
			r.Flows, err = s.Uint(math.MaxUint64)
			haveCounter = true
		case "sampling_rate":
			r.SamplingRate, err = s.Uint(math.MaxUint64)
		case "label":
			r.Label, err = p.str()
		case "peer_ip_src":
			peer, err = p.str()
		default:
			err = s.Skip()
		}
		if err == nil {
			more, err = s.More('}')
		}
	}
	if err == nil && !s.AtEnd() {
		err = s.Fail(s.Pos(), "data after the object")
	}
	if err != nil {
		return jsonError(err)
	}
	if !haveCounter {
		return fmt.Errorf("export: %w", ErrNoCounter)
	}
	if len(peer) > 0 {
		if a, err := netip.ParseAddr(unsafeString(peer)); err == nil {
			r.Sampler = a.Unmap()
		}
	}
	return nil
}

// str reads a string (or null, returned as nil). Without escapes the
// result points into the input; otherwise it is unescaped onto p.scratch.
func (p *Parser) str() ([]byte, error) {
	s := &p.js
	if s.Null() {
		return nil, nil
	}
	if s.Peek() != '"' {
		return nil, s.Fail(s.Pos(), "want a string")
	}
	raw, esc, err := s.String()
	if err != nil || !esc {
		return raw, err
	}
	from := len(p.scratch)
	p.scratch = wire.UnquoteJSON(p.scratch, raw)
	return p.scratch[from:len(p.scratch):len(p.scratch)], nil
}
