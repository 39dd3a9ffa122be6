package publish

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flowpipe/flowpipe/pkg/command"
	"github.com/flowpipe/flowpipe/pkg/framing"
	"github.com/flowpipe/flowpipe/pkg/spool"
)

func spoolConfig(dir string) Config {
	cfg := DefaultConfig()
	o := spool.DefaultOptions(dir)
	o.SegmentBytes = 1 << 20 // several segments in a test
	cfg.Spool = &o
	return cfg
}

// TestSpoolInOrder: with a spool, every record arrives once, in order per
// key, keyed or not, and bin values are the input frames byte for byte.
func TestSpoolInOrder(t *testing.T) {
	const n, samplers = 30000, 8
	for _, key := range []string{"none", "sampler_address"} {
		t.Run(key, func(t *testing.T) {
			c := newCluster(t)
			cfg := spoolConfig(t.TempDir())
			cfg.Key = keyed(t, key)
			p, reg := newPublisher(t, c.ListenAddrs(), cfg)
			stream := binStream(t, n, samplers)
			if err := p.Run(context.Background(), chunkReader{bytes.NewReader(stream), 7919}); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Read != n || st.Produced != n || st.Failed != 0 || st.Spooled != 0 {
				t.Fatalf("stats %+v", st)
			}
			recs := consumeAll(t, c.ListenAddrs(), n)
			if cfg.Key != nil {
				checkOrder(t, recs, n, samplers)
			} else {
				seen := map[uint64]bool{}
				for _, r := range recs {
					seen[decodeValue(t, r.Value).TimeReceivedNs] = true
				}
				if len(seen) != n || len(recs) != n {
					t.Fatalf("%d records, %d distinct, want %d", len(recs), len(seen), n)
				}
			}
			total := 0
			for _, r := range recs {
				total += len(r.Value)
			}
			if total != len(stream) {
				t.Errorf("values hold %d bytes, the stream %d", total, len(stream))
			}
			if got := testutil.ToFloat64(p.m.bytesIn); int(got) >= len(stream) || got == 0 {
				t.Errorf("bytes_in %v", got)
			}
			if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
				t.Errorf("lint: %v %v", problems, err)
			}
		})
	}
}

// TestSpoolJSON: JSON in, bin and JSON values, through the spool.
func TestSpoolJSON(t *testing.T) {
	const n = 500
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		in.Write(framing.AppendJSONLine(nil, testFlow(i, 1), nil))
	}
	for _, value := range []framing.Format{framing.FormatBin, framing.FormatJSON} {
		t.Run(value.String(), func(t *testing.T) {
			c := newCluster(t)
			cfg := spoolConfig(t.TempDir())
			cfg.ValueFormat = value
			cfg.Key = keyed(t, "src_dst")
			p, _ := newPublisher(t, c.ListenAddrs(), cfg)
			if err := p.Run(context.Background(), bytes.NewReader(in.Bytes())); err != nil {
				t.Fatal(err)
			}
			recs := consumeAll(t, c.ListenAddrs(), n)
			seen := map[uint64]bool{}
			for _, r := range recs {
				m := testFlow(0, 1)
				if value == framing.FormatBin {
					m = decodeValue(t, r.Value)
				} else if err := framing.ParseJSON(r.Value, m, nil); err != nil {
					t.Fatal(err)
				}
				i := m.TimeReceivedNs - 1_700_000_000_000_000_000
				if !m.EqualVT(testFlow(int(i), 1)) || !bytes.Equal(r.Key, cfg.Key.Append(nil, m)) {
					t.Fatalf("record %d changed on the way", i)
				}
				seen[i] = true
			}
			if len(seen) != n || len(recs) != n {
				t.Fatalf("%d records, %d distinct", len(recs), len(seen))
			}
		})
	}
}

// TestSpoolReadsThroughStall: while the broker does not answer, the
// spool takes everything the input has (the producer's buffer holds 50);
// then it all goes through, the backlog read back from the files.
func TestSpoolReadsThroughStall(t *testing.T) {
	const n, buffered = 20000, 50
	c := newCluster(t)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		<-release
		return nil, nil, false
	})
	cfg := spoolConfig(t.TempDir())
	cfg.MaxBufferedRecords = buffered
	cfg.Key = keyed(t, "sampler_address")
	p, _ := newPublisher(t, c.ListenAddrs(), cfg)
	f, r := newFeeder(t, n, 4)
	done := runAsync(p, r)
	go f.feed(n)
	waitFor(t, "every record read while the broker stalls", func() bool { return p.Stats().Read == n })
	if st := p.Stats(); st.Produced != 0 || st.Spooled != n {
		t.Fatalf("stats %+v", st)
	}
	close(release)
	f.w.Close()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Produced != n || st.Spooled != 0 || st.Drained == 0 {
		t.Fatalf("stats %+v", st)
	}
	checkOrder(t, consumeAll(t, c.ListenAddrs(), n), n, 4)
}

// TestSpoolLeftForNextRun: with no broker, Run ends after the flush
// timeout with everything in the spool and no error; the next Publisher on
// the same directory, with empty input, delivers all of it once.
func TestSpoolLeftForNextRun(t *testing.T) {
	const n = 5000
	dir := t.TempDir()
	cfg := spoolConfig(dir)
	cfg.FlushTimeout = 300 * time.Millisecond
	cfg.Key = keyed(t, "sampler_address")
	port := freePort(t)
	p, _ := newPublisher(t, []string{"127.0.0.1:" + strconv.Itoa(port)}, cfg)
	if err := p.Run(context.Background(), bytes.NewReader(binStream(t, n, 4))); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Read != n || st.Spooled != n || st.Failed != 0 || st.Produced != 0 {
		t.Fatalf("stats %+v", st)
	}

	c := newCluster(t)
	cfg.FlushTimeout = DefaultConfig().FlushTimeout
	p2, reg := newPublisher(t, c.ListenAddrs(), cfg)
	if got := gathered(t, reg, "flowpublish_spool_records"); got != n {
		t.Errorf("spool_records at start: %v", got)
	}
	if err := p2.Run(context.Background(), bytes.NewReader(nil)); err != nil {
		t.Fatal(err)
	}
	if st := p2.Stats(); st.Read != 0 || st.Produced != n || st.Spooled != 0 || st.Drained != n {
		t.Fatalf("stats %+v", st)
	}
	checkOrder(t, consumeAll(t, c.ListenAddrs(), n), n, 4)
}

// gathered returns the one metric named name from reg.
func gathered(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	c := newCluster(t)
	p, _ := newPublisher(t, c.ListenAddrs(), spoolConfig(dir))
	defer p.Close()
	_, err := New(spoolConfig(dir), nil, prometheus.NewRegistry(), command.Discard())
	if !errors.Is(err, spool.ErrLocked) {
		t.Fatalf("second publisher on the spool: %v", err)
	}
}

// TestSpoolFullPolicies: a stalled broker and a 4 MiB spool. Under
// drop-oldest and drop-newest reading never stops; what was dropped is
// counted, and everything else is delivered once the broker answers:
// read = produced + dropped. (block is TestBackpressure's behaviour; the
// spool's own tests cover it.)
func TestSpoolFullPolicies(t *testing.T) {
	const n = 100000
	for _, policy := range []spool.FullPolicy{spool.DropOldest, spool.DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			c := newCluster(t)
			release := make(chan struct{})
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				<-release
				return nil, nil, false
			})
			cfg := spoolConfig(t.TempDir())
			cfg.Spool.MaxBytes, cfg.Spool.Full = 4<<20, policy
			cfg.MaxBufferedRecords = 1000
			p, reg := newPublisher(t, c.ListenAddrs(), cfg)
			f, r := newFeeder(t, n, 4)
			done := runAsync(p, r)
			go f.feed(n)
			waitFor(t, "every record read", func() bool { return p.Stats().Read == n })
			close(release)
			f.w.Close()
			if err := wait(t, done); err != nil {
				t.Fatal(err)
			}
			st := p.Stats()
			if st.Dropped == 0 || st.Produced+st.Dropped != n || st.Spooled != 0 {
				t.Fatalf("stats %+v", st)
			}
			reason := map[spool.FullPolicy]string{spool.DropOldest: "drop_oldest", spool.DropNewest: "drop_newest"}[policy]
			if got := gatheredLabel(t, reg, "flowpublish_spool_dropped_records_total", reason); got != float64(st.Dropped) {
				t.Errorf("dropped{reason=%s} = %v, stats say %d", reason, got, st.Dropped)
			}
			recs := consumeAll(t, c.ListenAddrs(), int(st.Produced))
			if len(recs) != int(st.Produced) {
				t.Fatalf("%d records in Kafka, %d produced", len(recs), st.Produced)
			}
		})
	}
}

// gatheredLabel returns the value of name{reason=reason} from reg.
func gatheredLabel(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{reason=%q}", name, reason)
	return 0
}
