package netflow

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"google.golang.org/protobuf/encoding/protowire"
)

// Hand-built IPFIX messages: u16/u32 append helpers and set builders.
func u16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func u32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func ipfixMsg(domain, seq uint32, sets ...[]byte) []byte {
	b := u16(nil, 10)
	b = u16(b, 0)
	b = u32(b, 1709294400) // export time
	b = u32(b, seq)
	b = u32(b, domain)
	for _, s := range sets {
		b = append(b, s...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func set(id uint16, body ...[]byte) []byte {
	b := u16(nil, id)
	b = u16(b, 0)
	for _, x := range body {
		b = append(b, x...)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

// tmpl is a template record; fields are (id, length[, pen]) triples.
func tmpl(id uint16, fields ...[3]uint32) []byte {
	b := u16(nil, id)
	b = u16(b, uint16(len(fields)))
	for _, f := range fields {
		if f[2] != 0 {
			b = u16(b, uint16(f[0])|0x8000)
			b = u16(b, uint16(f[1]))
			b = u32(b, f[2])
		} else {
			b = u16(b, uint16(f[0]))
			b = u16(b, uint16(f[1]))
		}
	}
	return b
}

var simple = [][3]uint32{{8, 4, 0}, {12, 4, 0}, {1, 8, 0}, {2, 4, 0}, {4, 1, 0}}

func simpleRecord(src byte, bytes uint64) []byte {
	b := []byte{10, 0, 0, src, 192, 0, 2, 1}
	b = binary.BigEndian.AppendUint64(b, bytes)
	b = u32(b, 1)
	return append(b, 6)
}

var exporterA = netip.MustParseAddrPort("198.51.100.1:2055")

type sink struct{ msgs []*flowpb.FlowMessage }

func (s *sink) emit(m *flowpb.FlowMessage) { s.msgs = append(s.msgs, m.CloneVT()) }

func decodeAll(t *testing.T, d *Decoder, from netip.AddrPort, pkts ...[]byte) ([]*flowpb.FlowMessage, []error) {
	t.Helper()
	var s sink
	var errs []error
	for i, p := range pkts {
		if err := d.Decode(decode.Packet{Data: p, Exporter: from, ReceivedNs: uint64(1e18 + i)}, s.emit); err != nil {
			errs = append(errs, err)
		}
	}
	return s.msgs, errs
}

func TestMalformedKeepsGoodRecords(t *testing.T) {
	tpl := ipfixMsg(1, 0, set(2, tmpl(300, simple...)))
	good := set(300, simpleRecord(1, 100), simpleRecord(2, 200))
	for _, tc := range []struct {
		name    string
		pkt     []byte
		records int
		reason  string
	}{
		{"set length past the end", ipfixMsg(1, 0, good, []byte{1, 44, 0, 200, 1, 2, 3}), 2, "truncated"},
		{"set length below 4", ipfixMsg(1, 0, good, []byte{1, 44, 0, 2}), 2, "malformed"},
		{"truncated packet", ipfixMsg(1, 0, good, good)[:16+len(good)+10], 2, "truncated"},
		{"message length beyond packet", func() []byte { b := ipfixMsg(1, 0, good); binary.BigEndian.PutUint16(b[2:], 1000); return b }(), 2, "truncated"},
		{"header only", ipfixMsg(1, 0), 0, ""},
		{"short header", []byte{0, 10, 0}, 0, "truncated"},
		{"unknown version", []byte{0, 7, 0, 0}, 0, "version"},
		{"record cut short is padding", ipfixMsg(1, 0, set(300, simpleRecord(1, 100), []byte{10, 0, 0})), 1, ""},
		{"bad template id", ipfixMsg(1, 0, set(2, tmpl(12, simple...)), good), 2, "malformed"},
		{"truncated template", ipfixMsg(1, 0, set(2, tmpl(301, simple...)[:9]), good), 2, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(Config{})
			if _, errs := decodeAll(t, d, exporterA, tpl); errs != nil {
				t.Fatal(errs)
			}
			msgs, errs := decodeAll(t, d, exporterA, tc.pkt)
			if len(msgs) != tc.records {
				t.Errorf("%d records, want %d", len(msgs), tc.records)
			}
			for i, m := range msgs {
				if m.Bytes != uint64(100*(i+1)) || len(m.SamplerAddress) != 4 {
					t.Errorf("record %d invented: %v", i, m)
				}
			}
			var reasons []string
			for _, e := range errs {
				reasons = append(reasons, decode.Reasons(e)...)
			}
			if tc.reason == "" && len(reasons) != 0 || tc.reason != "" && (len(reasons) == 0 || reasons[0] != tc.reason) {
				t.Errorf("reasons %v, want %q (errors %v)", reasons, tc.reason, errs)
			}
		})
	}
}

func TestV5CountLargerThanPacket(t *testing.T) {
	b := make([]byte, 24+2*48)
	binary.BigEndian.PutUint16(b, 5)
	binary.BigEndian.PutUint16(b[2:], 30)
	binary.BigEndian.PutUint32(b[20+4+20:], 777) // record 0 octets
	msgs, errs := decodeAll(t, NewDecoder(Config{}), exporterA, b)
	if len(msgs) != 2 || len(errs) != 1 || decode.Reason(errs[0]) != "truncated" {
		t.Fatalf("%d records, errors %v; want 2 and truncated", len(msgs), errs)
	}
}

func TestZeroLengthTemplateAndRecords(t *testing.T) {
	d := NewDecoder(Config{})
	zero := tmpl(400, [3]uint32{8, 0, 0}, [3]uint32{12, 0, 0})
	msgs, errs := decodeAll(t, d, exporterA, ipfixMsg(1, 0, set(2, zero), set(400, make([]byte, 64))))
	if len(msgs) != 0 || len(errs) == 0 {
		t.Fatalf("zero-length template: %d records, errors %v", len(msgs), errs)
	}
	// Options and data withdrawal, then data: held, never decoded.
	if st := d.Templates().Stats(); st.Templates != 0 {
		t.Fatalf("zero-length template stored: %+v", st)
	}
}

func TestWithdrawalAndChangedTemplates(t *testing.T) {
	d := NewDecoder(Config{})
	data := set(300, simpleRecord(1, 100))
	msgs, _ := decodeAll(t, d, exporterA, ipfixMsg(1, 0, set(2, tmpl(300, simple...)), data))
	if len(msgs) != 1 {
		t.Fatalf("%d records", len(msgs))
	}
	// Withdraw template 300: its data is now held.
	withdraw := append(u16(nil, 300), 0, 0)
	msgs, errs := decodeAll(t, d, exporterA, ipfixMsg(1, 1, set(2, withdraw), data))
	if len(msgs) != 0 || len(errs) != 1 || decode.Reason(errs[0]) != "template_missing" {
		t.Fatalf("after withdrawal: %d records, %v", len(msgs), errs)
	}
	// Re-sending a changed template (bytes now 4 long) releases the held set
	// with the new layout: 4+4+4+4+1 = 17 bytes; the 21-byte record decodes
	// as one record plus 4 bytes of padding.
	changed := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {1, 4, 0}, {2, 4, 0}, {4, 1, 0}}
	msgs, errs = decodeAll(t, d, exporterA, ipfixMsg(1, 2, set(2, tmpl(300, changed...))))
	if len(msgs) != 1 || errs != nil {
		t.Fatalf("release: %d records, %v", len(msgs), errs)
	}
	// All-data-templates withdrawal (template id 2, count 0).
	decodeAll(t, d, exporterA, ipfixMsg(1, 3, set(2, append(u16(nil, 2), 0, 0))))
	if st := d.Templates().Stats(); st.Templates != 0 || st.Withdrawn != 2 || st.PendingDecoded != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTemplatesSurviveSourcePortChange(t *testing.T) {
	d := NewDecoder(Config{})
	decodeAll(t, d, exporterA, ipfixMsg(1, 0, set(2, tmpl(300, simple...))))
	moved := netip.AddrPortFrom(exporterA.Addr(), 40000)
	msgs, errs := decodeAll(t, d, moved, ipfixMsg(1, 0, set(300, simpleRecord(1, 100))))
	if len(msgs) != 1 || errs != nil {
		t.Fatalf("%d records, %v", len(msgs), errs)
	}
	other := netip.MustParseAddrPort("198.51.100.2:2055")
	if msgs, _ := decodeAll(t, d, other, ipfixMsg(1, 0, set(300, simpleRecord(1, 100)))); len(msgs) != 0 {
		t.Fatal("another exporter used the template")
	}
	v4in6 := netip.AddrPortFrom(netip.AddrFrom16(exporterA.Addr().As16()), 1)
	msgs, _ = decodeAll(t, d, v4in6, ipfixMsg(1, 0, set(300, simpleRecord(1, 100))))
	if len(msgs) != 1 || len(msgs[0].SamplerAddress) != 4 {
		t.Fatalf("v4-in-v6 exporter: %d records", len(msgs))
	}
}

func TestMPLSBiflowVarLenMapping(t *testing.T) {
	m, err := mapping.Load(stringsReader(`
ipfix:
  mapping:
    - field: 82
      destination: in_if_name
      protobuf: 1200
      type: string
    - field: 123
      penprovided: true
      pen: 2636
      destination: juniper_x
      protobuf: 1201
      type: uint
`))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(Config{Mapping: m})
	fields := [][3]uint32{{27, 16, 0}, {28, 16, 0}, {1, 8, 0}, {2, 8, 0}, {70, 3, 0}, {71, 3, 0},
		{82, 0xffff, 0}, {123, 4, 2636}, {999, 0xffff, 9}, {1, 8, reversePEN}, {2, 8, reversePEN},
		{152, 8, 0}, {153, 8, 0}, {7, 2, 0}, {11, 2, 0}}
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	rec := append(src.AsSlice(), dst.AsSlice()...)
	rec = binary.BigEndian.AppendUint64(rec, 1000)
	rec = binary.BigEndian.AppendUint64(rec, 10)
	rec = append(rec, 0x00, 0x06, 0x40, 0x00, 0x0c, 0x81) // labels 100, 200 (bos)
	rec = append(rec, 4, 'e', 't', 'h', '0')              // 1-byte length prefix
	rec = u32(rec, 42)
	rec = append(rec, 255, 0, 3, 1, 2, 3) // 3-byte length prefix
	rec = binary.BigEndian.AppendUint64(rec, 500)
	rec = binary.BigEndian.AppendUint64(rec, 5)
	rec = binary.BigEndian.AppendUint64(rec, 1709294400000)
	rec = binary.BigEndian.AppendUint64(rec, 1709294401000)
	rec = u16(rec, 1234)
	rec = u16(rec, 443)
	msgs, errs := decodeAll(t, d, exporterA, ipfixMsg(1, 0, set(2, tmpl(300, fields...)), set(300, rec, []byte{0, 0, 0})))
	if errs != nil || len(msgs) != 2 {
		t.Fatalf("%d records, %v", len(msgs), errs)
	}
	f, r := msgs[0], msgs[1]
	if f.Etype != 0x86dd || f.Bytes != 1000 || f.BiflowReverse || len(f.MplsLabel) != 2 || f.MplsLabel[0] != 100 || f.MplsLabel[1] != 200 ||
		f.TimeFlowStartNs != 1709294400000*1e6 || f.SrcPort != 1234 {
		t.Errorf("forward %v", f)
	}
	if !r.BiflowReverse || r.Bytes != 500 || r.Packets != 5 || addrText(r.SrcAddr) != dst.String() || r.SrcPort != 443 || r.DstPort != 1234 {
		t.Errorf("reverse %v", r)
	}
	unknown := f.ProtoReflect().GetUnknown()
	num, _, n := protowire.ConsumeTag(unknown)
	name, n2 := protowire.ConsumeBytes(unknown[n:])
	num2, _, n3 := protowire.ConsumeTag(unknown[n+n2:])
	v, _ := protowire.ConsumeVarint(unknown[n+n2+n3:])
	if num != 1200 || string(name) != "eth0" || num2 != 1201 || v != 42 {
		t.Errorf("mapped fields %d %q %d %d", num, name, num2, v)
	}
}

// TestOptionsSampling: per-sampler rates and the domain default, from v9
// options data with samplingInterval and sampler id.
func TestOptionsSampling(t *testing.T) {
	d := NewDecoder(Config{})
	// IPFIX options template 500: scope observationDomainId (149), sampler
	// id 302, packet interval 305, packet space 306.
	ot := u16(nil, 500)
	ot = u16(ot, 4)
	ot = u16(ot, 1)
	for _, f := range [][2]uint16{{149, 4}, {302, 2}, {305, 4}, {306, 4}} {
		ot = u16(ot, f[0])
		ot = u16(ot, f[1])
	}
	opt := func(id uint16, interval, space uint32) []byte {
		b := u32(nil, 1)
		b = u16(b, id)
		b = u32(b, interval)
		return u32(b, space)
	}
	data := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {1, 8, 0}, {2, 4, 0}, {4, 1, 0}, {302, 2, 0}}
	rec := func(id uint16) []byte { return u16(simpleRecord(1, 100), id) }
	msgs, errs := decodeAll(t, d, exporterA,
		ipfixMsg(1, 0, set(3, ot), set(2, tmpl(300, data...)), set(500, opt(1, 1, 99), opt(2, 1, 9))),
		ipfixMsg(1, 2, set(300, rec(1), rec(2), rec(3))))
	if errs != nil || len(msgs) != 3 {
		t.Fatalf("%d records, %v", len(msgs), errs)
	}
	for i, want := range []uint64{100, 10, 10} {
		if msgs[i].SamplingRate != want {
			t.Errorf("record %d: sampling_rate %d, want %d", i, msgs[i].SamplingRate, want)
		}
	}
}

type gapObserver struct{ gaps, resets int }

func (g *gapObserver) SequenceGap(_ decode.Protocol, _ netip.Addr, _ uint32, n uint64) {
	g.gaps += int(n)
}
func (g *gapObserver) SequenceReset(decode.Protocol, netip.Addr, uint32) { g.resets++ }

func TestSequenceGaps(t *testing.T) {
	obs := &gapObserver{}
	d := NewDecoder(Config{Observer: obs})
	tpl := set(2, tmpl(300, simple...))
	two := set(300, simpleRecord(1, 100), simpleRecord(2, 200))
	decodeAll(t, d, exporterA,
		ipfixMsg(1, 0, tpl, two), // next expected: 2
		ipfixMsg(1, 2, two),      // ok, next 4
		ipfixMsg(1, 9, two),      // 5 records lost
		ipfixMsg(1, 0, two))      // reset
	if obs.gaps != 5 || obs.resets != 1 {
		t.Fatalf("gaps %d resets %d, want 5 and 1", obs.gaps, obs.resets)
	}
}

func TestTemplatePersistence(t *testing.T) {
	dgs, err := interop.ReadPcap(filepath.Join("testdata", "pmacct-ipfix-sampled.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(Config{})
	decodeAll(t, d, dgs[0].Src, dgs[0].Data)
	path := filepath.Join(t.TempDir(), "templates.json")
	f, _ := os.Create(path)
	if err := d.Templates().Save(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A restarted collector loads them and decodes data at once.
	d2 := NewDecoder(Config{})
	f, _ = os.Open(path)
	n, err := d2.Templates().Load(f, 0)
	f.Close()
	if err != nil || n == 0 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	var withData int
	for _, dg := range dgs[1:] {
		msgs, errs := decodeAll(t, d2, dg.Src, dg.Data)
		if errs != nil {
			t.Fatal(errs)
		}
		withData += len(msgs)
	}
	if withData == 0 {
		t.Fatal("no records after loading templates")
	}
}

func TestTemplateLimit(t *testing.T) {
	d := NewDecoder(Config{TemplateConfig: template.Config{MaxPerExporter: 1}})
	_, errs := decodeAll(t, d, exporterA, ipfixMsg(1, 0, set(2, tmpl(300, simple...), tmpl(301, simple...))))
	if len(errs) != 1 || !errors.Is(errs[0], decode.ErrLimit) || d.Templates().Stats().LimitHits != 1 {
		t.Fatalf("errors %v stats %+v", errs, d.Templates().Stats())
	}
}

func stringsReader(s string) *stringsReaderT { return &stringsReaderT{s: s} }

type stringsReaderT struct{ s string }

func (r *stringsReaderT) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}
