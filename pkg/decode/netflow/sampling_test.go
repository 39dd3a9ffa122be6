package netflow

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

var huawei = netip.MustParseAddrPort("192.0.2.77:9996")

// huaweiPacket is NetFlow v9 as Huawei NetStream sends it: the sampling
// interval and algorithm (34, 35) in every data record, no options data.
func huaweiPacket(seq uint32, rates ...uint32) []byte {
	fields := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {1, 4, 0}, {2, 4, 0},
		{10, 4, 0}, {14, 4, 0}, {22, 4, 0}, {21, 4, 0}, {34, 4, 0}, {35, 1, 0}}
	var recs []byte
	for i, r := range rates {
		b := []byte{10, 1, 0, byte(i + 1), 10, 2, 0, 1}
		b = u16(b, uint16(50000+i))
		b = u16(b, 80)
		b = append(b, 6)
		b = u32(b, uint32(1500*(i+1)))
		b = u32(b, uint32(i+1))
		b = u32(b, 11)
		b = u32(b, 12)
		b = u32(b, 3_500_000)
		b = u32(b, 3_590_000)
		b = u32(b, r)
		recs = append(recs, append(b, 2)...) // random sampling
	}
	return v9Msg(3, seq, set(0, tmpl(1280, fields...)), set(1280, recs))
}

// TestHuaweiDataRecordSampling: each record's own samplingInterval is its
// sampling_rate; tshark reads the same intervals from the same packet.
func TestHuaweiDataRecordSampling(t *testing.T) {
	pkt := huaweiPacket(1, 2048, 2048, 1000)
	msgs, errs := decodeAll(t, NewDecoder(Config{}), huawei, pkt)
	if errs != nil || len(msgs) != 3 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	for i, want := range []uint64{2048, 2048, 1000} {
		if msgs[i].SamplingRate != want || msgs[i].Bytes != uint64(1500*(i+1)) {
			t.Errorf("record %d: sampling_rate %d bytes %d, want %d", i, msgs[i].SamplingRate, msgs[i].Bytes, want)
		}
	}
	if interop.Require(t, "tshark") == "" {
		return
	}
	path := filepath.Join(t.TempDir(), "huawei.pcap")
	if err := interop.WritePcap(path, [][]byte{pkt}, 9996); err != nil {
		t.Fatal(err)
	}
	rows := interop.Tshark(t, path, "cflow", 9996, "cflow.sampling_interval", "cflow.sampling_algorithm", "cflow.octets")
	if len(rows) != len(msgs) {
		t.Fatalf("tshark %d records, ours %d", len(rows), len(msgs))
	}
	for i, r := range rows {
		if r["cflow.sampling_interval"] != strconv.FormatUint(msgs[i].SamplingRate, 10) || r["cflow.sampling_algorithm"] != "2" ||
			r["cflow.octets"] != strconv.FormatUint(msgs[i].Bytes, 10) {
			t.Errorf("record %d: tshark %v, ours rate %d bytes %d", i, r, msgs[i].SamplingRate, msgs[i].Bytes)
		}
	}
}

// samplingOptions builds an IPFIX options template (500) with scope
// observationDomainId and the given option fields, and its data records.
func samplingOptions(fields [][2]uint16) []byte {
	ot := u16(nil, 500)
	ot = u16(ot, uint16(1+len(fields)))
	ot = u16(ot, 1)
	ot = u16(ot, 149)
	ot = u16(ot, 4)
	for _, f := range fields {
		ot = u16(ot, f[0])
		ot = u16(ot, f[1])
	}
	return set(3, ot)
}

// TestSamplingRateOrder: the record's own rate, then its sampler's, then
// the exporter's, per exporter and domain; every RFC 5477 form.
func TestSamplingRateOrder(t *testing.T) {
	d := NewDecoder(Config{})
	// Options: selectorId (302), interval/space (305/306), size/population
	// (309/310), probability (311).
	opts := samplingOptions([][2]uint16{{302, 8}, {305, 4}, {306, 4}, {309, 4}, {310, 4}, {311, 8}})
	opt := func(id uint64, interval, space, size, population uint32, p float64) []byte {
		b := u32(nil, 1)
		b = binary.BigEndian.AppendUint64(b, id)
		b = u32(b, interval)
		b = u32(b, space)
		b = u32(b, size)
		b = u32(b, population)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(p))
	}
	// Exporter-wide: samplingInterval without an id.
	wideOT := samplingOptions([][2]uint16{{34, 4}})
	binary.BigEndian.PutUint16(wideOT[4:], 501) // its template id
	// Data: addresses, bytes, selectorId, and the record's own
	// samplerRandomInterval (50), 0 when it has none.
	data := tmpl(300, [3]uint32{8, 4, 0}, [3]uint32{12, 4, 0}, [3]uint32{1, 8, 0}, [3]uint32{302, 8, 0}, [3]uint32{50, 4, 0})
	rec := func(id uint64, own uint32) []byte {
		b := simpleRecord(1, 100)[:16]
		b = binary.BigEndian.AppendUint64(b, id)
		return u32(b, own)
	}
	msgs, errs := decodeAll(t, d, exporterA,
		ipfixMsg(1, 0, opts, wideOT, set(2, data),
			set(500, opt(1, 1, 99, 0, 0, 0), opt(2, 0, 0, 10, 1000, 0), opt(3, 0, 0, 0, 0, 0.001)),
			set(501, u32(u32(nil, 1), 4096))),
		ipfixMsg(1, 1, set(300, rec(1, 0), rec(2, 0), rec(3, 0), rec(9, 0), rec(2, 7))),
		ipfixMsg(2, 0, set(2, data), set(300, rec(1, 0), rec(1, 33))))
	if errs != nil || len(msgs) != 7 {
		t.Fatalf("%d records %v", len(msgs), errs)
	}
	for i, want := range []uint64{
		100,  // sampler 1: (1+99)/1
		100,  // sampler 2: 1000/10
		1000, // sampler 3: 1/0.001
		4096, // unknown sampler: the exporter's
		7,    // the record's own
		0,    // another domain knows nothing
		33,   // ... but the record's own
	} {
		if msgs[i].SamplingRate != want {
			t.Errorf("record %d: sampling_rate %d, want %d", i, msgs[i].SamplingRate, want)
		}
	}
}

// TestSamplingSavedAndRestored: what one decoder learnt from options data
// is saved, loaded into another store, and sets sampling_rate on the first
// data record a new decoder sees, without options data.
func TestSamplingSavedAndRestored(t *testing.T) {
	first := NewDecoder(Config{})
	ot := samplingOptions([][2]uint16{{302, 2}, {305, 4}, {306, 4}})
	opt := func(id uint16, interval, space uint32) []byte { return u32(u32(u16(u32(nil, 1), id), interval), space) }
	data := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {1, 8, 0}, {2, 4, 0}, {4, 1, 0}, {302, 2, 0}}
	tmplMsg := ipfixMsg(1, 0, ot, set(2, tmpl(300, data...)))
	optMsg := ipfixMsg(1, 1, set(500, opt(1, 1, 99), opt(2, 1, 9)))
	rec := func(id uint16) []byte { return u16(simpleRecord(1, 100), id) }
	dataMsg := ipfixMsg(1, 2, set(300, rec(1), rec(2), rec(3)))
	now := uint64(time.Now().UnixNano())
	for _, p := range [][]byte{tmplMsg, optMsg} {
		if err := first.Decode(decode.Packet{Data: p, Exporter: exporterA, ReceivedNs: now}, func(*flowpb.FlowMessage) {}); err != nil {
			t.Fatal(err)
		}
	}
	var file bytes.Buffer
	if err := first.Sampling().Save(&file, now); err != nil {
		t.Fatal(err)
	}
	saved := file.String()
	if !strings.Contains(saved, `"samplers":[[1,100],[2,10]]`) || !strings.Contains(saved, `"exporter":"198.51.100.1"`) {
		t.Fatalf("saved %s", saved)
	}

	restored := NewSampling(time.Hour)
	if n, err := restored.Load(strings.NewReader(saved), now+uint64(time.Minute)); err != nil || n != 1 {
		t.Fatalf("loaded %d: %v", n, err)
	}
	second := NewDecoder(Config{Sampling: restored})
	var got []uint64
	for _, p := range [][]byte{tmplMsg, dataMsg} { // the template, then data: no options data
		err := second.Decode(decode.Packet{Data: p, Exporter: exporterA, ReceivedNs: now + uint64(time.Minute)},
			func(m *flowpb.FlowMessage) { got = append(got, m.SamplingRate) })
		if err != nil {
			t.Fatal(err)
		}
	}
	// Sampler 3 is unknown: the domain's default, the last announced.
	if len(got) != 3 || got[0] != 100 || got[1] != 10 || got[2] != 10 {
		t.Fatalf("sampling rates after restore %v, want [100 10 10]", got)
	}
	var again bytes.Buffer
	if err := restored.Save(&again, now+uint64(time.Minute)); err != nil || again.String() != saved {
		t.Errorf("saved again:\n%s\nfirst:\n%s (%v)", again.String(), saved, err)
	}

	// Expired by the time it is loaded: forgotten.
	stale := NewSampling(time.Minute)
	if n, err := stale.Load(strings.NewReader(saved), now+uint64(time.Hour)); err != nil || n != 0 {
		t.Errorf("stale rates loaded: %d %v", n, err)
	}
	for _, bad := range []string{`{}`, `{"format":"flowpipe-sampling","version":2,"rates":[]}`,
		`{"format":"flowpipe-sampling","version":1,"rates":[{"exporter":"x"}]}`,
		`{"format":"flowpipe-sampling","version":1,"rates":[{"exporter":"192.0.2.1","version":5}]}`} {
		if _, err := NewSampling(0).Load(strings.NewReader(bad), now); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestSamplingPublishIsCheap: confirming an unchanged rate does not touch
// the shared store more than once a minute, and decoding allocates nothing.
func TestSamplingPublishIsCheap(t *testing.T) {
	d := NewDecoder(Config{})
	ot := samplingOptions([][2]uint16{{34, 4}})
	pkt := ipfixMsg(1, 0, ot, set(500, u32(u32(nil, 1), 64)))
	if err := d.Decode(decode.Packet{Data: pkt, Exporter: exporterA, ReceivedNs: 1}, func(*flowpb.FlowMessage) {}); err != nil {
		t.Fatal(err)
	}
	opts := ipfixMsg(1, 1, set(500, u32(u32(nil, 1), 64)))
	if n := testing.AllocsPerRun(100, func() {
		_ = d.Decode(decode.Packet{Data: opts, Exporter: exporterA, ReceivedNs: 2}, func(*flowpb.FlowMessage) {})
	}); n != 0 {
		t.Errorf("%v allocations per options packet", n)
	}
	if d.Sampling().Len() != 1 {
		t.Errorf("store has %d domains", d.Sampling().Len())
	}
}

// TestSelectorIDAsScope: IPFIX selector reports (RFC 5476) give the
// selectorId as the options template's scope; records naming that
// selector get its rate.
func TestSelectorIDAsScope(t *testing.T) {
	ot := u16(nil, 510)
	ot = u16(ot, 3)
	ot = u16(ot, 1) // one scope field: selectorId
	for _, f := range [][2]uint16{{302, 8}, {305, 4}, {306, 4}} {
		ot = u16(u16(ot, f[0]), f[1])
	}
	opt := func(id uint64, interval, space uint32) []byte {
		return u32(u32(binary.BigEndian.AppendUint64(nil, id), interval), space)
	}
	data := [][3]uint32{{8, 4, 0}, {12, 4, 0}, {1, 8, 0}, {2, 4, 0}, {4, 1, 0}, {302, 8, 0}}
	rec := func(id uint64) []byte { return binary.BigEndian.AppendUint64(simpleRecord(1, 100), id) }
	msgs, errs := decodeAll(t, NewDecoder(Config{}), exporterA,
		ipfixMsg(1, 0, set(3, ot), set(2, tmpl(300, data...)), set(510, opt(7, 1, 63), opt(8, 1, 1023))),
		ipfixMsg(1, 1, set(300, rec(8), rec(7))))
	if errs != nil || len(msgs) != 2 || msgs[0].SamplingRate != 1024 || msgs[1].SamplingRate != 64 {
		t.Fatalf("%v %v", msgs, errs)
	}
}

// TestSamplingConcurrent: decoders sharing a Sampling learn rates while
// another goroutine saves it (run with -race).
func TestSamplingConcurrent(t *testing.T) {
	shared := NewSampling(time.Hour)
	ot := samplingOptions([][2]uint16{{34, 4}})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			d := NewDecoder(Config{Sampling: shared})
			for i := range 200 {
				exp := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(w)}), 2055)
				pkt := ipfixMsg(uint32(i%7), uint32(i), ot, set(500, u32(u32(nil, 1), uint32(1+i%5))))
				_ = d.Decode(decode.Packet{Data: pkt, Exporter: exp, ReceivedNs: uint64(i) * uint64(time.Second)}, func(*flowpb.FlowMessage) {})
			}
		}()
	}
	for range 50 {
		if err := shared.Save(io.Discard, 0); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		<-done
	}
	if n := shared.Len(); n != 4*7 {
		t.Errorf("%d domains, want 28", n)
	}
}
