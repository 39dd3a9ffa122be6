package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

// broker is a dev broker on a fixed address and data directory, so that
// it can be stopped and started again as the same broker.
type broker struct {
	t       *testing.T
	addr    string
	dataDir string
	p       *proc
}

func newBroker(t *testing.T, topic string) *broker {
	b := &broker{t: t, addr: freeTCP(t), dataDir: t.TempDir()}
	b.start(topic)
	return b
}

// start runs the broker and waits until it announces its address.
func (b *broker) start(topic string) {
	t := b.t
	t.Helper()
	cmd := exec.Command(bin("devbroker"), "--listen", b.addr, "--data-dir", b.dataDir, "--topic", topic, "--partitions", "4")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.p = start(t, "devbroker", cmd)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "devbroker: listening on ") {
				close(ready)
			}
		}
	}()
	p := b.p
	t.Cleanup(func() { p.signal(syscall.SIGTERM) })
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("devbroker did not start\n%s", b.p.log.String())
	}
}

// stop stops the broker cleanly (its data stays in dataDir).
func (b *broker) stop() {
	b.p.signal(syscall.SIGTERM)
	if code := b.p.wait(b.t, 30*time.Second); code != 0 {
		b.t.Fatalf("devbroker exit %d", code)
	}
}

// records counts the records of topic: the sum of its end offsets.
func (b *broker) records(topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return 0, err
	}
	var sum int64
	offs.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, nil
}

// sequences reads every record of topic (want of them, then whatever
// more comes in a second) and returns how often each sequence number came.
// Every value must be exactly one framed FlowMessage.
func (b *broker) sequences(t *testing.T, topic string, want int) map[uint32]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[uint32]int{}
	n := 0
	var m flowpb.FlowMessage
	collect := func(fs kgo.Fetches) {
		fs.EachRecord(func(r *kgo.Record) {
			size, l := binary.Uvarint(r.Value)
			if l <= 0 || int(size) != len(r.Value)-l {
				t.Fatalf("record %d: value is not one framed message", n)
			}
			m.ResetVT() // UnmarshalVT merges: absent fields (sequence 0) would keep the last value
			if err := m.UnmarshalVT(r.Value[l:]); err != nil {
				t.Fatalf("record %d: %v", n, err)
			}
			got[m.SequenceNum]++
			n++
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for n < want && ctx.Err() == nil {
		collect(cl.PollFetches(ctx))
	}
	more, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	collect(cl.PollFetches(more))
	return got
}

// seqStream is a bin stream of flows with sequence numbers [from, to),
// each about 120 bytes.
func seqStream(t *testing.T, from, to int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	for i := from; i < to; i++ {
		m := &flowpb.FlowMessage{
			Type: flowpb.FlowMessage_IPFIX, SequenceNum: uint32(i), TimeReceivedNs: uint64(1_700_000_000e9 + i),
			SamplerAddress: []byte{192, 0, 2, byte(i % 7)}, SrcAddr: binary.BigEndian.AppendUint32(nil, uint32(i)),
			DstAddr: []byte{198, 51, 100, byte(i)}, Bytes: uint64(40 + i%1400), Packets: 1, Proto: 6,
			SrcPort: uint32(i % 65536), DstPort: 443, Etype: 0x800, SrcAs: 64500, DstAs: 64501,
			InIf: 1, OutIf: 2, SrcCountry: "FR", DstCountry: "DE",
		}
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// scrape returns the value of a metric at addr ("" and false when it is
// not served).
func scrape(addr, series string) (float64, bool) {
	body := httpGet("http://" + addr + "/metrics")
	if body == "" || !strings.Contains(body, series) {
		return 0, false
	}
	return metric(body, series), true
}

// waitMetric waits until cond holds for the metric's value.
func waitMetric(t *testing.T, addr, series string, timeout time.Duration, cond func(float64) bool) float64 {
	t.Helper()
	var v float64
	if !waitFor(timeout, func() bool {
		var ok bool
		v, ok = scrape(addr, series)
		return ok && cond(v)
	}) {
		t.Fatalf("%s at %s: %v after %v", series, addr, v, timeout)
	}
	return v
}

// startPublish starts flowpublish reading stdin (a pipe; the writer end
// is returned, nil for an empty input).
func startPublish(t *testing.T, name string, stdin bool, args ...string) (*proc, *os.File) {
	t.Helper()
	cmd := exec.Command(bin("flowpublish"), args...)
	var w *os.File
	if stdin {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin, w = r, pw
		t.Cleanup(func() { r.Close(); pw.Close() })
	}
	return start(t, name, cmd), w
}

// segmentFiles lists a spool directory's segments in order.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".seg") {
			out = append(out, dir+"/"+e.Name())
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
