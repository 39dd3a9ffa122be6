package sflow

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
)

// FuzzDecode feeds arbitrary datagrams to the decoder, seeded with the
// pmacctd fixture, flowgen datagrams (IPv4 and IPv6 agents) and the
// hand-built ones. Invariants:
//   - no panic, and Decode returns (no hang);
//   - at most MaxSamples flows per datagram;
//   - every flow has type SFLOW_5, packets 1 and a 4- or 16-byte
//     sampler_address, and layer_stack is never longer than layer_size;
//   - every error is an sflow *decode.Error with a known reason, and the
//     flows counted by Stats are the flows emitted;
//   - a counter record handed to OnCounters has the datagram's agent;
//   - AppendRecords writes the bytes Decode and flowpb's encoder write.
func FuzzDecode(f *testing.F) {
	if pkts, err := readPcapData(fixturePmacct); err == nil {
		for _, p := range pkts[:min(len(pkts), 20)] {
			f.Add(p)
		}
	}
	for _, agent := range []string{"192.0.2.1", "2001:db8::1"} {
		g, err := flowgen.New(flowgen.Config{Seed: 3, Protocol: flowgen.SFlow, Exporter: netip.MustParseAddr(agent), IPv6Ratio: 0.5})
		if err != nil {
			f.Fatal(err)
		}
		for range 3 {
			pkt, _ := g.Next()
			f.Add(slices.Clone(pkt))
		}
	}
	f.Add(benchDatagram())
	f.Add(v6AgentDatagram())
	good := goodRecords()
	f.Add(newDatagram(agent4, 0, 1).flow(1, 1, 0, append(good, recGateway(v4a, 1, 2, []uint32{1}, []uint32{1, 2}, []uint32{3}))...).
		sample(formatCounter, cat(be(1, 5, 2), record(1, make([]byte, ifCountersLen)), record(2, make([]byte, ethCountersLen)))).bytes())

	const maxSamples = 64
	f.Fuzz(func(t *testing.T, data []byte) {
		var counterAgent netip.Addr
		d := NewDecoder(Config{MaxSamples: maxSamples, OnCounters: func(c *CounterRecord) {
			if !c.Agent.IsValid() {
				t.Fatal("counter record without agent")
			}
			counterAgent = c.Agent
		}})
		n := 0
		err := d.Decode(decode.Packet{Data: data, Exporter: testExporter, ReceivedNs: 1}, func(m *flowpb.FlowMessage) {
			n++
			if m.Type != flowpb.FlowMessage_SFLOW_5 || m.Packets != 1 {
				t.Fatalf("type %v packets %d", m.Type, m.Packets)
			}
			if l := len(m.SamplerAddress); l != 4 && l != 16 {
				t.Fatalf("sampler_address of %d bytes", l)
			}
			if len(m.LayerStack) > len(m.LayerSize) {
				t.Fatalf("layer_stack %v longer than layer_size %v", m.LayerStack, m.LayerSize)
			}
			if _, err := m.MarshalVT(); err != nil {
				t.Fatal(err)
			}
		})
		if n > maxSamples {
			t.Fatalf("%d flows from one datagram", n)
		}
		if st := d.Stats(); st.Flows != uint64(n) {
			t.Fatalf("stats count %d flows, %d emitted", st.Flows, n)
		}
		for _, r := range decode.Reasons(err) {
			if r == "other" || r == "" {
				t.Fatalf("error without a class: %v", err)
			}
		}
		if err != nil {
			var de *decode.Error
			if !errors.As(err, &de) || de.Protocol != decode.SFlowV5 {
				t.Fatalf("not an sflow *decode.Error: %v", err)
			}
		}
		if counterAgent.IsValid() && n > 0 {
			// Both come from the same datagram header.
			if !slices.Equal(counterAgent.AsSlice(), agentOf(data)) {
				t.Fatalf("counter agent %v", counterAgent)
			}
		}
		checkAppend(t, Config{MaxSamples: maxSamples}, decode.Packet{Data: data, Exporter: testExporter, ReceivedNs: 1})
	})
}

func agentOf(data []byte) []byte {
	if len(data) >= 24 && data[7] == 1 {
		return data[8:12]
	}
	if len(data) >= 24 && data[7] == 2 {
		return data[8:24]
	}
	return nil
}

func readPcapData(path string) ([][]byte, error) {
	pkts, err := interop.ReadPcap(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, p := range pkts {
		out = append(out, p.Data)
	}
	return out, nil
}
