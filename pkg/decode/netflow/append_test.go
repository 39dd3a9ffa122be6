package netflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// appendPair is two decoders fed the same packets: ref through Decode,
// each record encoded by flowpb's AppendDelimited (the reference), and
// got through AppendRecords.
type appendPair struct {
	ref, got       *Decoder
	refOut, gotOut []byte
}

func newAppendPair(m *mapping.Mapping) *appendPair {
	return &appendPair{ref: NewDecoder(Config{Mapping: m}), got: NewDecoder(Config{Mapping: m})}
}

// feed decodes p with both and fails unless they wrote the same bytes,
// counted the same records and returned the same error.
func (a *appendPair) feed(t testing.TB, p decode.Packet) {
	t.Helper()
	n0, g0 := len(a.refOut), len(a.gotOut)
	refN := 0
	refErr := a.ref.Decode(p, func(m *flowpb.FlowMessage) {
		refN++
		a.refOut = m.AppendDelimited(a.refOut)
	})
	var gotN int
	var gotErr error
	a.gotOut, gotN, gotErr = a.got.AppendRecords(a.gotOut, p)
	if refN != gotN || fmt.Sprint(refErr) != fmt.Sprint(gotErr) {
		t.Fatalf("AppendRecords: %d records, error %v; Decode: %d records, error %v", gotN, gotErr, refN, refErr)
	}
	if !bytes.Equal(a.refOut[n0:], a.gotOut[g0:]) {
		t.Fatalf("AppendRecords wrote other bytes than Decode + AppendDelimited for a packet of %d records:\n%s",
			refN, firstDiff(a.refOut[n0:], a.gotOut[g0:]))
	}
	if len(a.refOut) > 1<<20 { // keep the tail only: the comparison is per packet
		a.refOut, a.gotOut = a.refOut[:0], a.gotOut[:0]
	}
}

// firstDiff describes the first differing frame of two bin streams.
func firstDiff(want, got []byte) string {
	for i := 0; ; i++ {
		wf, wrest, werr := nextFrame(want)
		gf, grest, gerr := nextFrame(got)
		if werr != nil || gerr != nil {
			return fmt.Sprintf("frame %d: %v / %v", i, werr, gerr)
		}
		if !bytes.Equal(wf, gf) {
			var wm, gm flowpb.FlowMessage
			_ = wm.UnmarshalVT(wf)
			_ = gm.UnmarshalVT(gf)
			return fmt.Sprintf("frame %d:\nwant % x\n     %v\n got % x\n     %v", i, wf, &wm, gf, &gm)
		}
		want, got = wrest, grest
	}
}

func nextFrame(b []byte) (frame, rest []byte, err error) {
	var n uint64
	for i := 0; i < len(b) && i < 10; i++ {
		n |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			if uint64(len(b)-i-1) < n {
				return nil, nil, errors.New("short frame")
			}
			return b[i+1 : i+1+int(n)], b[i+1+int(n):], nil
		}
	}
	return nil, nil, errors.New("end of stream")
}

// TestAppendRecordsMatchesDecode: every fixture, flowgen's packets of
// every version and shape, packet sections, NAT events, biflows and
// mapped elements give the same bytes through AppendRecords as through
// Decode and flowpb's encoder.
func TestAppendRecordsMatchesDecode(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			dgs, err := interop.ReadPcap(filepath.Join("testdata", f.name+".pcap"))
			if err != nil {
				t.Fatal(err)
			}
			a := newAppendPair(nil)
			for _, dg := range dgs {
				a.feed(t, decode.Packet{Data: dg.Data, Exporter: netip.AddrPortFrom(dg.Src.Addr(), dg.Src.Port()), ReceivedNs: uint64(dg.Time.UnixNano())})
			}
		})
	}
	for _, c := range []flowgen.Config{
		{Protocol: flowgen.NetFlowV5},
		{Protocol: flowgen.NetFlowV5, SamplingRate: 100},
		{Protocol: flowgen.NetFlowV9},
		{Protocol: flowgen.NetFlowV9, IPv6Ratio: 0.5, SamplingRate: 10},
		{Protocol: flowgen.IPFIX},
		{Protocol: flowgen.IPFIX, IPv6Ratio: 0.5, SamplingRate: 512, VariableLengthIE: true, EnterpriseIE: true},
		{Protocol: flowgen.IPFIX, IPv6Ratio: 1, VariableLengthIE: true},
	} {
		t.Run(fmt.Sprintf("flowgen-%s-v6=%v-rate=%d-varlen=%v", c.Protocol, c.IPv6Ratio, c.SamplingRate, c.VariableLengthIE), func(t *testing.T) {
			c.Seed, c.TemplateInterval = 9, 5
			g, err := flowgen.New(c)
			if err != nil {
				t.Fatal(err)
			}
			a := newAppendPair(nil)
			if tp := g.Templates(); tp != nil {
				a.feed(t, decode.Packet{Data: tp, Exporter: genExporter, ReceivedNs: 1})
			}
			for i := range 40 {
				pkt, _ := g.Next()
				a.feed(t, decode.Packet{Data: pkt, Exporter: genExporter, ReceivedNs: uint64(1e18 + i)})
			}
		})
	}
	t.Run("sections", func(t *testing.T) {
		tmplMsg, data := juniperPackets(sectionFrames())
		a := newAppendPair(nil)
		a.feed(t, decode.Packet{Data: tmplMsg, Exporter: juniper, ReceivedNs: 1})
		for _, p := range data {
			a.feed(t, decode.Packet{Data: p, Exporter: juniper, ReceivedNs: 2})
		}
	})
	t.Run("nat", func(t *testing.T) {
		a := newAppendPair(nil)
		for _, p := range natPackets() {
			a.feed(t, decode.Packet{Data: p, Exporter: exporterA, ReceivedNs: 3})
		}
	})
}

// planIEs are the elements FuzzAppendTemplates builds templates from:
// every element the decoder knows (with sampling, NAT, times, sections and
// reverse ones), and an enterprise one it does not.
var planIEs = [][2]uint32{
	{1, 0}, {2, 0}, {4, 0}, {5, 0}, {6, 0}, {7, 0}, {8, 0}, {9, 0}, {10, 0}, {11, 0}, {12, 0}, {13, 0}, {14, 0},
	{15, 0}, {16, 0}, {17, 0}, {18, 0}, {21, 0}, {22, 0}, {23, 0}, {24, 0}, {27, 0}, {28, 0}, {29, 0}, {30, 0},
	{31, 0}, {32, 0}, {34, 0}, {48, 0}, {50, 0}, {52, 0}, {54, 0}, {56, 0}, {57, 0}, {58, 0}, {59, 0}, {60, 0},
	{62, 0}, {63, 0}, {70, 0}, {71, 0}, {72, 0}, {79, 0}, {80, 0}, {81, 0}, {82, 0}, {85, 0}, {86, 0}, {88, 0},
	{89, 0}, {138, 0}, {139, 0}, {150, 0}, {151, 0}, {152, 0}, {153, 0}, {154, 0}, {155, 0}, {156, 0}, {157, 0},
	{158, 0}, {159, 0}, {160, 0}, {176, 0}, {177, 0}, {178, 0}, {179, 0}, {192, 0}, {197, 0}, {225, 0}, {226, 0},
	{227, 0}, {228, 0}, {230, 0}, {243, 0}, {254, 0}, {281, 0}, {282, 0}, {283, 0}, {302, 0}, {305, 0}, {306, 0},
	{309, 0}, {310, 0}, {311, 0}, {312, 0}, {313, 0}, {315, 0}, {322, 0}, {323, 0}, {324, 0}, {361, 0}, {362, 0},
	{408, 0}, {463, 0}, {102, 0}, {104, 0}, {316, 0}, {1, reversePEN}, {2, reversePEN}, {6, reversePEN}, {123, 2636}, {999, 9},
}

// planLengths are the element lengths tried: the usual ones, odd ones,
// zero and variable.
var planLengths = []uint16{1, 2, 4, 8, 16, 3, 6, 0, 0xffff, 5, 12}

// planMapping maps a few elements, so that plans write mapped fields.
func planMapping(t testing.TB) *mapping.Mapping {
	m, err := mapping.Load(stringsReader(`
ipfix:
  mapping:
    - {field: 82, destination: if_name, protobuf: 1200, type: string}
    - {field: 123, penprovided: true, pen: 2636, destination: jx, protobuf: 1201, type: uint}
    - {field: 7, destination: sport_again, protobuf: 1202, type: uint}
netflowv9:
  mapping:
    - {field: 82, destination: if_name, protobuf: 1200, type: string}
    - {field: 10, destination: in_again, protobuf: 1203, type: hex}
`))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzAppendTemplates builds a template from the input (version, then a
// field list drawn from planIEs and planLengths), a data set from the
// rest, and requires AppendRecords to write what Decode and flowpb's
// encoder write, after options data giving a default rate and a sampler's.
func FuzzAppendTemplates(f *testing.F) {
	f.Add([]byte{10, 6, 6, 0, 10, 0, 2, 3, 3, 1, 4, 0, 58, 1}, []byte("0123456789abcdef0123456789abcdef"))
	f.Add([]byte{9, 5, 6, 0, 10, 0, 4, 2, 5, 2, 28, 2}, []byte("0123456789abcdef0123456789abcdefxyz"))
	f.Add([]byte{10, 4, 6, 4, 53, 3, 54, 3, 100, 1}, append([]byte{3, 'a', 'b', 'c'}, []byte("0123456789abcdef0123456789abcdef")...))
	f.Add([]byte{10, 3, 6, 4, 38, 2, 84, 8}, []byte{10, 0, 0, 1, 192, 0, 2, 1, 0, 1, 0, 1, 1, 2, 3, 4})
	f.Add([]byte{9, 4, 27, 0, 19, 0, 20, 0, 62, 0}, []byte{4, 1, 9, 9, 0, 7, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	m := planMapping(f)
	f.Fuzz(func(t *testing.T, spec, data []byte) {
		if len(spec) < 2 || len(data) > 4000 {
			return
		}
		version := uint16(10)
		if spec[0]%2 == 1 {
			version = 9
		}
		n := int(spec[1]) % 40
		spec = spec[2:]
		var fields [][3]uint32
		for i := 0; i < n && len(spec) >= 2; i, spec = i+1, spec[2:] {
			ie := planIEs[int(spec[0])%len(planIEs)]
			l := planLengths[int(spec[1])%len(planLengths)]
			if version == 9 && (l == 0xffff || ie[1] != 0) {
				l, ie[1] = 4, 0 // v9 has neither
			}
			fields = append(fields, [3]uint32{ie[0], uint32(l), ie[1]})
		}
		if len(fields) == 0 {
			return
		}
		a := newAppendPair(m)
		for i, p := range planPackets(version, fields, data) {
			a.feed(t, decode.Packet{Data: p, Exporter: exporterA, ReceivedNs: uint64(1e18 + i)})
		}
	})
}

// planPackets are: options data (a default rate, sampler 7's rate, a
// system init time), the template, and a data set of data.
func planPackets(version uint16, fields [][3]uint32, data []byte) [][]byte {
	optFields := [][3]uint32{{149, 4, 0}, {34, 4, 0}, {48, 1, 0}, {160, 8, 0}}
	opt := u32(nil, 1)
	opt = u32(opt, 100)
	opt = append(opt, 0)
	opt = binary.BigEndian.AppendUint64(opt, 1709294000000)
	opt7 := u32(nil, 1)
	opt7 = u32(opt7, 64)
	opt7 = append(opt7, 7)
	opt7 = binary.BigEndian.AppendUint64(opt7, 0)
	if version == 10 {
		ot := u16(nil, 400)
		ot = u16(ot, uint16(len(optFields)))
		ot = u16(ot, 1)
		for _, f := range optFields {
			ot = u16(u16(ot, uint16(f[0])), uint16(f[1]))
		}
		return [][]byte{
			ipfixMsg(1, 0, set(3, ot), set(400, opt, opt7)),
			ipfixMsg(1, 1, set(2, tmpl(300, fields...))),
			ipfixMsg(1, 2, set(300, data)),
		}
	}
	v9 := func(seq uint32, sets ...[]byte) []byte {
		b := u16(nil, 9)
		b = u16(b, uint16(len(sets)))
		b = u32(b, 123456) // uptime
		b = u32(b, 1709294400)
		b = u32(b, seq)
		b = u32(b, 1) // source id
		for _, s := range sets {
			b = append(b, s...)
		}
		return b
	}
	ot := u16(nil, 400)
	ot = u16(ot, 4)
	ot = u16(ot, uint16(4*(len(optFields)-1)))
	ot = u16(u16(ot, 1), 4) // scope: system
	for _, f := range optFields[1:] {
		ot = u16(u16(ot, uint16(f[0])), uint16(f[1]))
	}
	tp := u16(nil, 300)
	tp = u16(tp, uint16(len(fields)))
	for _, f := range fields {
		tp = u16(u16(tp, uint16(f[0])), uint16(f[1]))
	}
	return [][]byte{
		v9(0, set(1, ot), set(400, opt, opt7)),
		v9(1, set(0, tp)),
		v9(2, set(300, data)),
	}
}
