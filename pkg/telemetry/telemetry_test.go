package telemetry

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestThrottle: the first burst events of a key pass, then one per
// interval, each telling how many were held back since the last one; keys
// are independent.
func TestThrottle(t *testing.T) {
	now := time.Unix(0, 0)
	th := NewThrottle(10*time.Second, 2)
	th.now = func() time.Time { return now }
	type step struct {
		advance time.Duration
		key     string
		ok      bool
		held    uint64
	}
	for i, s := range []step{
		{0, "a", true, 0},
		{time.Second, "a", true, 0}, // burst of 2
		{time.Second, "a", false, 0},
		{time.Second, "a", false, 0},
		{0, "b", true, 0}, // another key
		{7 * time.Second, "a", false, 0},
		{time.Second, "a", true, 3}, // 10 s after the last one passed
		{0, "a", false, 0},
		{10 * time.Second, "a", true, 1},
	} {
		now = now.Add(s.advance)
		held, ok := th.Allow(s.key)
		if ok != s.ok || held != s.held {
			t.Errorf("step %d: Allow(%q) = %d, %v; want %d, %v", i, s.key, held, ok, s.held, s.ok)
		}
	}
}

func TestThrottleLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	th := NewThrottle(time.Hour, 1)
	for range 5 {
		th.Log(log, slog.LevelWarn, "drop", "dropped", slog.String("reason", "queue_full"))
	}
	now := th.now
	th.now = func() time.Time { return now().Add(2 * time.Hour) }
	th.Log(log, slog.LevelWarn, "drop", "dropped", slog.String("reason", "queue_full"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[1], "suppressed=4") {
		t.Fatalf("log:\n%s", buf.String())
	}
}

// TestThrottleConcurrent: safe for concurrent use (run with -race); every
// event is either logged or counted as held back.
func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(time.Millisecond, 1)
	var mu sync.Mutex
	var passed, held uint64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10000 {
				h, ok := th.Allow("k")
				mu.Lock()
				if ok {
					passed++
					held += h
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if tail, _ := th.Allow("k"); passed+held+tail > 40001 || passed == 0 {
		t.Fatalf("passed %d, held %d", passed, held)
	}
}

func TestThrottleAllowsNoAllocs(t *testing.T) {
	th := NewThrottle(time.Hour, 1)
	th.Allow("queue_full")
	if n := testing.AllocsPerRun(1000, func() { th.Allow("queue_full") }); n != 0 {
		t.Fatalf("%v allocations per Allow", n)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServer: /metrics with the registry's series, goflow2's /__health as
// well as /healthz, pprof only when configured, a taken port an error.
func TestServer(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "flowtest_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	for _, pprof := range []bool{false, true} {
		s, err := Serve("127.0.0.1:0", reg, ServerConfig{Pprof: pprof})
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + s.Addr()
		if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "flowtest_things_total 3") || !strings.Contains(body, "go_goroutines") {
			t.Errorf("/metrics: %d\n%s", code, body)
		}
		for _, path := range []string{"/healthz", "/__health"} {
			if code, body := get(t, base+path); code != 200 || body != "ok\n" {
				t.Errorf("%s: %d %q", path, code, body)
			}
		}
		want := map[bool]int{false: 404, true: 200}[pprof]
		if code, _ := get(t, base+"/debug/pprof/cmdline"); code != want {
			t.Errorf("pprof %v: /debug/pprof/cmdline %d, want %d", pprof, code, want)
		}
		if _, err := Serve(s.Addr(), reg, ServerConfig{}); err == nil {
			t.Error("a taken port must fail")
		}
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
}
