package template

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
)

// FileVersion is the version of the format Save writes.
const FileVersion = 1

// maxFileFields bounds one template in a file (a 64 KiB set holds at most
// 16383 four-byte field specifiers).
const maxFileFields = 16383

type fileTemplate struct {
	Exporter    netip.Addr `json:"exporter"`
	Version     uint16     `json:"version"`
	Domain      uint32     `json:"domain"`
	ID          uint16     `json:"id"`
	Options     bool       `json:"options,omitempty"`
	ScopeFields int        `json:"scope_fields,omitempty"`
	Fields      [][3]int64 `json:"fields"` // id, length, pen
	SeenNs      uint64     `json:"seen_ns"`
}

type fileBody struct {
	Format    string         `json:"format"`
	Version   int            `json:"version"`
	Templates []fileTemplate `json:"templates"`
}

const fileFormat = "flowpipe-templates"

// Save writes every template as JSON (a small versioned document), sorted
// so that equal caches give equal files.
func (c *Cache[T]) Save(w io.Writer) error {
	c.mu.RLock()
	body := fileBody{Format: fileFormat, Version: FileVersion, Templates: make([]fileTemplate, 0, len(c.m))}
	for k, t := range c.m {
		ft := fileTemplate{Exporter: k.Exporter, Version: k.Version, Domain: k.Domain, ID: k.ID,
			Options: t.Spec.Options, ScopeFields: t.Spec.ScopeFields, SeenNs: t.seenNs,
			Fields: make([][3]int64, len(t.Spec.Fields))}
		for i, f := range t.Spec.Fields {
			ft.Fields[i] = [3]int64{int64(f.ID), int64(f.Length), int64(f.PEN)}
		}
		body.Templates = append(body.Templates, ft)
	}
	c.mu.RUnlock()
	sort.Slice(body.Templates, func(i, j int) bool {
		a, b := &body.Templates[i], &body.Templates[j]
		if a.Exporter != b.Exporter {
			return a.Exporter.Less(b.Exporter)
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		return a.ID < b.ID
	})
	enc := json.NewEncoder(w)
	if err := enc.Encode(&body); err != nil {
		return fmt.Errorf("template: save: %w", err)
	}
	return nil
}

// Load adds the templates of a file written by Save, as if each had been
// received at its saved time (so expiry goes on where it stopped; pass a
// nowNs to expire the stale ones at once). A malformed file is refused as
// a whole; templates over the limits are skipped and counted. It returns
// how many templates were loaded.
func (c *Cache[T]) Load(r io.Reader, nowNs uint64) (int, error) {
	var body fileBody
	dec := json.NewDecoder(io.LimitReader(r, 256<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return 0, fmt.Errorf("%w: %v", errBadFile, err)
	}
	if body.Format != fileFormat || body.Version != FileVersion {
		return 0, fmt.Errorf("%w: format %q version %d, want %q version %d", errBadFile, body.Format, body.Version, fileFormat, FileVersion)
	}
	type item struct {
		k    Key
		s    Spec
		seen uint64
	}
	items := make([]item, 0, len(body.Templates))
	for i, ft := range body.Templates {
		if !ft.Exporter.IsValid() || (ft.Version != 9 && ft.Version != 10) || ft.ID < 256 ||
			len(ft.Fields) == 0 || len(ft.Fields) > maxFileFields || ft.ScopeFields < 0 || ft.ScopeFields > len(ft.Fields) ||
			(!ft.Options && ft.ScopeFields != 0) {
			return 0, fmt.Errorf("%w: template %d is invalid", errBadFile, i)
		}
		s := Spec{Options: ft.Options, ScopeFields: ft.ScopeFields, Fields: make([]Field, len(ft.Fields))}
		for j, f := range ft.Fields {
			if f[0] < 0 || f[0] > 0x7fff || f[1] < 0 || f[1] > 0xffff || f[2] < 0 || f[2] > 0xffffffff {
				return 0, fmt.Errorf("%w: template %d field %d is out of range", errBadFile, i, j)
			}
			s.Fields[j] = Field{ID: uint16(f[0]), Length: uint16(f[1]), PEN: uint32(f[2])}
		}
		items = append(items, item{Key{ft.Exporter.Unmap(), ft.Version, ft.Domain, ft.ID}, s, ft.SeenNs})
	}
	n := 0
	var firstErr error
	for _, it := range items {
		if _, _, err := c.Put(it.k, it.s, it.seen); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
	}
	if nowNs > 0 {
		c.Expire(nowNs)
	}
	if firstErr != nil {
		return n, fmt.Errorf("template: load: some templates skipped: %w", firstErr)
	}
	return n, nil
}
