package netflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// samplingState is what options data said about one exporter's domain
// (exporter address, version, observation domain / source id). Each
// Decoder keeps its own, unlocked, on the hot path; Sampling keeps the
// copies that are saved and that seed a decoder meeting the domain first.
type samplingState struct {
	key          seqKey
	rate         uint64            // the domain's default
	rateFromID   bool              // rate came from a record with a sampler id
	byID         map[uint64]uint64 // per sampler / selector id
	systemInitMs uint64            // systemInitTimeMilliseconds, for IPFIX 21/22
	publishedNs  uint64            // when it was last copied to the Sampling
}

// maxSamplers bounds the rates kept per domain.
const maxSamplers = 1024

// set records a rate announced by options data; it reports a change.
func (s *samplingState) set(rate uint64, id uint64, hasID bool) bool {
	if rate == 0 {
		return false
	}
	changed := false
	if hasID {
		if s.byID == nil {
			s.byID = make(map[uint64]uint64)
		}
		if old, ok := s.byID[id]; (ok || len(s.byID) < maxSamplers) && old != rate {
			s.byID[id], changed = rate, true
		}
		if s.rate == 0 || s.rateFromID {
			changed = changed || s.rate != rate || !s.rateFromID
			s.rate, s.rateFromID = rate, true
		}
		return changed
	}
	changed = s.rate != rate || s.rateFromID
	s.rate, s.rateFromID = rate, false
	return changed
}

func (d *Decoder) samplingFor(k seqKey) *samplingState {
	if s := d.lastSamp; s != nil && s.key == k {
		return s // an exporter's sets come one after the other
	}
	s := d.samplers[k]
	if s == nil {
		if len(d.samplers) >= maxSeqStates {
			clear(d.samplers) // exporters come and go; the Sampling reseeds
		}
		s = d.sampling.seed(k)
		d.samplers[k] = s
	}
	d.lastSamp = s
	return s
}

// Sampling holds the sampling rates (and system init times) learned from
// options data, per exporter address, version and observation domain, so
// that they can be saved and restored with the templates: a restarted
// collector then sets sampling_rate on the first data record, without
// waiting for the exporter to resend its options data. Decoders sharing a
// Sampling also seed each other for a domain one of them meets first.
//
// It is safe for concurrent use; decoders touch it only when a domain is
// first met and when options data changes (or confirms, once a minute)
// what they know.
type Sampling struct {
	ttl time.Duration

	mu sync.Mutex
	m  map[seqKey]*samplingEntry
}

type samplingEntry struct {
	rate         uint64
	rateFromID   bool
	byID         map[uint64]uint64
	systemInitMs uint64
	seenNs       uint64 // last time options data said it
}

// republishNs is how often a decoder confirms an unchanged rate, which
// keeps it from expiring.
const republishNs = uint64(time.Minute)

// NewSampling returns an empty store whose rates expire ttl after options
// data last said them (0: 30 minutes, the template default; negative:
// never). Expired rates are dropped when saving and loading.
func NewSampling(ttl time.Duration) *Sampling {
	if ttl == 0 {
		ttl = 30 * time.Minute
	}
	return &Sampling{ttl: ttl, m: make(map[seqKey]*samplingEntry)}
}

// Len is the number of domains with a known rate.
func (s *Sampling) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// seed returns a decoder's state for k: a copy of what is known, or empty.
func (s *Sampling) seed(k seqKey) *samplingState {
	st := &samplingState{key: k}
	s.mu.Lock()
	if e := s.m[k]; e != nil {
		st.rate, st.rateFromID, st.systemInitMs = e.rate, e.rateFromID, e.systemInitMs
		st.byID = maps.Clone(e.byID)
		st.publishedNs = e.seenNs
	}
	s.mu.Unlock()
	return st
}

// publish copies a decoder's state after options data: at once when it
// changed, else at most once a minute to mark it still current.
func (s *Sampling) publish(st *samplingState, changed bool, nowNs uint64) {
	if !changed && st.publishedNs != 0 && nowNs < st.publishedNs+republishNs {
		return
	}
	if st.rate == 0 && st.systemInitMs == 0 {
		return // nothing learned worth keeping
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[st.key]
	if e == nil {
		if len(s.m) >= maxSeqStates {
			return
		}
		e = &samplingEntry{}
		s.m[st.key] = e
		changed = true
	}
	if changed {
		e.rate, e.rateFromID, e.systemInitMs = st.rate, st.rateFromID, st.systemInitMs
		e.byID = maps.Clone(st.byID)
	}
	e.seenNs = max(e.seenNs, nowNs)
	st.publishedNs = nowNs
}

func (s *Sampling) staleLocked(e *samplingEntry, nowNs uint64) bool {
	return s.ttl > 0 && nowNs > e.seenNs && nowNs-e.seenNs > uint64(s.ttl)
}

// SamplingFileVersion is the version of the document Sampling.Save writes.
const SamplingFileVersion = 1

const samplingFormat = "flowpipe-sampling"

type samplingFile struct {
	Format  string         `json:"format"`
	Version int            `json:"version"`
	Rates   []samplingItem `json:"rates"`
}

type samplingItem struct {
	Exporter     netip.Addr  `json:"exporter"`
	Version      uint16      `json:"version"`
	Domain       uint32      `json:"domain"`
	Rate         uint64      `json:"rate,omitempty"`
	RateFromID   bool        `json:"rate_from_sampler,omitempty"`
	Samplers     [][2]uint64 `json:"samplers,omitempty"` // sampler id, rate
	SystemInitMs uint64      `json:"system_init_ms,omitempty"`
	SeenNs       uint64      `json:"seen_ns"`
}

var errBadSamplingFile = errors.New("netflow: bad sampling document")

// Save writes the current rates as one JSON document (sorted, so that
// equal stores give equal files), dropping those expired at nowNs.
func (s *Sampling) Save(w io.Writer, nowNs uint64) error {
	body := samplingFile{Format: samplingFormat, Version: SamplingFileVersion, Rates: []samplingItem{}}
	s.mu.Lock()
	for k, e := range s.m {
		if s.staleLocked(e, nowNs) {
			delete(s.m, k)
			continue
		}
		it := samplingItem{Exporter: k.exporter, Version: k.version, Domain: k.domain, Rate: e.rate,
			RateFromID: e.rateFromID, SystemInitMs: e.systemInitMs, SeenNs: e.seenNs}
		for _, id := range slices.Sorted(maps.Keys(e.byID)) {
			it.Samplers = append(it.Samplers, [2]uint64{id, e.byID[id]})
		}
		body.Rates = append(body.Rates, it)
	}
	s.mu.Unlock()
	slices.SortFunc(body.Rates, func(a, b samplingItem) int {
		if c := a.Exporter.Compare(b.Exporter); c != 0 {
			return c
		}
		if a.Version != b.Version {
			return int(a.Version) - int(b.Version)
		}
		if a.Domain < b.Domain {
			return -1
		}
		if a.Domain > b.Domain {
			return 1
		}
		return 0
	})
	if err := json.NewEncoder(w).Encode(&body); err != nil {
		return fmt.Errorf("netflow: saving sampling rates: %w", err)
	}
	return nil
}

// Load adds the rates of a document written by Save, skipping those
// expired at nowNs; a malformed document is refused as a whole. It returns
// how many domains were loaded.
func (s *Sampling) Load(r io.Reader, nowNs uint64) (int, error) {
	var body samplingFile
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&body); err != nil {
		return 0, fmt.Errorf("%w: %v", errBadSamplingFile, err)
	}
	if body.Format != samplingFormat || body.Version != SamplingFileVersion {
		return 0, fmt.Errorf("%w: format %q version %d, want %q version %d", errBadSamplingFile, body.Format, body.Version, samplingFormat, SamplingFileVersion)
	}
	for i, it := range body.Rates {
		if !it.Exporter.IsValid() || (it.Version != 9 && it.Version != 10) || len(it.Samplers) > maxSamplers {
			return 0, fmt.Errorf("%w: rate %d is invalid", errBadSamplingFile, i)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, it := range body.Rates {
		e := &samplingEntry{rate: it.Rate, rateFromID: it.RateFromID, systemInitMs: it.SystemInitMs, seenNs: it.SeenNs}
		if s.staleLocked(e, nowNs) || len(s.m) >= maxSeqStates {
			continue
		}
		for _, p := range it.Samplers {
			if p[1] == 0 {
				continue
			}
			if e.byID == nil {
				e.byID = make(map[uint64]uint64, len(it.Samplers))
			}
			e.byID[p[0]] = p[1]
		}
		s.m[seqKey{it.Exporter.Unmap(), it.Version, it.Domain}] = e
		n++
	}
	return n, nil
}
