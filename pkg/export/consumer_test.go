package export

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const testTopic = "flows"

func newCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, testTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes values round-robin over the topic's 4 partitions.
func produce(t testing.TB, addrs []string, values [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: testTopic, Partition: int32(i % 4), Value: v}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// instance is one flowexport consumer running in the test.
type instance struct {
	tbl    *Table
	m      *Metrics
	cancel context.CancelFunc
	done   chan error
}

func startInstance(t testing.TB, addrs []string, cfg Config, start StartOffset, maxPoll int) *instance {
	t.Helper()
	return startInstanceWith(t, addrs, cfg, start, maxPoll, nil)
}

// startInstanceWith also passes the invalid-record hook, with the
// instance's cancel function.
func startInstanceWith(t testing.TB, addrs []string, cfg Config, start StartOffset, maxPoll int,
	onInvalid func(cancel context.CancelFunc, r *kgo.Record, err error)) *instance {
	t.Helper()
	tbl, err := NewTable(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	cons, err := NewConsumer(ConsumerConfig{
		Topic: testTopic, Group: "flowexport", Start: start, MaxPollRecords: maxPoll,
		Client:  []kgo.Opt{kgo.SeedBrokers(addrs...), kgo.FetchMaxWait(100 * time.Millisecond)},
		OnError: func(err error) { t.Logf("consumer: %v", err) },
	}, NewCounter(tbl), m)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if onInvalid != nil {
		cons.cfg.OnInvalid = func(r *kgo.Record, err error) { onInvalid(cancel, r, err) }
	}
	in := &instance{tbl: tbl, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- cons.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop cancels the consumer and waits for its final commit.
func (in *instance) stop(t testing.TB) {
	t.Helper()
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop")
	}
}

// records is how many records the instance has taken from Kafka.
func (in *instance) records() int {
	n := testutil.ToFloat64(in.m.invalid)
	for _, c := range in.m.consumed {
		n += testutil.ToFloat64(c)
	}
	return int(n)
}

// sums adds up a family's counters over every series.
func (in *instance) sums(dir Direction) (bytes, packets, flows uint64) {
	in.tbl.mu.Lock()
	defer in.tbl.mu.Unlock()
	for k, c := range in.tbl.pairs {
		if k.dir == dir {
			bytes, packets, flows = bytes+c.bytes, packets+c.packets, flows+c.flows
		}
	}
	return
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testValues returns n records in rotating formats sending from AS 64500
// (transmit) or to it (receive), with their expected scaled byte sums.
func testValues(n, seed int) (values [][]byte, tx, rx uint64) {
	for i := range n {
		bytes := uint64(100 + (i+seed)%1000)
		rate := uint64(1 + i%3)
		peer := uint32(1 + i%50)
		src, dst := uint32(64500), peer
		if i%2 == 1 {
			src, dst = peer, 64500
		}
		var v []byte
		switch i % 4 {
		case 0:
			v = framed(testFlow(src, dst, bytes, 1, rate, "192.0.2.1"))
		case 1:
			v = bare(testFlow(src, dst, bytes, 1, rate, "192.0.2.2"))
		case 2:
			v = jsonFlow(testFlow(src, dst, bytes, 1, rate, "192.0.2.3"))
		case 3:
			v = fmt.Appendf(nil, `{"label":"r1","as_src":%d,"as_dst":%d,"bytes":%d,"packets":1,"sampling_rate":%d}`, src, dst, bytes, rate)
		}
		values = append(values, v)
		if src == 64500 {
			tx += bytes * rate
		} else {
			rx += bytes * rate
		}
	}
	return values, tx, rx
}

func asnConfig() Config {
	cfg := DefaultConfig()
	cfg.ASN = 64500
	return cfg
}

func TestConsumerCountsAndCommits(t *testing.T) {
	c := newCluster(t)
	values, tx, rx := testValues(2000, 0)
	values = append(values, []byte("garbage"), []byte(`{"bytes": "x"}`), nil)
	produce(t, c.ListenAddrs(), values)

	in := startInstance(t, c.ListenAddrs(), asnConfig(), StartEarliest, 0)
	waitFor(t, "every record", func() bool { return in.records() == len(values) })
	in.stop(t)

	if got, _, _ := in.sums(Transmit); got != tx {
		t.Errorf("transmitted bytes %d, want %d", got, tx)
	}
	if got, _, flows := in.sums(Receive); got != rx || flows != 1000 {
		t.Errorf("received bytes %d flows %d, want %d, 1000", got, flows, rx)
	}
	if got := testutil.ToFloat64(in.m.invalid); got != 3 {
		t.Errorf("invalid %v, want 3", got)
	}
	for f, want := range map[Format]float64{FormatBin: 1000, FormatJSON: 500, FormatPmacct: 500} {
		if got := testutil.ToFloat64(in.m.consumed[f]); got != want {
			t.Errorf("consumed %s = %v, want %v", f, got, want)
		}
	}
	for p := range 4 {
		if lag := testutil.ToFloat64(in.m.lag.WithLabelValues(fmt.Sprint(p))); lag != 0 {
			t.Errorf("partition %d lag %v, want 0", p, lag)
		}
	}
	// Every partition is committed up to its end.
	adm := kadm.NewClient(mustClient(t, c.ListenAddrs()))
	offs, err := adm.FetchOffsets(context.Background(), "flowexport")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != int64(len(values)) {
		t.Errorf("committed offsets sum to %d, want %d", committed, len(values))
	}
}

func mustClient(t testing.TB, addrs []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestConsumerResumes stops a consumer part way (at a marker record, in
// the middle of a poll) and checks that a new one in the same group counts
// exactly the rest, the records produced meanwhile included.
func TestConsumerResumes(t *testing.T) {
	c := newCluster(t)
	values, tx, rx := testValues(4000, 1)
	first := values[:2000:2000]
	first = append(first[:1000:1000], append([][]byte{[]byte("stop marker")}, first[1000:]...)...)
	produce(t, c.ListenAddrs(), first)

	a := startInstanceWith(t, c.ListenAddrs(), asnConfig(), StartEarliest, 100,
		func(cancel context.CancelFunc, _ *kgo.Record, _ error) { cancel() })
	waitFor(t, "the marker", func() bool { return testutil.ToFloat64(a.m.invalid) == 1 })
	a.stop(t)
	produce(t, c.ListenAddrs(), values[2000:])

	// earliest would count again whatever a did not commit; a partition a
	// never fetched has no commit and starts at 0.
	b := startInstance(t, c.ListenAddrs(), asnConfig(), StartEarliest, 0)
	total := len(values) + 1
	waitFor(t, "the rest", func() bool { return a.records()+b.records() >= total })
	time.Sleep(300 * time.Millisecond) // let a double count show up
	b.stop(t)
	t.Logf("first instance counted %d records, second %d", a.records(), b.records())

	if a.records()+b.records() != total {
		t.Fatalf("records %d + %d, want %d", a.records(), b.records(), total)
	}
	txa, _, _ := a.sums(Transmit)
	txb, _, _ := b.sums(Transmit)
	rxa, _, _ := a.sums(Receive)
	rxb, _, _ := b.sums(Receive)
	if txa+txb != tx || rxa+rxb != rx {
		t.Errorf("tx %d+%d rx %d+%d, want %d, %d", txa, txb, rxa, rxb, tx, rx)
	}
}

// TestConsumerGroupSharesPartitions runs two members at once across a
// rebalance: together they count every record once.
func TestConsumerGroupSharesPartitions(t *testing.T) {
	c := newCluster(t)
	v1, tx1, rx1 := testValues(2000, 2)
	v2, tx2, rx2 := testValues(2000, 3)
	produce(t, c.ListenAddrs(), v1)

	a := startInstance(t, c.ListenAddrs(), asnConfig(), StartEarliest, 200)
	waitFor(t, "a to start", func() bool { return a.records() > 0 })
	b := startInstance(t, c.ListenAddrs(), asnConfig(), StartEarliest, 200)
	// Produce the second half slowly, across the rebalance b's join causes.
	for i := 0; i < len(v2); i += 100 {
		produce(t, c.ListenAddrs(), v2[i:i+100])
		time.Sleep(150 * time.Millisecond)
	}
	total := len(v1) + len(v2)
	waitFor(t, "both to count everything", func() bool { return a.records()+b.records() >= total })
	waitFor(t, "b to get partitions", func() bool { return b.records() > 0 })
	time.Sleep(300 * time.Millisecond)
	a.stop(t)
	b.stop(t)

	if a.records()+b.records() != total {
		t.Fatalf("records %d + %d, want %d", a.records(), b.records(), total)
	}
	txa, _, _ := a.sums(Transmit)
	txb, _, _ := b.sums(Transmit)
	rxa, _, _ := a.sums(Receive)
	rxb, _, _ := b.sums(Receive)
	if txa+txb != tx1+tx2 || rxa+rxb != rx1+rx2 {
		t.Errorf("tx %d+%d rx %d+%d, want %d, %d", txa, txb, rxa, rxb, tx1+tx2, rx1+rx2)
	}
}
