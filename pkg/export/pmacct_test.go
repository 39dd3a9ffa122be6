package export

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/testutil/interop"
	"github.com/flowpipe/flowpipe/pkg/testutil/testtraffic"
)

// TestPmacctKafkaPlugin runs the real pmacctd on a pcap with its kafka
// plugin producing to an in-process kfake broker (as_src/as_dst from a
// networks_file), and checks that flowexport reads every record pmacct
// wrote as pmacct JSON and counts, per AS pair, what encoding/json reads
// from the same records. (pmacctd reading a pcap at full speed hands only
// part of it to the plugin, so pmacct's output, not the pcap, is the
// reference.)
func TestPmacctKafkaPlugin(t *testing.T) {
	bin := interop.Require(t, "pmacctd")
	dir := t.TempDir()
	pcap := filepath.Join(dir, "traffic.pcap")
	flows, err := testtraffic.Write(pcap, testtraffic.Default())
	if err != nil {
		t.Fatal(err)
	}
	// Every address gets its own AS.
	asOf := map[netip.Addr]uint32{}
	var networks strings.Builder
	for _, f := range flows {
		for _, a := range []netip.Addr{f.Src, f.Dst} {
			if _, ok := asOf[a]; !ok {
				asOf[a] = 64500 + uint32(len(asOf))
				fmt.Fprintf(&networks, "%d,%s\n", asOf[a], netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	netFile := filepath.Join(dir, "networks.lst")
	if err := os.WriteFile(netFile, []byte(networks.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	c := newCluster(t)
	host, port, _ := strings.Cut(c.ListenAddrs()[0], ":")
	conf := filepath.Join(dir, "pmacctd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `daemonize: false
pcap_savefile: %s
pcap_savefile_wait: true
plugins: kafka
aggregate: src_as, dst_as
pmacctd_as: file
networks_file: %s
kafka_broker_host: %s
kafka_broker_port: %s
kafka_topic: %s
kafka_refresh_time: 1
`, pcap, netFile, host, port, testTopic), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AllPairs = true
	in := startInstance(t, c.ListenAddrs(), cfg, StartEarliest, 0)
	runPmacctd(t, bin, conf)

	// What pmacct wrote, read independently.
	type pair struct{ src, dst uint32 }
	want := map[pair][2]uint64{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var n int
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fetches := cl.PollFetches(ctx)
		cancel()
		if fetches.NumRecords() == 0 {
			break
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			var v struct {
				AsSrc   uint32 `json:"as_src"`
				AsDst   uint32 `json:"as_dst"`
				Bytes   uint64 `json:"bytes"`
				Packets uint64 `json:"packets"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("pmacct wrote %q: %v", r.Value, err)
			}
			sums := want[pair{v.AsSrc, v.AsDst}]
			want[pair{v.AsSrc, v.AsDst}] = [2]uint64{sums[0] + v.Bytes, sums[1] + v.Packets}
		})
	}
	if n == 0 {
		t.Fatal("pmacct wrote nothing to Kafka")
	}
	t.Logf("pmacct wrote %d records", n)
	waitFor(t, "every pmacct record", func() bool { return in.records() >= n })
	time.Sleep(300 * time.Millisecond) // a double count would show up now
	in.stop(t)
	if got := testutil.ToFloat64(in.m.consumed[FormatPmacct]); int(got) != n {
		t.Errorf("%v records read as pmacct, want %d", got, n)
	}
	got := map[pair][2]uint64{}
	for k, v := range in.tbl.pairs {
		if k.dir == Pair {
			got[pair{k.src, k.dst}] = [2]uint64{v.bytes, v.packets}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("per-pair bytes, packets:\n got %v\nwant %v", got, want)
	}
}

// runPmacctd runs pmacctd until it has read the pcap and its kafka plugin
// has purged twice (kafka_refresh_time), then interrupts it (SIGINT flushes).
func runPmacctd(t *testing.T, bin, conf string) {
	t.Helper()
	log, err := interop.RunPmacctd(bin, conf, 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pmacctd:\n%s", log)
}
