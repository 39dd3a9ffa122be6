package subscriber

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// subscriberAddr is the i-th subscriber's address: spread over
// 100.64.0.0/10 (4 M addresses) in a fixed random order.
func subscriberAddr(i int) netip.Addr {
	v := uint32(i)*2654435761%(1<<22) | 100<<24 | 64<<16
	return addrFromU32(v)
}

// startRecord is a realistic Start: user name, 16-hex-digit session id,
// MAC as Calling-Station-Id.
func startRecord(r *Record, i int, at int64) {
	r.Reset()
	r.Status = StatusStart
	r.NASIP = netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%16)})
	r.SessionID = fmt.Sprintf("%016X", uint64(i)*0x9E3779B97F4A7C15)
	r.User = fmt.Sprintf("sub%07d@isp.example", i)
	r.CallingStationID = fmt.Sprintf("02-00-%02X-%02X-%02X-%02X", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
	r.SetFramedIP(subscriberAddr(i))
	r.EventTime = at
}

// fillV4 opens n IPv4 sessions starting at t0.
func fillV4(tb testing.TB, tbl *Table, n int, t0 int64) {
	tb.Helper()
	var r Record
	for i := range n {
		startRecord(&r, i, t0+int64(i)*int64(time.Millisecond))
		if err := tbl.Apply(&r); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestMemoryPerSession checks the heap a table of IPv4 sessions needs
// per session against the budget, at 250 k sessions (the indexes are as
// full as at 1 M, see BenchmarkMemory for that scale).
func TestMemoryPerSession(t *testing.T) {
	n := 250_000
	if testing.Short() {
		n = 100_000
	}
	perSession := heapPerSession(t, n)
	t.Logf("%d sessions: %.0f bytes/session", n, perSession)
	if perSession > 250 {
		t.Errorf("%.0f bytes per session, budget 250", perSession)
	}
}

func heapPerSession(tb testing.TB, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tbl := New(Config{})
	fillV4(tb, tbl, n, day.UnixNano())
	runtime.GC()
	runtime.ReadMemStats(&after)
	if tbl.Len() != n {
		tb.Fatalf("%d sessions, want %d", tbl.Len(), n)
	}
	runtime.KeepAlive(tbl)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkLookup looks up addresses in a table of 1 M open sessions:
// "hit" draws subscribers uniformly (every lookup a cache miss), "zipf"
// with a Zipf law (a few heavy users, a long tail, as real traffic), "miss"
// public addresses held by no session.
func BenchmarkLookup(b *testing.B) {
	const n = 1_000_000
	tbl := New(Config{})
	t0 := day.UnixNano()
	fillV4(b, tbl, n, t0)
	now := t0 + int64(2*time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.1, 1, n-1)
	for _, tc := range []struct {
		name string
		addr func() netip.Addr
		hit  bool
	}{
		{"hit", func() netip.Addr { return subscriberAddr(rng.IntN(n)) }, true},
		{"zipf", func() netip.Addr { return subscriberAddr(int(zipf.Uint64())) }, true},
		{"miss", func() netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(rng.IntN(256)), byte(rng.IntN(256))}) }, false},
	} {
		addrs := make([]netip.Addr, 1<<20)
		for i := range addrs {
			addrs[i] = tc.addr()
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i, found := 0, 0
			for b.Loop() {
				if tbl.Lookup(addrs[i&(len(addrs)-1)], now) != nil {
					found++
				}
				i++
			}
			if (found == i) != tc.hit || (tc.hit && found != i) {
				b.Fatalf("%d of %d found", found, i)
			}
		})
	}
}

// BenchmarkApply measures applying records to a table of 1 M sessions:
// Interim-Updates of existing sessions and Start/Stop churn.
func BenchmarkApply(b *testing.B) {
	const n = 1_000_000
	tbl := New(Config{})
	t0 := day.UnixNano()
	fillV4(b, tbl, n, t0)
	recs := make([]Record, 1<<16)
	for i := range recs {
		startRecord(&recs[i], rand.IntN(n), 0)
		recs[i].Status = uint32([]int{StatusInterim, StatusInterim, StatusStop, StatusStart}[i%4])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := &recs[i&(len(recs)-1)]
		r.EventTime = t0 + int64(time.Hour) + int64(i)*int64(time.Millisecond)
		if err := tbl.Apply(r); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkLookupWhileApplying looks up addresses as fast as it can in a
// 1 M-session table, "idle" and while another goroutine applies 20 000
// accounting records per second to it (Interim-Updates, Stops, and Starts
// that take addresses over), as a large BNG fleet sends them. The
// updater keeps to its rate by catching up every 10 ms; updates/s is the
// rate it reached. Lookups take no lock: their cost must not move.
func BenchmarkLookupWhileApplying(b *testing.B) {
	const n = 1_000_000
	const rate = 20_000
	tbl := New(Config{})
	t0 := day.UnixNano()
	fillV4(b, tbl, n, t0)
	rng := rand.New(rand.NewPCG(5, 6))
	addrs := make([]netip.Addr, 1<<20)
	for i := range addrs {
		addrs[i] = subscriberAddr(rng.IntN(n))
	}
	now := t0 + int64(2*time.Hour)
	// Records prepared beforehand: the updater measures applying them.
	recs := make([]Record, 1<<16)
	for k := range recs {
		startRecord(&recs[k], rand.IntN(n), 0)
		switch k % 4 {
		case 0, 1:
			recs[k].Status = StatusInterim
		case 2:
			recs[k].Status = StatusStop
		default:
			recs[k].SessionID = fmt.Sprintf("new%013d", k) // a new session on the address
		}
	}
	for _, withUpdates := range []bool{false, true} {
		name := "idle"
		if withUpdates {
			name = "20k-updates"
		}
		b.Run(name, func(b *testing.B) {
			var applied atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if withUpdates {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(10 * time.Millisecond)
					defer tick.Stop()
					began := time.Now()
					for k := 0; ; {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						due := int(time.Since(began).Seconds() * rate)
						for ; k < due; k++ {
							r := &recs[k%len(recs)]
							r.EventTime = t0 + int64(time.Hour) + int64(k)*int64(time.Millisecond)
							if err := tbl.Apply(r); err != nil {
								b.Error(err)
								return
							}
							applied.Add(1)
						}
					}
				}()
			}
			b.ReportAllocs()
			start := time.Now()
			i, found := 0, 0
			for b.Loop() {
				if tbl.Lookup(addrs[i&(len(addrs)-1)], now) != nil {
					found++
				}
				i++
			}
			elapsed := time.Since(start)
			close(stop)
			wg.Wait()
			if withUpdates {
				b.ReportMetric(float64(applied.Load())/elapsed.Seconds(), "updates/s")
			}
			b.ReportMetric(float64(found)/float64(i), "hit-ratio")
		})
	}
}

// BenchmarkMemory reports the heap per session for 1 M IPv4 sessions and
// for 200 k dual-stack ones (an IPv4 address, a /64 and a delegated /56).
func BenchmarkMemory(b *testing.B) {
	b.Run("ipv4", func(b *testing.B) {
		for b.Loop() {
			b.ReportMetric(heapPerSession(b, 1_000_000), "bytes/session")
		}
	})
	b.Run("dual-stack", func(b *testing.B) {
		for b.Loop() {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			tbl := New(Config{})
			const n = 200_000
			var r Record
			for i := range n {
				startRecord(&r, i, day.UnixNano())
				r.AddPrefix(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)}), 64))
				r.AddPrefix(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x2a, 0x00, 0, byte(i >> 16), byte(i >> 8), byte(i)}), 56))
				if err := tbl.Apply(&r); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(tbl)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/session")
		}
	})
}

// BenchmarkState saves and loads the state of 1 M IPv4 sessions, as a
// restart does.
func BenchmarkState(b *testing.B) {
	tbl := New(Config{})
	fillV4(b, tbl, 1_000_000, day.UnixNano())
	path := b.TempDir() + "/state"
	b.Run("save", func(b *testing.B) {
		for b.Loop() {
			if err := tbl.SaveState(path, nil); err != nil {
				b.Fatal(err)
			}
		}
		if st, err := os.Stat(path); err == nil {
			b.ReportMetric(float64(st.Size())/1e6, "MB")
		}
	})
	b.Run("load", func(b *testing.B) {
		for b.Loop() {
			if _, err := New(Config{}).LoadState(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}
