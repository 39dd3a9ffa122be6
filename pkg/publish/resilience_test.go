package publish

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// feeder writes a bin stream into a pipe in chunks of records, so a test
// can act between chunks.
type feeder struct {
	t      *testing.T
	w      *io.PipeWriter
	frames [][]byte
	next   int
}

func newFeeder(t *testing.T, n, samplers int) (*feeder, *io.PipeReader) {
	stream := binStream(t, n, samplers)
	var frames [][]byte
	for len(stream) > 0 {
		size := int(stream[0]) // test records are < 128 bytes: one-byte prefix
		if stream[0] >= 0x80 {
			t.Fatal("test record too large for the one-byte prefix shortcut")
		}
		frames = append(frames, stream[:1+size])
		stream = stream[1+size:]
	}
	r, w := io.Pipe()
	return &feeder{t: t, w: w, frames: frames}, r
}

// feed writes the next k records.
func (f *feeder) feed(k int) {
	for ; k > 0 && f.next < len(f.frames); k-- {
		if _, err := f.w.Write(f.frames[f.next]); err != nil {
			f.t.Error(err)
			return
		}
		f.next++
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runAsync(p *Publisher, r io.Reader) chan error {
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background(), r) }()
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// TestOutageWithDataDir stops the broker mid-stream and restarts it on the
// same port with its data: every record arrives exactly once, in order
// per key (idempotent producer).
func TestOutageWithDataDir(t *testing.T) {
	const n, samplers = 6000, 6
	dir := t.TempDir()
	port := freePort(t)
	c1 := newCluster(t, kfake.Ports(port), kfake.DataDir(dir))
	brokers := c1.ListenAddrs()
	cfg := DefaultConfig()
	cfg.Key = keyed(t, "sampler_address")
	p, _ := newPublisher(t, brokers, cfg)
	f, r := newFeeder(t, n, samplers)
	done := runAsync(p, r)

	f.feed(2000)
	waitFor(t, "first records acknowledged", func() bool { return p.Stats().Produced >= 1000 })
	c1.Close() // mid-stream: some records are still in flight
	f.feed(2000)
	time.Sleep(1500 * time.Millisecond) // a real outage: the producer retries
	if st := p.Stats(); st.Failed != 0 {
		t.Fatalf("records failed during the outage: %+v", st)
	}
	c2 := newCluster(t, kfake.Ports(port), kfake.DataDir(dir))
	f.feed(n)
	f.w.Close()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Produced != n || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	checkOrder(t, consumeAll(t, c2.ListenAddrs(), n), n, samplers)
}

// TestTopicRecreated restarts the broker without its data, so the topic
// comes back under a new id: franz-go fails its records with
// UNKNOWN_TOPIC_ID and the publisher must recover by itself.
func TestTopicRecreated(t *testing.T) {
	const n1, n2, samplers = 1000, 3000, 4
	port := freePort(t)
	c1 := newCluster(t, kfake.Ports(port))
	cfg := DefaultConfig()
	cfg.Key = keyed(t, "sampler_address")
	p, _ := newPublisher(t, c1.ListenAddrs(), cfg)
	f, r := newFeeder(t, n1+n2, samplers)
	done := runAsync(p, r)

	f.feed(n1)
	waitFor(t, "first part acknowledged", func() bool { return p.Stats().Produced == n1 })
	c1.Close()
	c2 := newCluster(t, kfake.Ports(port)) // same topic name, new id, empty
	f.feed(n2)
	f.w.Close()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Failed != 0 || st.Produced != n1+n2 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("stats after re-creation: %+v", st)
	// The second part is all on the new topic, in order per key. (The
	// first part went down with the old broker's memory.)
	recs := consumeAll(t, c2.ListenAddrs(), n2)
	for _, r := range recs {
		m := decodeValue(t, r.Value)
		m.SequenceNum -= n1 / samplers
		r.Value = frame(m)
	}
	checkOrder(t, recs, n2, samplers)
}

func frame(m interface{ MarshalVT() ([]byte, error) }) []byte {
	b, _ := m.MarshalVT()
	return append([]byte{byte(len(b))}, b...)
}

// produceError answers a produce request with code for every partition.
func produceError(req kmsg.Request, code int16) kmsg.Response {
	pr := req.(*kmsg.ProduceRequest)
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range pr.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// TestRetriableErrorsRetried: the broker answers the first produce
// requests with retriable errors; nothing is lost or duplicated.
func TestRetriableErrorsRetried(t *testing.T) {
	const n, samplers = 3000, 3
	c := newCluster(t)
	failures := 0
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if failures >= 5 {
			return nil, nil, false
		}
		c.KeepControl()
		failures++
		code := kerr.NotLeaderForPartition.Code
		if failures%2 == 0 {
			code = kerr.RequestTimedOut.Code
		}
		return produceError(req, code), nil, true
	})
	cfg := DefaultConfig()
	cfg.Key = keyed(t, "sampler_address")
	// Short backoffs: the default metadata refresh after NOT_LEADER waits seconds.
	p, _ := newPublisher(t, c.ListenAddrs(), cfg,
		kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		kgo.MetadataMinAge(50*time.Millisecond))
	f, r := newFeeder(t, n, samplers)
	done := runAsync(p, r)
	f.feed(n)
	f.w.Close()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if failures < 5 {
		t.Fatalf("only %d produce requests failed", failures)
	}
	checkOrder(t, consumeAll(t, c.ListenAddrs(), n), n, samplers)
}

// TestFatalErrorCounted: a non-retriable error fails records; Run says how
// many and why, and the metric carries the reason.
func TestFatalErrorCounted(t *testing.T) {
	const n = 500
	c := newCluster(t)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return produceError(req, kerr.TopicAuthorizationFailed.Code), nil, true
	})
	p, _ := newPublisher(t, c.ListenAddrs(), DefaultConfig())
	f, r := newFeeder(t, n, 1)
	done := runAsync(p, r)
	f.feed(n)
	f.w.Close()
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "500 of 500 records failed (topic_authorization_failed: 500)") {
		t.Fatalf("got %v", err)
	}
	if got := p.m.failed.WithLabelValues("topic_authorization_failed"); got == nil {
		t.Fatal("no metric")
	}
}

// TestBackpressure: while the broker does not answer, the publisher reads
// no more than its buffer holds; then everything goes through.
func TestBackpressure(t *testing.T) {
	const n, buffered = 2000, 50
	c := newCluster(t)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		<-release // stalls the broker, as a slow disk would
		return nil, nil, false
	})
	cfg := DefaultConfig()
	cfg.MaxBufferedRecords = buffered
	p, _ := newPublisher(t, c.ListenAddrs(), cfg)
	f, r := newFeeder(t, n, 1)
	done := runAsync(p, r)
	go f.feed(n)
	waitFor(t, "the buffer to fill", func() bool { return p.Stats().Read >= buffered })
	time.Sleep(300 * time.Millisecond)
	if st := p.Stats(); st.Read > buffered+1 {
		t.Fatalf("read %d records with a buffer of %d while the broker stalled", st.Read, buffered)
	}
	close(release)
	waitFor(t, "all records read", func() bool { return p.Stats().Read == n })
	f.w.Close()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Produced != n {
		t.Fatalf("stats %+v", st)
	}
}

// TestFlushTimeout: with no broker at all, records wait until the flush
// timeout, then fail with a reason instead of vanishing or hanging.
func TestFlushTimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FlushTimeout = 500 * time.Millisecond
	p, _ := newPublisher(t, []string{"127.0.0.1:" + strconv.Itoa(freePort(t))}, cfg)
	f, r := newFeeder(t, 5, 1)
	done := runAsync(p, r)
	f.feed(5)
	f.w.Close()
	start := time.Now()
	err := wait(t, done)
	if err == nil || !strings.Contains(err.Error(), "5 of 5 records failed (flush_timeout: 5)") {
		t.Fatalf("got %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %v", el)
	}
}
