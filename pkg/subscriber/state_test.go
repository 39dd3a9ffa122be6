package subscriber

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stateScript leaves open and stopped sessions, IPv6 prefixes, a reused
// id, several NASes and NAT blocks in a table.
const stateScript = `
	Start id=s1 user=alice ip=100.64.0.1 csid=00-11-22-33-44-55 at=08:00:00
	Stop id=s1 user=alice ip=100.64.0.1 at=09:00:00
	Start id=s2 user=bob ip=100.64.0.1 pfx=2001:db8:1::/64 dpfx=2001:db8:100::/56 at=09:05:00
	Start nasid=bng-2 id=s1 user=carol ip=100.64.1.1 at=08:30:00
	Start nas6=2001:db8::a id=x user=dave ip6=2001:db8:200::1 at=08:00:00
	Start id=r1 user=erin ip=100.64.0.7 at=08:00:00
	Accounting-On nasid=bng-2 at=08:45:00
	Start nasid=bng-2 id=s1 user=frank ip=100.64.1.2 at=08:46:00
	nat 16 100.64.0.1 198.51.100.1 1024-1535 09:06:00
	nat 16 100.64.1.2 198.51.100.1 1536-2047 09:06:00
	nat 17 100.64.1.2 198.51.100.1 1536-2047 09:07:00
`

// probes are lookups whose answers must survive a save and a load.
var probes = []struct{ addr, at string }{
	{"100.64.0.1", "08:30:00"}, {"100.64.0.1", "09:02:00"}, {"100.64.0.1", "09:30:00"},
	{"100.64.1.1", "08:40:00"}, {"100.64.1.1", "08:50:00"}, {"100.64.1.2", "09:00:00"},
	{"2001:db8:1::5", "09:30:00"}, {"2001:db8:100:ff::1", "09:30:00"}, {"2001:db8:200::1", "09:30:00"},
	{"100.64.0.7", "10:00:00"},
}

func probeAll(t *testing.T, tbl *Table) []string {
	var out []string
	for _, p := range probes {
		s := tbl.Lookup(netip.MustParseAddr(p.addr), at(t, p.at))
		out = append(out, describe(s, ViaSession, true))
	}
	for _, port := range []uint16{1100, 1600} {
		for _, tm := range []string{"09:06:30", "09:08:00"} {
			s, v := tbl.Attribute(netip.MustParseAddr("198.51.100.1"), port, 17, at(t, tm))
			out = append(out, describe(s, v, true))
		}
	}
	return out
}

func TestStateRoundTrip(t *testing.T) {
	tbl := New(Config{})
	runScript(t, tbl, stateScript)
	path := filepath.Join(t.TempDir(), "sessions.state")
	pos := map[string][]byte{"detail": []byte("some position"), "empty": nil}
	if err := tbl.SaveState(path, pos); err != nil {
		t.Fatal(err)
	}
	loaded := New(Config{})
	gotPos, err := loaded.LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotPos["detail"]) != "some position" || len(gotPos) != 2 {
		t.Errorf("positions: got %q", gotPos)
	}
	want, got := probeAll(t, tbl), probeAll(t, loaded)
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("probe %d: before save %q, after load %q", i, want[i], got[i])
		}
	}
	if want[0] != "alice#s1#00-11-22-33-44-55" || want[len(want)-1] != "-" {
		t.Errorf("script went wrong: %q", want)
	}
	a1, s1 := tbl.Counts()
	a2, s2 := loaded.Counts()
	if a1 != a2 || s1 != s2 || tbl.Clock() != loaded.Clock() || tbl.NATStats().Open != loaded.NATStats().Open {
		t.Errorf("counts %v/%v clock %d nat %+v, loaded %v/%v clock %d nat %+v",
			a1, s1, tbl.Clock(), tbl.NATStats(), a2, s2, loaded.Clock(), loaded.NATStats())
	}
	checkInvariants(t, loaded)
	// The loaded table goes on as the original would.
	for _, tb := range []*Table{tbl, loaded} {
		runScript(t, tb, `
			Stop id=s2 user=bob ip=100.64.0.1 at=10:00:00
			Start nasid=bng-2 id=s1 user=frank ip=100.64.1.2 at=08:46:00
			? 100.64.0.1 09:59:59 -> bob
			? 100.64.0.1 10:00:00 -> -
			? 100.64.1.2 10:00:00 -> frank`)
	}
}

func TestStateMissingAndDamaged(t *testing.T) {
	dir := t.TempDir()
	tbl := New(Config{})
	if pos, err := tbl.LoadState(filepath.Join(dir, "none")); err != nil || pos != nil || tbl.Len() != 0 {
		t.Fatalf("missing file: %v %v", pos, err)
	}
	src := New(Config{})
	runScript(t, src, stateScript)
	path := filepath.Join(dir, "state")
	if err := src.SaveState(path, nil); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated":  good[:len(good)-3],
		"no end":     good[:len(good)/2],
		"bit flip":   flip(good, len(good)/2),
		"empty":      nil,
		"other file": []byte("hello\n"),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tbl := New(Config{})
			_, err := tbl.LoadState(path)
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("got %v, want ErrBadState", err)
			}
			if tbl.Len() != 0 || tbl.Lookup(netip.MustParseAddr("100.64.1.2"), at(t, "09:00:00")) != nil {
				t.Fatalf("a damaged file left %d sessions", tbl.Len())
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x10
	return c
}

// TestStateBigRoundTrip saves and loads many sessions quickly enough for
// a restart.
func TestStateBigRoundTrip(t *testing.T) {
	tbl := New(Config{})
	const n = 100_000
	fillV4(t, tbl, n, day.UnixNano())
	path := filepath.Join(t.TempDir(), "state")
	start := time.Now()
	if err := tbl.SaveState(path, nil); err != nil {
		t.Fatal(err)
	}
	saved := time.Since(start)
	loaded := New(Config{})
	start = time.Now()
	if _, err := loaded.LoadState(path); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sessions: saved in %v, loaded in %v", n, saved, time.Since(start))
	if loaded.Len() != n {
		t.Fatalf("loaded %d sessions, want %d", loaded.Len(), n)
	}
}
