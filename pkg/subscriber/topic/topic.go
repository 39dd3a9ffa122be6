// Package topic reads accounting records from a Kafka topic: one JSON
// object per record, keyed by RADIUS attribute name, values as FreeRADIUS
// prints them (its json_encode "object_simple" output, or "object" with
// type and value, as a shipper puts it on the topic):
//
//	{"Acct-Status-Type":"Start","User-Name":"alice","Acct-Session-Id":"s1",
//	 "Framed-IP-Address":"100.64.0.1","NAS-IP-Address":"192.0.2.1",
//	 "Event-Timestamp":"Jan  1 2026 08:00:00 UTC"}
//
// A Source reads the topic from the earliest offset the brokers still hold,
// every time it starts (no consumer group, nothing committed): the
// sessions open when flowenrich starts are learnt again from the records
// that opened them. Ready is closed once every partition has been read up
// to its high watermark as it was at the start; reading goes on after.
package topic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// Config configures a Source.
type Config struct {
	// Opts are the client's connection options (kafkaopt.Config.Opts,
	// logger, metrics); the Source adds what consuming the topic needs.
	Opts  []kgo.Opt
	Topic string
	// Apply applies a record (Table.Apply); an error rejects it.
	Apply  func(*subscriber.Record) error
	Counts *subscriber.Counts // may be nil
	Log    *slog.Logger       // may be nil
}

// Source consumes the topic.
type Source struct {
	cfg   Config
	cl    *kgo.Client
	ready chan struct{}
	once  sync.Once
	warn  rate.Sometimes
}

// New builds the client; nothing is fetched before Run.
func New(cfg Config) (*Source, error) {
	if cfg.Topic == "" {
		return nil, errors.New("topic: no topic")
	}
	if cfg.Apply == nil {
		return nil, errors.New("topic: no Apply function")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Counts == nil {
		cfg.Counts = &subscriber.Counts{}
	}
	opts := append(append([]kgo.Opt(nil), cfg.Opts...),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	return &Source{cfg: cfg, cl: cl, ready: make(chan struct{}), warn: rate.Sometimes{First: 3, Interval: 30 * time.Second}}, nil
}

// Ready is closed once the records that were on the topic when Run began
// have all been applied.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Close closes the client; call it after Run returned.
func (s *Source) Close() { s.cl.Close() }

// Run consumes until ctx is done.
func (s *Source) Run(ctx context.Context) error {
	targets, err := s.highWatermarks(ctx)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		s.markReady()
	}
	var rec subscriber.Record
	for {
		fetches := s.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			s.warn.Do(func() { s.cfg.Log.Warn("kafka fetch", "topic", topic, "partition", p, "err", err) })
		})
		fetches.EachRecord(func(r *kgo.Record) {
			s.apply(r, &rec)
			if t, ok := targets[r.Partition]; ok && r.Offset+1 >= t {
				delete(targets, r.Partition)
				if len(targets) == 0 {
					s.markReady()
				}
			}
		})
	}
}

func (s *Source) markReady() { s.once.Do(func() { close(s.ready) }) }

// highWatermarks returns, for each partition that holds records, the
// offset after its last record now; it retries until the brokers answer.
// A topic that does not exist yet has nothing to catch up on.
func (s *Source) highWatermarks(ctx context.Context) (map[int32]int64, error) {
	adm := kadm.NewClient(s.cl)
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		ends, err := adm.ListEndOffsets(ctx, s.cfg.Topic)
		if err == nil {
			var starts kadm.ListedOffsets
			if starts, err = adm.ListStartOffsets(ctx, s.cfg.Topic); err == nil {
				targets, perr := s.targets(ends, starts)
				if perr == nil {
					return targets, nil
				}
				err = perr
			}
		}
		s.warn.Do(func() {
			s.cfg.Log.Warn("kafka: cannot list the topic's offsets yet, retrying", "topic", s.cfg.Topic, "err", err)
		})
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (s *Source) targets(ends, starts kadm.ListedOffsets) (map[int32]int64, error) {
	targets := map[int32]int64{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Partition < 0 { // the topic does not exist
			s.cfg.Log.Warn("kafka: sessions topic does not exist (yet)", "topic", s.cfg.Topic)
			return
		}
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("partition %d: %w", o.Partition, o.Err))
			return
		}
		start, ok := starts.Lookup(o.Topic, o.Partition)
		if ok && start.Err == nil && start.Offset >= o.Offset {
			return // empty
		}
		targets[o.Partition] = o.Offset
	})
	return targets, errors.Join(errs...)
}

func (s *Source) apply(kr *kgo.Record, rec *subscriber.Record) {
	c := s.cfg.Counts
	c.Read[subscriber.SourceKafka].Add(1)
	err := Parse(kr.Value, rec, kr.Timestamp)
	if err == nil {
		err = s.cfg.Apply(rec)
	}
	if err != nil {
		reason := c.Reject(subscriber.SourceKafka, err)
		s.warn.Do(func() {
			s.cfg.Log.Warn("kafka accounting record rejected", "topic", kr.Topic, "partition", kr.Partition,
				"offset", kr.Offset, "reason", reason.String(), "err", err)
		})
	}
}

// Parse reads one JSON accounting record into r (which it resets first),
// with source subscriber.SourceKafka and, as the record's own time, its
// "Timestamp" attribute if it has one (as detail files do), else
// produced, the Kafka record's timestamp. A value may be a string, a
// number, an array of them (an attribute with several values) or an
// object with a "value" member (json_encode's "object" mode). An
// attribute name with a "prefix:" (json_encode's attribute prefix) is
// read without it.
func Parse(b []byte, r *subscriber.Record, produced time.Time) error {
	r.Reset()
	r.Source = subscriber.SourceKafka
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		if err == nil {
			err = errors.New("not an object")
		}
		return &subscriber.RejectError{Reason: subscriber.ReasonBadJSON, Err: err}
	}
	if dec.More() {
		return &subscriber.RejectError{Reason: subscriber.ReasonBadJSON, Err: errors.New("data after the object")}
	}
	for name, raw := range obj {
		if i := strings.LastIndexByte(name, ':'); i >= 0 {
			name = name[i+1:]
		}
		values, err := jsonValues(raw, 0)
		if err != nil {
			return &subscriber.RejectError{Reason: subscriber.ReasonMalformed, Err: fmt.Errorf("%s: %w", name, err)}
		}
		for _, v := range values {
			if err := r.SetAttr(name, v); err != nil {
				return &subscriber.RejectError{Reason: subscriber.ReasonMalformed, Err: err}
			}
		}
	}
	if r.RecordTime == 0 && !produced.IsZero() {
		r.RecordTime = produced.UnixNano()
	}
	return nil
}

// jsonValues returns a JSON value as the strings FreeRADIUS would print.
func jsonValues(raw json.RawMessage, depth int) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []string{s}, nil
	case '[':
		if depth > 0 {
			return nil, errors.New("nested array")
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		var out []string
		for _, it := range items {
			v, err := jsonValues(it, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v...)
		}
		return out, nil
	case '{':
		if depth > 0 {
			return nil, errors.New("nested object")
		}
		var o struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, err
		}
		if o.Value == nil {
			return nil, errors.New(`object without "value"`)
		}
		return jsonValues(o.Value, depth)
	case 'n': // null
		return nil, nil
	case 't', 'f':
		return []string{string(raw)}, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	return []string{n.String()}, nil
}
