package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Throttle keeps log lines about repeated events (drops, decode errors,
// failed records) from flooding stderr: for each kind of event (its key),
// the first Burst events are logged, then at most one every Interval, and
// the events held back in between are counted so that the next line can
// say how many there were. Metrics count every event; the throttle only
// decides which ones are also told in words.
//
// A Throttle is safe for concurrent use. Allow takes a lock and does one
// map lookup, and allocates only the first time a key is seen, so it may
// sit on a path that a flood of bad packets takes.
type Throttle struct {
	interval time.Duration
	burst    int

	mu   sync.Mutex
	keys map[string]*throttled
	now  func() time.Time // tests
}

type throttled struct {
	passed int       // events let through so far
	next   time.Time // when the next one may pass, once burst is spent
	held   uint64    // events held back since the last one let through
}

// NewThrottle lets the first burst events of each key through, then one
// per interval. burst < 1 counts as 1.
func NewThrottle(interval time.Duration, burst int) *Throttle {
	return &Throttle{interval: interval, burst: max(burst, 1), keys: map[string]*throttled{}, now: time.Now}
}

// Allow reports whether an event of kind key may be logged now; when it
// may, held is the number of events of that kind that were not logged
// since the last one that was.
func (t *Throttle) Allow(key string) (held uint64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := t.keys[key]
	if k == nil {
		k = &throttled{}
		t.keys[key] = k
	}
	now := t.now()
	if k.passed >= t.burst && now.Before(k.next) {
		k.held++
		return 0, false
	}
	k.passed++
	k.next = now.Add(t.interval)
	held, k.held = k.held, 0
	return held, true
}

// Log logs msg with attrs at level through log when key is allowed, adding
// the count of lines held back since the last one as "suppressed". On a
// path that must not allocate per event, call Allow first and log only
// when it says so.
func (t *Throttle) Log(log *slog.Logger, level slog.Level, key, msg string, attrs ...slog.Attr) {
	held, ok := t.Allow(key)
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", held))
	}
	log.LogAttrs(context.Background(), level, msg, attrs...)
}
