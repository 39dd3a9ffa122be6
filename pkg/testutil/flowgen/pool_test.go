package flowgen

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestFlowPool checks that a pooled generator draws its first FlowPool data
// packets as an unpooled one does, then reuses their flows in turn, with
// fresh host bits in the addresses and times moved by whole seconds with
// the export time. The packets themselves are checked against the flows by
// TestRoundTrip's pool cases.
func TestFlowPool(t *testing.T) {
	const pool, passes = 4, 20
	for _, p := range []Protocol{NetFlowV5, NetFlowV9, IPFIX, SFlow} {
		t.Run(p.String(), func(t *testing.T) {
			cfg := Config{Protocol: p, Seed: 21, PacketInterval: 300 * time.Millisecond, TemplateInterval: -1}
			if p != NetFlowV5 {
				cfg.IPv6Ratio = 0.5
			}
			_, plain := generate(t, cfg, pool)
			cfg.FlowPool = pool
			_, pooled := generate(t, cfg, pool*passes)
			for i := range pool {
				if !bytes.Equal(plain.pkts[i], pooled.pkts[i]) {
					t.Fatalf("packet %d differs from the unpooled generator's", i)
				}
			}
			hosts, total := map[netip.Addr]bool{}, 0
			for i := pool; i < len(pooled.pkts); i++ {
				shift := time.Duration(pooled.times[i].Unix()-pooled.times[i%pool].Unix()) * time.Second
				for j, f := range pooled.flows[i] {
					orig := pooled.flows[i%pool][j]
					if !samePrefix(f.SrcAddr, orig.SrcAddr) || !samePrefix(f.DstAddr, orig.DstAddr) {
						t.Fatalf("packet %d flow %d: %v -> %v reuses %v -> %v", i, j, f.SrcAddr, f.DstAddr, orig.SrcAddr, orig.DstAddr)
					}
					if p != SFlow && (f.Start.Sub(orig.Start) != shift || f.End.Sub(orig.End) != shift) {
						t.Fatalf("packet %d flow %d: times %v-%v, pooled %v-%v, export time moved %v",
							i, j, f.Start, f.End, orig.Start, orig.End, shift)
					}
					same := f
					same.SrcAddr, same.DstAddr, same.Start, same.End = orig.SrcAddr, orig.DstAddr, orig.Start, orig.End
					if diff := cmp.Diff(orig, same, cmpFlows...); diff != "" {
						t.Fatalf("packet %d flow %d differs from the pooled one beyond addresses and times (-pooled +reused):\n%s", i, j, diff)
					}
					hosts[f.SrcAddr], hosts[f.DstAddr] = true, true
					total += 2
				}
			}
			if len(hosts) < total*99/100 {
				t.Fatalf("%d distinct addresses in %d", len(hosts), total)
			}
		})
	}
}

// samePrefix reports whether a and b share their first 8 bits (IPv4) or 32
// (IPv6), which FlowPool keeps.
func samePrefix(a, b netip.Addr) bool {
	if a.Is4() != b.Is4() {
		return false
	}
	if a.Is4() {
		return a.As4()[0] == b.As4()[0]
	}
	a16, b16 := a.As16(), b.As16()
	return [4]byte(a16[:4]) == [4]byte(b16[:4])
}

// TestSFlowReuseMatchesEncoder checks reused sFlow datagrams, patched as
// bytes, against the encoder fed with the flows Next returns and the same
// sequence numbers, with sampled headers cut inside the transport header
// (64 bytes): the identification, checksum and transport sequence numbers
// derived from the sample sequence are not checked by the round trip.
func TestSFlowReuseMatchesEncoder(t *testing.T) {
	for _, size := range []int{64, 128} {
		cfg := Config{Protocol: SFlow, Seed: 31, IPv6Ratio: 0.5, SamplingRate: 32, FlowPool: 2, HeaderSize: size}
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		plain := cfg
		plain.FlowPool = 0
		enc, _ := New(plain)
		for i := range 40 {
			enc.seq, enc.sampleSeq, enc.samplePool, enc.counterSeq = g.seq, g.sampleSeq, g.samplePool, g.counterSeq
			pkt, flows := g.Next()
			if i < cfg.FlowPool {
				continue
			}
			now := g.Time()
			want := enc.appendSFlowHeader(nil, len(flows), now)
			for j := range flows {
				f := flows[j]
				want = enc.appendFlowSample(want, &f, now, j%2 == 1)
			}
			want = enc.appendCounterSample(want)
			if !bytes.Equal(pkt, want) {
				t.Fatalf("header size %d, datagram %d: reused bytes differ from the encoder's at offset %d",
					size, i, firstDiff(pkt, want))
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
