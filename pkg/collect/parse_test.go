package collect

import (
	"bytes"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

const sampleProcNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops             
  123: 00000000:0807 00000000:0000 07 00000000:00001A00 00:00000000 00000000     0        0 424242 2 0000000000000000 17         
  456: 0100007F:128B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 434343 2 0000000000000000 0          
  bad line
`

func TestParseProcNetUDP(t *testing.T) {
	got, err := ParseProcNetUDP(strings.NewReader(sampleProcNetUDP))
	if err != nil {
		t.Fatal(err)
	}
	want := []SocketStat{
		{LocalPort: 2055, Inode: 424242, RxQueue: 0x1A00, Drops: 17},
		{LocalPort: 4747, Inode: 434343, RxQueue: 0, Drops: 0},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestSocketCollector reads a sample file through the collector and lints
// the exposition.
func TestSocketCollector(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/udp"
	if err := os.WriteFile(path, []byte(sampleProcNetUDP), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newSocketCollector()
	c.procFiles = []string{path, dir + "/missing"}
	c.add(424242, "netflow://:2055", 2055)
	c.add(999, "netflow://:2055", 2055) // closed socket: not in the file
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP flowcollect_kernel_drops_total Datagrams the kernel dropped on our sockets (receive buffer full), from /proc/net/udp{,6}.
# TYPE flowcollect_kernel_drops_total counter
flowcollect_kernel_drops_total{listener="netflow://:2055"} 17
# HELP flowcollect_socket_receive_queue_bytes Bytes waiting in our sockets' receive queues, from /proc/net/udp{,6}.
# TYPE flowcollect_socket_receive_queue_bytes gauge
flowcollect_socket_receive_queue_bytes{listener="netflow://:2055"} 6656
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if p, err := testutil.GatherAndLint(reg); err != nil || len(p) > 0 {
		t.Fatal(err, p)
	}
}

// TestOwnSocketInProc checks that a real socket is found by inode.
func TestOwnSocketInProc(t *testing.T) {
	socks, err := openSockets(t.Context(), Listen{URI: "netflow://127.0.0.1:0", Host: "127.0.0.1", Count: 1, RcvBuf: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer socks[0].conn.Close()
	if os.Geteuid() == 0 && socks[0].rcvBuf < 1<<20 {
		t.Errorf("effective rcvbuf %d < requested (running as root, SO_RCVBUFFORCE should pass)", socks[0].rcvBuf)
	}
	c := newSocketCollector()
	c.add(socks[0].inode, "x", socks[0].local.Port())
	if n := testutil.CollectAndCount(c); n != 2 {
		t.Fatalf("got %d metrics, want 2", n)
	}
}

func TestUDPPayloadLinkTypes(t *testing.T) {
	payload := []byte("hello flow")
	src := netip.MustParseAddrPort("192.0.2.9:1234")
	var pcap bytes.Buffer
	if err := flowgen.WritePcap(&pcap, [][]byte{payload}, src, netip.MustParseAddrPort("192.0.2.1:2055"), time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&pcap)
	if err != nil {
		t.Fatal(err)
	}
	frame, _, err := r.ReadPacketData()
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link %v", r.LinkType())
	}
	ip := frame[14:]
	vlan := append(append(append([]byte{}, frame[:12]...), 0x81, 0x00, 0, 7), frame[12:]...)
	sll := append(append(make([]byte, 14), 0x08, 0x00), ip...)
	null := append([]byte{2, 0, 0, 0}, ip...)
	for _, tc := range []struct {
		name string
		link layers.LinkType
		b    []byte
	}{
		{"ethernet", layers.LinkTypeEthernet, frame},
		{"vlan", layers.LinkTypeEthernet, vlan},
		{"raw", layers.LinkTypeRaw, ip},
		{"sll", layers.LinkTypeLinuxSLL, sll},
		{"null", layers.LinkTypeNull, null},
	} {
		got, from, port, ok := UDPPayload(tc.link, tc.b)
		if !ok || !bytes.Equal(got, payload) || from != src || port != 2055 {
			t.Errorf("%s: got %q %s %d %v", tc.name, got, from, port, ok)
		}
	}
	if _, _, _, ok := UDPPayload(layers.LinkTypeRaw, ip[:len(ip)-1]); ok {
		t.Error("short frame accepted")
	}
}

// FuzzUDPPayload: for any frame and link type, UDPPayload does not panic
// and a payload it returns lies inside the frame.
func FuzzUDPPayload(f *testing.F) {
	var pcap bytes.Buffer
	_ = flowgen.WritePcap(&pcap, [][]byte{[]byte("seed")}, netip.MustParseAddrPort("[2001:db8::1]:1"), netip.MustParseAddrPort("[2001:db8::2]:2055"), time.Unix(0, 0))
	if r, err := pcapgo.NewReader(&pcap); err == nil {
		if frame, _, err := r.ReadPacketData(); err == nil {
			f.Add(uint8(layers.LinkTypeEthernet), frame)
			f.Add(uint8(layers.LinkTypeRaw), frame[14:])
		}
	}
	f.Add(uint8(0), []byte{2, 0, 0, 0, 0x45})
	f.Fuzz(func(t *testing.T, link uint8, b []byte) {
		for _, lt := range []layers.LinkType{layers.LinkType(link), layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL2} {
			p, _, _, ok := UDPPayload(lt, b)
			if !ok {
				continue
			}
			if len(p) > len(b) {
				t.Fatalf("payload longer than frame")
			}
		}
	})
}

// FuzzParseProcNetUDP: any text parses without panic and every socket
// reported comes from a line of the input.
func FuzzParseProcNetUDP(f *testing.F) {
	f.Add(sampleProcNetUDP)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseProcNetUDP(strings.NewReader(s))
		if err == nil && len(got) > strings.Count(s, "\n")+1 {
			t.Fatalf("%d sockets from %d lines", len(got), strings.Count(s, "\n")+1)
		}
	})
}

// FuzzParseListen: any string either parses into a usable listener or is
// rejected with an error; never a panic.
func FuzzParseListen(f *testing.F) {
	for _, s := range DefaultListen {
		f.Add(s)
	}
	f.Add("netflow://[::1]:2055?count=4&rcvbuf=1")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseListen(s, 0)
		if err != nil {
			return
		}
		if l.Count < 1 || l.Port < 0 || l.Port > 65535 || l.Family == FamilyAuto {
			t.Fatalf("accepted unusable %+v", l)
		}
	})
}

// TestExporterLabelCap: past the cap, new exporters share "other" and the
// metrics stay bounded.
func TestExporterLabelCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, 2)
	wm := &workerMetrics{m: m, byExp: map[exporterKey]*exporterCounters{}}
	for i := 1; i <= 5; i++ {
		wm.exporter(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 2).packets.Inc()
	}
	if n := testutil.CollectAndCount(m.packets); n != 3 {
		t.Fatalf("%d series, want 2 exporters + other", n)
	}
	if v := testutil.ToFloat64(m.packets.WithLabelValues("netflow_v9", "other")); v != 3 {
		t.Fatalf("other = %v, want 3", v)
	}
}
