package netflow

import (
	"path/filepath"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"github.com/flowpipe/flowpipe/pkg/testutil/testtraffic"
)

// TestLiveExporters runs softflowd and pmacctd now (not from fixtures) so
// that a change in the installed tools shows: every packet and byte of
// the traffic must come out of the decoder.
func TestLiveExporters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real exporters")
	}
	pcap := filepath.Join(t.TempDir(), "traffic.pcap")
	flows, err := testtraffic.Write(pcap, testtraffic.Default())
	if err != nil {
		t.Fatal(err)
	}
	var wantP, wantB uint64
	for _, f := range flows {
		wantP += uint64(f.Packets)
		wantB += f.Bytes
	}
	for name, run := range map[string]func() [][]byte{
		"softflowd-ipfix": func() [][]byte { return interop.Softflowd(t, pcap, 10) },
		"pmacctd-v9":      func() [][]byte { return interop.Pmacctd(t, pcap, "nfprobe", 9, "") },
	} {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(Config{})
			var packets, bytes uint64
			for i, dg := range run() {
				err := d.Decode(decode.Packet{Data: dg, Exporter: interop.PcapExporter, ReceivedNs: 1},
					func(m *flowpb.FlowMessage) { packets += m.Packets; bytes += m.Bytes })
				if err != nil {
					t.Errorf("datagram %d: %v", i, err)
				}
			}
			if packets != wantP || bytes != wantB {
				t.Errorf("decoded packets=%d bytes=%d, traffic has %d %d", packets, bytes, wantP, wantB)
			}
		})
	}
}
