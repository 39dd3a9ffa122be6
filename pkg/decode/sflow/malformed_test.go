package sflow

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
)

// goodFlow is a compact flow sample that decodes to one flow with the
// given in_if, so that tests can tell which samples survived.
func goodRecords() [][]byte {
	h := cat(ethHdr(1, 2, 0x800), ipv4Hdr(v4a, v4b, 17, 0, 64, 1, 0, 28), udpHdr(1, 2, 8))
	return [][]byte{recHeader(headerEthernet, 64, h)}
}

// TestMalformed feeds datagrams that lie in one place each: the samples
// before (and, where the framing allows, after) the lie are kept, the lie
// is reported as a *decode.Error of the right class and counted.
func TestMalformed(t *testing.T) {
	good := goodRecords()
	hugeSample := func(d *dgBuilder) *dgBuilder { // declares 1 MB, has 8 bytes
		d.u32(formatFlow)
		d.u32(1 << 20)
		d.u32(0)
		d.u32(0)
		d.samples++
		return d
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		dg      []byte
		inIfs   []uint32 // of the flows kept
		reasons []string
		bad     uint64
	}{
		{"empty", Config{}, nil, nil, []string{"truncated"}, 0},
		{"version-4", Config{}, be(4, 1, 0x0a000001, 0, 1, 0, 0), nil, []string{"version"}, 0},
		{"agent-type-3", Config{}, be(5, 3, 0, 0, 0, 0, 0, 0, 0), nil, []string{"malformed"}, 0},
		{"agent-truncated", Config{}, be(5, 2, 0, 0, 0, 0), nil, []string{"truncated"}, 0},
		{"sample-length-lies", Config{},
			hugeSample(newDatagram(agent4, 0, 1).flow(1, 1, 0, good...)).bytes(), []uint32{1}, []string{"truncated"}, 0},
		{"sample-count-lies", Config{},
			func() []byte {
				b := newDatagram(agent4, 0, 1).flow(1, 1, 0, good...).flow(1, 2, 0, good...).bytes()
				copy(b[24:], be(1_000_000_000))
				return b
			}(), []uint32{1, 2}, []string{"truncated"}, 0},
		{"samples-over-limit", Config{MaxSamples: 2},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, good...).flow(1, 2, 0, good...).flow(1, 3, 0, good...).bytes(),
			[]uint32{1, 2}, []string{"limit"}, 0},
		{"record-count-huge", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, good...).
				sample(formatFlow, be(0, 0, 1, 0, 0, 9, 0, 1_000_000_000)).
				flow(1, 3, 0, good...).bytes(), []uint32{1, 3}, []string{"limit"}, 1},
		{"record-count-over-bytes", Config{},
			newDatagram(agent4, 0, 1).sample(formatFlow, cat(be(0, 0, 1, 0, 0, 9, 0, 10), good[0])).
				flow(1, 3, 0, good...).bytes(), []uint32{3}, []string{"malformed"}, 1},
		{"record-length-lies", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, cat(be(recSampledIPv4, 4000), make([]byte, 32))).
				flow(1, 2, 0, good...).bytes(), []uint32{2}, []string{"malformed"}, 1},
		{"header-length-over-record", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, good...).
				flow(1, 2, 0, record(recSampledHeader, cat(be(1, 100, 0, 200), make([]byte, 100)))).
				flow(1, 3, 0, good...).bytes(), []uint32{1, 3}, []string{"malformed"}, 1},
		{"as-path-segments-huge", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, append(good, record(recExtGateway, cat(be(1, 1, 65000, 1, 1, 0xffffffff), make([]byte, 16))))...).
				flow(1, 2, 0, good...).bytes(), []uint32{2}, []string{"malformed"}, 1},
		{"as-path-length-huge", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, record(recExtGateway, cat(be(1, 1, 65000, 1, 1, 1, 2, 0x7fffffff), make([]byte, 16)))).
				flow(1, 2, 0, good...).bytes(), []uint32{2}, []string{"limit"}, 1},
		{"as-path-over-limit", Config{MaxASPath: 3},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, recGateway(v4a, 1, 2, nil, []uint32{1, 2}, []uint32{3, 4})).bytes(),
			nil, []string{"limit"}, 1},
		{"communities-huge", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, record(recExtGateway, cat(be(1, 1, 65000, 1, 1, 0, 1_000_000), make([]byte, 8)))).
				flow(1, 2, 0, good...).bytes(), []uint32{2}, []string{"limit"}, 1},
		{"gateway-truncated", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, record(recExtGateway, be(1, 1, 65000))).bytes(), nil, []string{"truncated"}, 1},
		{"router-address-type-9", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, record(recExtRouter, be(9, 1, 2, 3))).bytes(), nil, []string{"malformed"}, 1},
		{"sampled-ipv6-short", Config{},
			newDatagram(agent4, 0, 1).flow(1, 1, 0, record(recSampledIPv6, make([]byte, 40))).bytes(), nil, []string{"truncated"}, 1},
		{"flow-sample-short", Config{},
			newDatagram(agent4, 0, 1).sample(formatFlow, be(1, 2, 3)).sample(formatExpandedFlow, be(1, 2, 3)).
				flow(1, 7, 0, good...).bytes(), []uint32{7}, []string{"truncated", "truncated"}, 2},
		{"counter-record-short", Config{},
			newDatagram(agent4, 0, 1).sample(formatCounter, cat(be(1, 5, 1), record(1, make([]byte, 40)))).
				sample(formatExpandedCounter, cat(be(1, 0, 5, 1), record(2, make([]byte, 20)))).
				flow(1, 7, 0, good...).bytes(), []uint32{7}, []string{"truncated", "truncated"}, 2},
		{"counter-record-count-huge", Config{},
			newDatagram(agent4, 0, 1).sample(formatCounter, be(1, 5, 0xffffffff)).bytes(), nil, []string{"limit"}, 1},
		{"many-bad-samples-stop-at-8", Config{},
			func() []byte {
				d := newDatagram(agent4, 0, 1)
				for range 20 {
					d.sample(formatFlow, be(1))
				}
				return d.flow(1, 1, 0, good...).bytes()
			}(), nil, slices.Repeat([]string{"truncated"}, 8), 8},
		{"unknown-formats-skipped", Config{},
			newDatagram(agent4, 0, 1).sample(5, be(1, 2, 3)).sample(1<<12|1, be(1)).
				flow(1, 1, 0, append(good, record(1005, be(1, 2)), record(99<<12|1, nil))...).bytes(), []uint32{1}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.cfg)
			flows, err := decodeAll(d, tc.dg)
			var ifs []uint32
			for _, f := range flows {
				ifs = append(ifs, f.InIf)
				if len(f.SamplerAddress) == 0 {
					t.Error("flow without sampler_address")
				}
			}
			if !slices.Equal(ifs, tc.inIfs) {
				t.Errorf("flows with in_if %v, want %v", ifs, tc.inIfs)
			}
			if got := decode.Reasons(err); !slices.Equal(got, tc.reasons) {
				t.Errorf("reasons %v, want %v (err %v)", got, tc.reasons, err)
			}
			if err != nil {
				var de *decode.Error
				if !errors.As(err, &de) || de.Protocol != decode.SFlowV5 || de.Exporter != testExporter {
					t.Errorf("error %v is not an sflow *decode.Error", err)
				}
				t.Logf("error: %v", err)
			}
			if st := d.Stats(); st.BadSamples != tc.bad || st.Flows != uint64(len(tc.inIfs)) {
				t.Errorf("stats %+v, want %d bad samples and %d flows", st, tc.bad, len(tc.inIfs))
			}
			// The decoder is still good for the next datagram.
			if got, err := decodeAll(d, newDatagram(agent4, 0, 2).flow(1, 1, 0, good...).bytes()); err != nil || len(got) != 1 {
				t.Errorf("next datagram: %d flows, %v", len(got), err)
			}
		})
	}
}

type seqEvent struct {
	gap    bool
	agent  netip.Addr
	sub    uint32
	missed uint64
}

type recordingObserver struct{ events []seqEvent }

func (o *recordingObserver) SequenceGap(p decode.Protocol, a netip.Addr, sub uint32, missed uint64) {
	o.events = append(o.events, seqEvent{true, a, sub, missed})
}

func (o *recordingObserver) SequenceReset(p decode.Protocol, a netip.Addr, sub uint32) {
	o.events = append(o.events, seqEvent{false, a, sub, 0})
}

// TestSequence checks gaps and resets per agent address and sub-agent,
// whatever UDP source the datagrams come from.
func TestSequence(t *testing.T) {
	obs := &recordingObserver{}
	d := NewDecoder(Config{Observer: obs})
	agent6 := netip.MustParseAddr("2001:db8::99")
	for _, s := range []struct {
		agent    netip.Addr
		sub, seq uint32
	}{
		{agent4, 0, 1}, {agent4, 0, 2}, {agent4, 1, 100}, // a new sub-agent has its own sequence
		{agent4, 0, 5}, // 3 and 4 lost
		{agent4, 1, 101}, {agent6, 0, 7}, {agent6, 0, 8},
		{agent4, 0, 1},          // restart
		{agent4, 0, 0xffffffff}, // more than 2^31 ahead: behind, a restart
		{agent4, 0, 0},          // wraps without a gap
		{agent4, 0, 0},          // repeated: counted as a reset
	} {
		if _, err := decodeAll(d, newDatagram(s.agent, s.sub, s.seq).bytes()); err != nil {
			t.Fatal(err)
		}
	}
	want := []seqEvent{{true, agent4, 0, 2}, {false, agent4, 0, 0}, {false, agent4, 0, 0}, {false, agent4, 0, 0}}
	if !slices.Equal(obs.events, want) {
		t.Errorf("events %v, want %v", obs.events, want)
	}
}
