package collect

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

var sampledExporter = netip.MustParseAddrPort("192.0.2.9:2055")

// sampledIPFIX returns flowgen's template packet (with its sampling
// options data, 1 in rate) and data packets.
func sampledIPFIX(t *testing.T, p flowgen.Protocol, rate uint32) (tmpl []byte, data [][]byte) {
	g, err := flowgen.New(flowgen.Config{Protocol: p, Seed: 11, SamplingRate: rate, TemplateInterval: -1, Exporter: sampledExporter.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	tmpl = bytes.Clone(g.Templates())
	for range 3 {
		pkt, _ := g.Next()
		data = append(data, bytes.Clone(pkt))
	}
	return tmpl, data
}

func decodeWith(t *testing.T, s *StandardDecoders, pkts ...[]byte) []*flowpb.FlowMessage {
	t.Helper()
	decs, err := s.New(0, decode.NopObserver{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*flowpb.FlowMessage
	for _, p := range pkts {
		err := decs.NetFlow.Decode(decode.Packet{Data: p, Exporter: sampledExporter, ReceivedNs: uint64(time.Now().UnixNano())},
			func(m *flowpb.FlowMessage) { out = append(out, m.CloneVT()) })
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestTemplatesFileKeepsSamplingRates: the rates learnt from options data
// are saved beside the templates and restored, so that after a restart the
// first data records carry them (v9 and IPFIX).
func TestTemplatesFileKeepsSamplingRates(t *testing.T) {
	for _, p := range []flowgen.Protocol{flowgen.NetFlowV9, flowgen.IPFIX} {
		path := filepath.Join(t.TempDir(), "templates.json")
		tmpl, data := sampledIPFIX(t, p, 512)
		before := NewStandardDecoders(DecoderConfig{})
		decodeWith(t, before, tmpl)
		if err := before.SaveTemplates(path); err != nil {
			t.Fatal(err)
		}

		after := NewStandardDecoders(DecoderConfig{})
		n, err := after.LoadTemplates(path)
		if err != nil || n == 0 {
			t.Fatalf("loaded %d templates: %v", n, err)
		}
		if after.Sampling().Len() != 1 {
			t.Fatalf("%d sampling rates loaded", after.Sampling().Len())
		}
		msgs := decodeWith(t, after, data...) // no template, no options data
		if len(msgs) == 0 {
			t.Fatal("no records")
		}
		for _, m := range msgs {
			if m.SamplingRate != 512 {
				t.Fatalf("protocol %v: sampling_rate %d after restart, want 512", p, m.SamplingRate)
			}
		}
	}
}

// TestTemplatesFileCompatible: a file written now is read by the template
// loader of earlier versions (the same template.Cache.Load, which reads
// the first document), and a file of an earlier version (templates only)
// still loads.
func TestTemplatesFileCompatible(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "templates.json")
	tmpl, data := sampledIPFIX(t, flowgen.IPFIX, 64)
	s := NewStandardDecoders(DecoderConfig{})
	decodeWith(t, s, tmpl)
	if err := s.SaveTemplates(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(docs) != 2 || !strings.Contains(docs[0], `"format":"flowpipe-templates"`) || !strings.Contains(docs[1], `"format":"flowpipe-sampling"`) {
		t.Fatalf("file:\n%s", raw)
	}
	var rates struct {
		Rates []struct {
			Rate uint64 `json:"rate"`
		} `json:"rates"`
	}
	if err := json.Unmarshal([]byte(docs[1]), &rates); err != nil || len(rates.Rates) != 1 || rates.Rates[0].Rate != 64 {
		t.Fatalf("sampling document %s: %v", docs[1], err)
	}

	// The previous version's reader.
	old := template.New(template.Config{}, func(template.Key, *template.Spec) (int, error) { return 0, nil })
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := old.Load(f, uint64(time.Now().UnixNano())); err != nil || n != int(s.Templates().Stats().Templates) {
		t.Fatalf("older reader loaded %d of %d: %v", n, s.Templates().Stats().Templates, err)
	}

	// A file the previous version wrote: templates only.
	oldPath := filepath.Join(dir, "old.json")
	if err := os.WriteFile(oldPath, []byte(docs[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	again := NewStandardDecoders(DecoderConfig{})
	if n, err := again.LoadTemplates(oldPath); err != nil || n == 0 || again.Sampling().Len() != 0 {
		t.Fatalf("old file: %d templates, %d rates, %v", n, again.Sampling().Len(), err)
	}
	if msgs := decodeWith(t, again, data...); len(msgs) == 0 || msgs[0].SamplingRate != 0 {
		t.Fatalf("old file decoded %d records", len(msgs))
	}

	// A broken second document is an error, not silently ignored.
	if err := os.WriteFile(oldPath, []byte(docs[0]+"\n{\"format\":"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStandardDecoders(DecoderConfig{}).LoadTemplates(oldPath); err == nil {
		t.Fatal("a truncated sampling document was accepted")
	}
}
