package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

func TestRunPcap(t *testing.T) {
	for _, proto := range []string{"netflow5", "netflow9", "ipfix", "sflow"} {
		t.Run(proto, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "out.pcap")
			var stdout, stderr bytes.Buffer
			if code := run([]string{"flowgen", "--protocol", proto, "--count", "7", "--pcap", file}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), "wrote 7 packets") {
				t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n := countPcap(t, f); n != 7 {
				t.Fatalf("%d packets in the pcap", n)
			}
		})
	}
}

func TestRunPcapStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	t.Setenv("FLOWGEN_PROTOCOL", "sflow")
	if code := run([]string{"flowgen", "--count", "3", "--pcap", "-", "--exporter", "2001:db8::1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if n := countPcap(t, &stdout); n != 3 {
		t.Fatalf("%d packets on stdout", n)
	}
}

func TestRunSend(t *testing.T) {
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	args := []string{"flowgen", "--protocol", "netflow9", "--send", ln.LocalAddr().String(), "--rate", "100000", "--count", "50"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "sent 50 packets") {
		t.Fatalf("stderr %q", stderr.String())
	}
	buf := make([]byte, 65536)
	if n, err := ln.Read(buf); err != nil || n < 20 {
		t.Fatalf("read %d bytes: %v", n, err)
	}
}

// TestRunFlowPool checks that --flow-pool reaches the generator: the pcap
// holds what a generator with the same pool makes, not an unpooled one's.
func TestRunFlowPool(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"flowgen", "--protocol", "netflow5", "--flow-pool", "2", "--count", "6", "--pcap", "-"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	pr, err := pcapgo.NewReader(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	pooled, _ := flowgen.New(flowgen.Config{Seed: 1, Protocol: flowgen.NetFlowV5, FlowPool: 2})
	plain, _ := flowgen.New(flowgen.Config{Seed: 1, Protocol: flowgen.NetFlowV5})
	for i := range 6 {
		frame, _, err := pr.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		payload := frame[14+20+8:] // Ethernet, IPv4, UDP
		want, _ := pooled.Next()
		other, _ := plain.Next()
		if !bytes.Equal(payload, want) || (i >= 2) == bytes.Equal(payload, other) {
			t.Fatalf("packet %d is not the pooled generator's (or is the unpooled one's too)", i)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--pcap", "x.pcap", "--send", "127.0.0.1:2055"},
		{},
		{"--protocol", "netflow7", "--pcap", "-"},
		{"--protocol", "netflow5", "--ipv6-ratio", "0.5", "--pcap", "-"},
		{"--no-such-flag"},
		{"--pcap", "-", "extra"},
		{"--flow-pool", "-1", "--pcap", "-"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"flowgen"}, args...), &stdout, &stderr); code != 2 || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"flowgen", "--pcap", "/nonexistent/dir/x.pcap"}, &stdout, &stderr); code != 1 {
		t.Errorf("unwritable file: exit %d, stderr %q", code, stderr.String())
	}
}

func countPcap(t *testing.T, r io.Reader) int {
	t.Helper()
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, _, err := pr.ReadPacketData(); errors.Is(err, io.EOF) {
			return n
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
}
