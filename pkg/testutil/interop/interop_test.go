package interop

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/testutil/testtraffic"
)

func trafficPcap(t *testing.T) (string, []testtraffic.Flow) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "traffic.pcap")
	flows, err := testtraffic.Write(path, testtraffic.Default())
	if err != nil {
		t.Fatal(err)
	}
	return path, flows
}

// totals checks tshark's decode of an exporter's datagrams against the
// traffic's ground truth: every packet and byte accounted for.
func checkTotals(t *testing.T, datagrams [][]byte, flows []testtraffic.Flow) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export.pcap")
	if err := WritePcap(out, datagrams, 2055); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPcap(out)
	if err != nil || len(got) != len(datagrams) {
		t.Fatalf("ReadPcap: %d datagrams, %v; want %d", len(got), err, len(datagrams))
	}
	for i := range got {
		if string(got[i].Data) != string(datagrams[i]) || got[i].Src != PcapExporter {
			t.Fatalf("datagram %d differs after the pcap round trip", i)
		}
	}
	rows := Tshark(t, out, "cflow", 2055, "cflow.packets", "cflow.octets")
	var packets, bytes uint64
	for _, r := range rows {
		p, _ := strconv.ParseUint(r["cflow.packets"], 10, 64)
		b, _ := strconv.ParseUint(r["cflow.octets"], 10, 64)
		packets += p
		bytes += b
	}
	var wantP, wantB uint64
	for _, f := range flows {
		wantP += uint64(f.Packets)
		wantB += f.Bytes
	}
	if packets != wantP || bytes != wantB {
		t.Errorf("tshark sums packets=%d bytes=%d over %d records, traffic has packets=%d bytes=%d", packets, bytes, len(rows), wantP, wantB)
	}
}

func TestSoftflowdIPFIX(t *testing.T) {
	pcap, flows := trafficPcap(t)
	checkTotals(t, Softflowd(t, pcap, 10), flows)
}

func TestPmacctdNetFlowV9(t *testing.T) {
	pcap, flows := trafficPcap(t)
	checkTotals(t, Pmacctd(t, pcap, "nfprobe", 9, ""), flows)
}
