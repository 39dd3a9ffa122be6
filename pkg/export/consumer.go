package export

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// StartOffset says where a partition without a committed offset starts.
// A committed offset, when the group has one, always wins.
type StartOffset string

const (
	// StartLatest skips the backlog (flow-exporter's behaviour).
	StartLatest StartOffset = "latest"
	// StartEarliest reads the partition from its first record.
	StartEarliest StartOffset = "earliest"
	// StartCommitted consumes only partitions the group has committed for.
	StartCommitted StartOffset = "committed"
)

// ParseStartOffset checks a --start-offset value.
func ParseStartOffset(s string) (StartOffset, error) {
	switch o := StartOffset(s); o {
	case StartLatest, StartEarliest, StartCommitted:
		return o, nil
	}
	return "", fmt.Errorf("export: start offset %q: want committed, earliest or latest", s)
}

func (o StartOffset) kgo() kgo.Offset {
	switch o {
	case StartEarliest:
		return kgo.NewOffset().AtStart()
	case StartCommitted:
		return kgo.NewOffset().AtCommitted()
	}
	return kgo.NewOffset().AtEnd()
}

// commitTimeout bounds a commit, also the last one after cancellation.
const commitTimeout = 10 * time.Second

// ConsumerConfig configures the Kafka side.
type ConsumerConfig struct {
	Topic string
	Group string
	Start StartOffset
	// Partitions, when set, are read directly instead of joining the
	// group (flow-exporter's --partitions): no rebalancing, each listed
	// partition resumes at the offset committed under Group, else at
	// Start (which must then be latest or earliest), and counted offsets
	// are committed under Group as in group mode.
	Partitions []int32
	// Client holds the connection options: seed brokers, TLS, SASL, client id.
	Client []kgo.Opt
	// MaxPollRecords bounds a batch (and so the time a rebalance waits).
	MaxPollRecords int
	// OnInvalid is told about each record that is no flow and was skipped.
	OnInvalid func(r *kgo.Record, err error)
	// OnError is told about fetch and commit errors consuming survives.
	OnError func(err error)
}

// Metrics are the consumer's own metrics.
type Metrics struct {
	consumed  [numFormats]prometheus.Counter
	invalid   prometheus.Counter
	unmatched prometheus.Counter
	commits   prometheus.Counter
	failed    prometheus.Counter
	lag       *prometheus.GaugeVec
}

// NewMetrics registers the consumer's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	consumed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowexport_records_consumed_total",
		Help: "Kafka records parsed as flows, by the format they were in.",
	}, []string{"format"})
	m := &Metrics{
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowexport_records_invalid_total",
			Help: "Kafka records that were no flow in any known format, skipped.",
		}),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowexport_records_unmatched_total",
			Help: "Flows counted in no family: neither --asn's, nor --all-pairs', nor a user's (--group-by user).",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowexport_offset_commits_total",
			Help: "Offset commits made after counting a batch.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flowexport_consumer_errors_total",
			Help: "Fetch and offset commit errors (the consumer retries).",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flowexport_consumer_lag",
			Help: "Records behind the high watermark, per assigned partition, at the last fetch.",
		}, []string{"partition"}),
	}
	for f := range numFormats {
		m.consumed[f] = consumed.WithLabelValues(f.String())
	}
	reg.MustRegister(consumed, m.invalid, m.unmatched, m.commits, m.failed, m.lag)
	return m
}

// Consumer reads a topic as a member of a consumer group and counts every
// record before committing its offset, so a restart or a rebalance
// resumes after the last counted record.
type Consumer struct {
	cfg     ConsumerConfig
	cl      *kgo.Client
	counter *Counter
	m       *Metrics

	// Direct mode (cfg.Partitions): cl only administers (offsets) until
	// Run builds the consuming client; next holds the offsets counted
	// but not yet committed.
	base []kgo.Opt
	next map[int32]int64
}

// NewConsumer builds the Kafka client; it connects lazily, in Run.
func NewConsumer(cfg ConsumerConfig, counter *Counter, m *Metrics) (*Consumer, error) {
	if cfg.Topic == "" {
		return nil, errors.New("export: no topic")
	}
	if cfg.Group == "" {
		return nil, errors.New("export: no consumer group")
	}
	if cfg.Start == "" {
		cfg.Start = StartLatest
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 10000
	}
	if cfg.OnInvalid == nil {
		cfg.OnInvalid = func(*kgo.Record, error) {}
	}
	if cfg.OnError == nil {
		cfg.OnError = func(error) {}
	}
	c := &Consumer{cfg: cfg, counter: counter, m: m}
	if len(cfg.Partitions) > 0 {
		return c, c.newDirect()
	}
	start := cfg.Start.kgo()
	opts := append(append([]kgo.Opt{}, cfg.Client...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.DisableAutoCommit(),
		// No rebalance between a poll and its commit: what was counted is
		// committed by the member that counted it.
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeStartOffset(start),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	)
	if cfg.Start != StartCommitted {
		opts = append(opts, kgo.ConsumeResetOffset(start))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("export: kafka client: %w", err)
	}
	c.cl = cl
	return c, nil
}

// newDirect checks the direct-mode config and builds the client used to
// read and commit the group's offsets.
func (c *Consumer) newDirect() error {
	if c.cfg.Start == StartCommitted {
		return errors.New("export: start offset committed needs the consumer group (no explicit partitions)")
	}
	seen := make(map[int32]bool, len(c.cfg.Partitions))
	for _, p := range c.cfg.Partitions {
		if p < 0 || seen[p] {
			return fmt.Errorf("export: partition %d: negative or listed twice", p)
		}
		seen[p] = true
	}
	c.base = append([]kgo.Opt{}, c.cfg.Client...)
	cl, err := kgo.NewClient(c.base...)
	if err != nil {
		return fmt.Errorf("export: kafka client: %w", err)
	}
	c.cl = cl
	c.next = make(map[int32]int64)
	return nil
}

// startDirect resolves where each listed partition starts (the group's
// commit, else Start) and switches to a client consuming exactly those.
func (c *Consumer) startDirect(ctx context.Context) error {
	adm := kadm.NewClient(c.cl)
	var committed kadm.OffsetResponses
	for {
		var err error
		committed, err = adm.FetchOffsets(ctx, c.cfg.Group)
		if err == nil || errors.Is(err, kerr.GroupIDNotFound) {
			break // a group that never committed has no offsets
		}
		c.m.failed.Inc()
		c.cfg.OnError(fmt.Errorf("export: fetch committed offsets of group %s: %w", c.cfg.Group, err))
		select {
		case <-ctx.Done():
			return nil // stopped before consuming anything
		case <-time.After(time.Second):
		}
	}
	offsets := make(map[int32]kgo.Offset, len(c.cfg.Partitions))
	for _, p := range c.cfg.Partitions {
		offsets[p] = c.cfg.Start.kgo()
		if o, ok := committed.Lookup(c.cfg.Topic, p); ok && o.Err == nil && o.At >= 0 {
			offsets[p] = kgo.NewOffset().At(o.At)
		}
	}
	c.cl.Close()
	start := c.cfg.Start.kgo()
	cl, err := kgo.NewClient(append(c.base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.Topic: offsets}),
		kgo.ConsumeResetOffset(start),
	)...)
	if err != nil {
		return fmt.Errorf("export: kafka client: %w", err)
	}
	c.cl = cl
	return nil
}

// revoked commits what was counted before the partitions go to another
// member. Polls commit as they go, so this is normally a no-op.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := cl.CommitUncommittedOffsets(cctx); err != nil {
		c.m.failed.Inc()
		c.cfg.OnError(fmt.Errorf("export: commit on revoke: %w", err))
	}
	c.lost(ctx, cl, revoked)
}

func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	for _, p := range lost[c.cfg.Topic] {
		c.m.lag.DeleteLabelValues(strconv.Itoa(int(p)))
	}
}

// Run consumes until ctx is cancelled, then commits what was counted,
// leaves the group and returns nil. Records already fetched when ctx is
// cancelled are counted and committed, not dropped.
func (c *Consumer) Run(ctx context.Context) error {
	defer func() { c.cl.Close() }() // direct mode replaces c.cl
	if c.next != nil {
		if err := c.startDirect(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	for {
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxPollRecords)
		if fetches.IsClientClosed() {
			return errors.New("export: kafka client closed")
		}
		n := c.count(ctx, fetches)
		if n > 0 {
			_ = c.commit(ctx) // reported; the next commit covers it
		}
		c.cl.AllowRebalance()
		if ctx.Err() != nil {
			break
		}
	}
	return c.commit(ctx)
}

func (c *Consumer) commit(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if c.next != nil {
		return c.commitDirect(cctx)
	}
	if err := c.cl.CommitUncommittedOffsets(cctx); err != nil {
		c.m.failed.Inc()
		err = fmt.Errorf("export: commit: %w", err)
		c.cfg.OnError(err)
		return err
	}
	c.m.commits.Inc()
	return nil
}

// commitDirect commits the counted offsets under the group without
// joining it, as a standalone consumer does.
func (c *Consumer) commitDirect(ctx context.Context) error {
	if len(c.next) == 0 {
		return nil
	}
	offs := make(kadm.Offsets)
	for p, at := range c.next {
		offs.AddOffset(c.cfg.Topic, p, at, -1)
	}
	resp, err := kadm.NewClient(c.cl).CommitOffsets(ctx, c.cfg.Group, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		c.m.failed.Inc()
		err = fmt.Errorf("export: commit: %w", err)
		c.cfg.OnError(err)
		return err
	}
	clear(c.next)
	c.m.commits.Inc()
	return nil
}

// count counts every fetched record under one table lock and returns how
// many records there were.
func (c *Consumer) count(ctx context.Context, fetches kgo.Fetches) int {
	fetches.EachError(func(topic string, p int32, err error) {
		if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return
		}
		c.m.failed.Inc()
		c.cfg.OnError(fmt.Errorf("export: fetch %s/%d: %w", topic, p, err))
	})
	var consumed [numFormats]uint64
	var invalid, unmatched uint64
	n := 0
	c.counter.Begin(time.Now())
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			f, counted, err := c.counter.Count(r.Value)
			switch {
			case err != nil:
				invalid++
				c.cfg.OnInvalid(r, err)
			case !counted:
				consumed[f]++
				unmatched++
			default:
				consumed[f]++
			}
		}
		n += len(p.Records)
		if len(p.Records) > 0 {
			last := p.Records[len(p.Records)-1].Offset
			if c.next != nil {
				c.next[p.Partition] = last + 1
			}
			c.m.lag.WithLabelValues(strconv.Itoa(int(p.Partition))).Set(float64(max(0, p.HighWatermark-last-1)))
		}
	})
	c.counter.End()
	for f, v := range consumed {
		if v > 0 {
			c.m.consumed[f].Add(float64(v))
		}
	}
	if invalid > 0 {
		c.m.invalid.Add(float64(invalid))
	}
	if unmatched > 0 {
		c.m.unmatched.Add(float64(unmatched))
	}
	return n
}
