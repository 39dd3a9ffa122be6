package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/netflow"
	"github.com/flowpipe/flowpipe/pkg/decode/sflow"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
)

// DecoderConfig configures the standard decoders.
type DecoderConfig struct {
	Templates template.Config
	Mapping   *mapping.Mapping // nil: no extra elements
	SFlow     sflow.Config
}

// StandardDecoders builds every worker's NetFlow/IPFIX and sFlow decoders
// around one template cache and one sampling-rate store. Both are safe for
// concurrent use, so they are shared: they are saved and loaded in one
// place, and an exporter re-hashed to another worker would still find its
// templates and rates.
type StandardDecoders struct {
	cfg       DecoderConfig
	templates *netflow.Templates
	sampling  *netflow.Sampling

	mu    sync.Mutex
	sflow []*sflow.Decoder
}

// NewStandardDecoders returns the decoder set of flowcollect.
func NewStandardDecoders(cfg DecoderConfig) *StandardDecoders {
	t := netflow.NewTemplates(cfg.Templates, cfg.Mapping)
	return &StandardDecoders{cfg: cfg, templates: t, sampling: netflow.NewSampling(t.Config().TTL)}
}

// New is a Config.NewDecoders.
func (s *StandardDecoders) New(_ int, obs decode.Observer) (Decoders, error) {
	nf := netflow.NewDecoder(netflow.Config{Templates: s.templates, Sampling: s.sampling, Mapping: s.cfg.Mapping,
		Packet: s.cfg.Mapping.PacketOptions(), Observer: obs})
	scfg := s.cfg.SFlow
	scfg.Observer = obs
	scfg.Packet = s.cfg.Mapping.PacketOptions()
	sf := sflow.NewDecoder(scfg)
	s.mu.Lock()
	s.sflow = append(s.sflow, sf)
	s.mu.Unlock()
	return Decoders{NetFlow: nf, SFlow: sf}, nil
}

// Templates is the shared template cache.
func (s *StandardDecoders) Templates() *netflow.Templates { return s.templates }

// Sampling is the shared sampling-rate store.
func (s *StandardDecoders) Sampling() *netflow.Sampling { return s.sampling }

// maxStateFile bounds the templates file read at start.
const maxStateFile = 256 << 20

// LoadTemplates loads a file written by SaveTemplates; a missing file is
// not an error (first start). The file holds the templates document, then
// the sampling-rate document (a file of an older version, without it, loads
// its templates). It returns how many templates were loaded.
func (s *StandardDecoders) LoadTemplates(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("collect: templates file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile))
	if err != nil {
		return 0, fmt.Errorf("collect: templates file: %w", err)
	}
	now := uint64(time.Now().UnixNano())
	dec := json.NewDecoder(bytes.NewReader(data))
	var doc json.RawMessage
	if err := dec.Decode(&doc); err != nil {
		return 0, fmt.Errorf("collect: templates file %s: %w", path, err)
	}
	n, err := s.templates.Load(bytes.NewReader(doc), now)
	if err != nil {
		return n, fmt.Errorf("collect: templates file %s: %w", path, err)
	}
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF): // written before sampling rates were kept
	case err != nil:
		return n, fmt.Errorf("collect: templates file %s: sampling rates: %w", path, err)
	default:
		if _, err := s.sampling.Load(bytes.NewReader(doc), now); err != nil {
			return n, fmt.Errorf("collect: templates file %s: %w", path, err)
		}
	}
	return n, nil
}

// SaveTemplates writes the templates, then the sampling rates, to path
// through a temporary file and a rename, so that a crash never leaves half
// a file. The templates come first, in the format of earlier versions,
// which read that first document and ignore what follows.
func (s *StandardDecoders) SaveTemplates(path string) error {
	now := uint64(time.Now().UnixNano())
	s.templates.Expire(now)
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("collect: saving templates: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := s.templates.Save(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("collect: saving templates: %w", err)
	}
	if err := s.sampling.Save(tmp, now); err != nil {
		tmp.Close()
		return fmt.Errorf("collect: saving templates: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("collect: saving templates: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("collect: saving templates: %w", err)
	}
	return nil
}

// Collector returns the metrics read from the decoders at scrape time.
func (s *StandardDecoders) Collector() prometheus.Collector { return &decoderCollector{s: s} }

var (
	descTemplates = prometheus.NewDesc("flowcollect_templates",
		"NetFlow v9 and IPFIX templates known (data and options).", nil, nil)
	descPendingSets = prometheus.NewDesc("flowcollect_pending_sets",
		"Data sets held until their template arrives.", nil, nil)
	descPendingBytes = prometheus.NewDesc("flowcollect_pending_bytes",
		"Bytes of the data sets held until their template arrives.", nil, nil)
	descPendingDropped = prometheus.NewDesc("flowcollect_pending_sets_dropped_total",
		"Held data sets dropped: buffer full, too old, or their template never came.", nil, nil)
	descPendingDecoded = prometheus.NewDesc("flowcollect_pending_sets_decoded_total",
		"Held data sets decoded once their template arrived.", nil, nil)
	descTemplateEvents = prometheus.NewDesc("flowcollect_template_events_total",
		"Template cache events: expired, withdrawn, refused by a limit, updated.", []string{"event"}, nil)
	descSamplingRates = prometheus.NewDesc("flowcollect_sampling_rates",
		"Exporter observation domains with a sampling rate learned from options data (restored from --templates-file included).", nil, nil)
	descSFlowSamples = prometheus.NewDesc("flowcollect_sflow_samples_total",
		"sFlow samples seen, by kind; counter samples are counted, not turned into flows.", []string{"kind"}, nil)
)

type decoderCollector struct{ s *StandardDecoders }

func (c *decoderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTemplates, descPendingSets, descPendingBytes, descPendingDropped, descPendingDecoded, descTemplateEvents, descSamplingRates, descSFlowSamples} {
		ch <- d
	}
}

func (c *decoderCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.templates.Stats()
	ch <- prometheus.MustNewConstMetric(descTemplates, prometheus.GaugeValue, float64(st.Templates))
	ch <- prometheus.MustNewConstMetric(descPendingSets, prometheus.GaugeValue, float64(st.PendingSets))
	ch <- prometheus.MustNewConstMetric(descPendingBytes, prometheus.GaugeValue, float64(st.PendingBytes))
	ch <- prometheus.MustNewConstMetric(descPendingDropped, prometheus.CounterValue, float64(st.PendingDropped))
	ch <- prometheus.MustNewConstMetric(descPendingDecoded, prometheus.CounterValue, float64(st.PendingDecoded))
	ch <- prometheus.MustNewConstMetric(descSamplingRates, prometheus.GaugeValue, float64(c.s.sampling.Len()))
	for _, e := range []struct {
		name string
		v    uint64
	}{{"expired", st.Expired}, {"withdrawn", st.Withdrawn}, {"limit", st.LimitHits}, {"updated", st.Updated}} {
		ch <- prometheus.MustNewConstMetric(descTemplateEvents, prometheus.CounterValue, float64(e.v), e.name)
	}
	var sum sflow.Stats
	c.s.mu.Lock()
	for _, d := range c.s.sflow {
		x := d.Stats()
		sum.FlowSamples += x.FlowSamples + x.ExpandedFlowSamples
		sum.CounterSamples += x.CounterSamples + x.ExpandedCounterSamples
		sum.OtherSamples += x.OtherSamples
		sum.BadSamples += x.BadSamples
	}
	c.s.mu.Unlock()
	for _, e := range []struct {
		name string
		v    uint64
	}{{"flow", sum.FlowSamples}, {"counter", sum.CounterSamples}, {"other", sum.OtherSamples}, {"bad", sum.BadSamples}} {
		ch <- prometheus.MustNewConstMetric(descSFlowSamples, prometheus.CounterValue, float64(e.v), e.name)
	}
}
