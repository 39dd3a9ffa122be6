// Package feed runs flowenrich's session sources around one
// subscriber.Table: FreeRADIUS detail files, a RADIUS accounting listener
// and a Kafka topic, in any combination, with the state file.
//
// Start order, so that no flow goes unattributed because of which
// process started first: the state file is loaded; the listener is bound
// and answers at once; the detail files are read to their ends and the
// topic up to its high watermarks (for at most CatchUpTimeout); then
// Start returns and flows may pass, while the sources go on applying new
// accounting within a second. The state (sessions, NAT port blocks, the
// detail files' positions) is saved every SaveEvery and by Close.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/subscriber/detail"
	"github.com/flowpipe/flowpipe/pkg/subscriber/radius"
	"github.com/flowpipe/flowpipe/pkg/subscriber/topic"
)

// Defaults.
const (
	DefaultSaveEvery      = time.Minute
	DefaultCatchUpTimeout = time.Minute
)

// Config says which sources to run.
type Config struct {
	// DetailPatterns are FreeRADIUS detail files to follow (paths or globs).
	DetailPatterns []string
	// Listen is the RADIUS accounting listener's address (host:port);
	// Secret its shared secret; Allow, if set, the networks it answers.
	Listen string
	Secret []byte
	Allow  []netip.Prefix
	// KafkaOpts are the Kafka connection options; Topic the topic of JSON
	// accounting records (empty: no Kafka source).
	KafkaOpts []kgo.Opt
	Topic     string

	History   time.Duration // stopped sessions kept (subscriber.Config)
	StatePath string        // state file; empty: none
	SaveEvery time.Duration // 0: DefaultSaveEvery
	// CatchUpTimeout bounds the wait for the topic's backlog at start;
	// after it flows pass anyway (a warning says so) while reading goes on.
	CatchUpTimeout time.Duration

	Log *slog.Logger
}

// Enabled says whether any source is configured.
func (c Config) Enabled() bool { return len(c.DetailPatterns) > 0 || c.Listen != "" || c.Topic != "" }

// Validate checks the configuration without touching files or network.
func (c Config) Validate() error {
	var errs []error
	if c.Listen != "" && len(c.Secret) == 0 {
		errs = append(errs, errors.New("a RADIUS listener needs a secret"))
	}
	if c.Listen == "" && (len(c.Secret) > 0 || len(c.Allow) > 0) {
		errs = append(errs, errors.New("a RADIUS secret or allowed network without a listener"))
	}
	if c.StatePath != "" && !c.Enabled() {
		errs = append(errs, errors.New("a sessions state file without any session source"))
	}
	if c.History < 0 || c.SaveEvery < 0 || c.CatchUpTimeout < 0 {
		errs = append(errs, errors.New("negative duration"))
	}
	return errors.Join(errs...)
}

// Feeds are the running sources.
type Feeds struct {
	cfg      Config
	log      *slog.Logger
	table    *subscriber.Table
	counts   subscriber.Counts
	follower *detail.Follower
	listener *radius.Listener
	topic    *topic.Source
	saves    [2]prometheus.Counter // ok, failed

	cancel context.CancelFunc
	wg     sync.WaitGroup
	saveMu sync.Mutex
}

// Start loads the state and starts the sources, returning once they have
// caught up (see the package doc). ctx bounds the catching up only; Close
// stops the sources.
func Start(ctx context.Context, cfg Config) (*Feeds, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sessions: %w", err)
	}
	if cfg.SaveEvery == 0 {
		cfg.SaveEvery = DefaultSaveEvery
	}
	if cfg.CatchUpTimeout == 0 {
		cfg.CatchUpTimeout = DefaultCatchUpTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	f := &Feeds{cfg: cfg, log: cfg.Log, table: subscriber.New(subscriber.Config{History: cfg.History})}
	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	ok := false
	defer func() {
		if !ok {
			f.stop()
		}
	}()

	positions := f.loadState()
	if cfg.Listen != "" {
		l, err := radius.Listen(radius.ListenerConfig{Addr: cfg.Listen, Secret: cfg.Secret, Allow: cfg.Allow,
			Apply: f.table.Apply, Counts: &f.counts, Log: f.log})
		if err != nil {
			return nil, err
		}
		f.listener = l
		f.goRun(func() error { return l.Run(runCtx) })
		f.log.Info("RADIUS accounting listener started", "addr", l.Addr().String())
	}
	if cfg.Topic != "" {
		s, err := topic.New(topic.Config{Opts: cfg.KafkaOpts, Topic: cfg.Topic, Apply: f.table.Apply, Counts: &f.counts, Log: f.log})
		if err != nil {
			return nil, err
		}
		f.topic = s
		f.goRun(func() error { return s.Run(runCtx) })
	}
	if len(cfg.DetailPatterns) > 0 {
		fl, err := detail.NewFollower(detail.FollowerConfig{Patterns: cfg.DetailPatterns, Apply: f.table.Apply, Counts: &f.counts, Log: f.log})
		if err != nil {
			return nil, err
		}
		if p := positions["detail"]; p != nil {
			if err := fl.Restore(p); err != nil {
				f.log.Warn("detail positions in the state file unreadable: reading the detail files from their start", "err", err)
			}
		}
		start := time.Now()
		if err := fl.CatchUp(ctx); err != nil {
			f.log.Warn("detail files", "err", err)
		}
		f.follower = fl
		f.log.Info("detail files read to their end", "records", f.counts.Read[subscriber.SourceDetail].Load(),
			"seconds", time.Since(start).Seconds())
		f.goRun(func() error { return fl.Run(runCtx) })
	}
	if f.topic != nil {
		start := time.Now()
		select {
		case <-f.topic.Ready():
			f.log.Info("sessions topic read up to its end", "topic", cfg.Topic,
				"records", f.counts.Read[subscriber.SourceKafka].Load(), "seconds", time.Since(start).Seconds())
		case <-time.After(cfg.CatchUpTimeout):
			f.log.Warn("sessions topic not read up to its end in time: flows pass now, sessions still arriving will attribute later flows only",
				"topic", cfg.Topic, "timeout", cfg.CatchUpTimeout.String(), "records", f.counts.Read[subscriber.SourceKafka].Load())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if cfg.StatePath != "" {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			t := time.NewTicker(cfg.SaveEvery)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					_ = f.Save()
				}
			}
		}()
	}
	active, stopped := f.table.Counts()
	f.log.Info("sessions ready", "active", sum(active), "stopped", sum(stopped))
	ok = true
	return f, nil
}

func sum(v [subscriber.NumSources]int64) (n int64) {
	for _, x := range v {
		n += x
	}
	return n
}

func (f *Feeds) goRun(run func() error) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := run(); err != nil {
			f.log.Error("session source stopped", "err", err)
		}
	}()
}

// loadState loads the state file, if any. A damaged file is set aside
// (renamed to .bad) and the sources are read again from their start: what
// they hold rebuilds the sessions.
func (f *Feeds) loadState() map[string][]byte {
	if f.cfg.StatePath == "" {
		return nil
	}
	start := time.Now()
	positions, err := f.table.LoadState(f.cfg.StatePath)
	if err != nil {
		bad := f.cfg.StatePath + ".bad"
		rerr := os.Rename(f.cfg.StatePath, bad)
		f.log.Error("sessions state file not loaded: starting without it", "err", err, "moved_to", bad, "rename_err", rerr)
		return nil
	}
	active, stopped := f.table.Counts()
	f.log.Info("sessions state loaded", "path", f.cfg.StatePath, "active", sum(active), "stopped", sum(stopped),
		"seconds", time.Since(start).Seconds())
	return positions
}

// Table is the sessions table the sources feed.
func (f *Feeds) Table() *subscriber.Table { return f.table }

// Counts are the records read and rejected by source.
func (f *Feeds) Counts() *subscriber.Counts { return &f.counts }

// ListenAddr is the RADIUS listener's address, if one runs.
func (f *Feeds) ListenAddr() (netip.AddrPort, bool) {
	if f.listener == nil {
		return netip.AddrPort{}, false
	}
	return f.listener.Addr(), true
}

// Save writes the state file now (a no-op without one).
func (f *Feeds) Save() error {
	if f.cfg.StatePath == "" {
		return nil
	}
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	start := time.Now()
	// Positions first: a position never runs ahead of the sessions saved.
	pos := map[string][]byte{}
	if f.follower != nil {
		pos["detail"] = f.follower.Positions()
	}
	err := f.table.SaveState(f.cfg.StatePath, pos)
	if err != nil {
		f.count(1)
		f.log.Error("sessions state not saved", "path", f.cfg.StatePath, "err", err)
		return err
	}
	f.count(0)
	f.log.Debug("sessions state saved", "path", f.cfg.StatePath, "sessions", f.table.Len(), "seconds", time.Since(start).Seconds())
	return nil
}

func (f *Feeds) count(i int) {
	if f.saves[i] != nil {
		f.saves[i].Inc()
	}
}

// Close stops the sources and saves the state.
func (f *Feeds) Close() error {
	f.stop()
	return f.Save()
}

func (f *Feeds) stop() {
	f.cancel()
	f.wg.Wait()
	if f.topic != nil {
		f.topic.Close()
	}
}
