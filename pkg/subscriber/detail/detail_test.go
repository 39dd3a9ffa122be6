package detail

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

func TestParseFreeRADIUSDetail(t *testing.T) {
	// Written by FreeRADIUS 3.2.1's detail module from radclient packets.
	b, err := os.ReadFile(filepath.Join("testdata", "freeradius-3.2.1.detail"))
	if err != nil {
		t.Fatal(err)
	}
	var got []subscriber.Record
	for len(b) > 0 {
		block, adv := Next(b, true)
		if adv == 0 {
			t.Fatalf("stuck at %q", b)
		}
		b = b[adv:]
		if block == nil {
			continue
		}
		var r subscriber.Record
		if err := Parse(block, &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 2 {
		t.Fatalf("%d records, want 2", len(got))
	}
	start, stop := got[0], got[1]
	want := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC).UnixNano()
	if start.Status != subscriber.StatusStart || start.User != "alice" || start.SessionID != "s1" ||
		start.CallingStationID != "00-11-22-33-44-55" || start.FramedIP != netip.MustParseAddr("100.64.0.1") ||
		start.NASIP != netip.MustParseAddr("192.0.2.1") || start.EventTime != want ||
		start.RecordTime != 1796222246*int64(time.Second) || start.NumPrefixes != 2 ||
		start.Prefixes[0] != netip.MustParsePrefix("2001:db8:1::/64") || start.Prefixes[1] != netip.MustParsePrefix("2001:db8:100::/56") ||
		start.Source != subscriber.SourceDetail {
		t.Errorf("start: %+v", start)
	}
	if stop.Status != subscriber.StatusStop || !stop.HasSessionTime || stop.SessionTime != 3600 || stop.Time() != want+int64(time.Hour) {
		t.Errorf("stop: %+v", stop)
	}
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		in    string
		eof   bool
		block string
		adv   int
		isNil bool
	}{
		{"", false, "", 0, true},
		{"Date\n\tA = 1\n", false, "", 0, true},                 // no blank line yet
		{"Date\n\tA = 1\n", true, "Date\n\tA = 1\n", 12, false}, // at EOF
		{"Date\n\tA = 1", true, "", 0, true},                    // partial line
		{"Date\n\tA = 1\n\nDate\n", false, "Date\n\tA = 1\n", 13, false},
		{"\n\n\nDate\n\tA = 1\n\n", false, "Date\n\tA = 1\n", 16, false}, // blank lines first
		{"\n\n", false, "", 2, true},
		{"Date\n\tA = 1\n \t\n", false, "Date\n\tA = 1\n", 15, false},
	} {
		block, adv := Next([]byte(tc.in), tc.eof)
		if adv != tc.adv || (block == nil) != tc.isNil || (!tc.isNil && string(block) != tc.block) {
			t.Errorf("Next(%q, %v) = %q, %d; want %q, %d", tc.in, tc.eof, block, adv, tc.block, tc.adv)
		}
	}
}

func TestParseValues(t *testing.T) {
	for _, tc := range []struct {
		line, user string
		err        string
	}{
		{`User-Name = "plain"`, "plain", ""},
		{`User-Name = "DOMAIN\\user"`, `DOMAIN\user`, ""},
		{`User-Name = "say \"hi\""`, `say "hi"`, ""},
		{`User-Name = "tab\there\001"`, "tab\there\x01", ""},
		{`User-Name = "Müller"`, "Müller", ""},
		{`User-Name = bare`, "bare", ""},
		{`User-Name = "open`, "", "unterminated"},
		{`User-Name = "bad \q"`, "", "bad escape"},
		{`User-Name = "bad \400"`, "", "bad escape"},
		{`User-Name = "a"b"`, "", "unescaped quote"},
		{`User-Name = "` + strings.Repeat("x", 254) + `"`, "", "longer than"},
		{`Framed-IP-Address = 2001:db8::1`, "", "not an IPv4"},
		{`Event-Timestamp = "Feb 30 2026 08:00:00 UTC"`, "", "Event-Timestamp"},
		{`Event-Timestamp = "Jan  1 2026 08:00:00 XYZ"`, "", "time zone"},
		{`no equals sign`, "", "want Name = value"},
	} {
		var r subscriber.Record
		err := Parse([]byte("Date\n\tAcct-Status-Type = Start\n\t"+tc.line+"\n"), &r)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.line, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.line, err, tc.err)
		case tc.err == "" && r.User != tc.user:
			t.Errorf("%s: user %q, want %q", tc.line, r.User, tc.user)
		}
	}
	var r subscriber.Record
	if err := Parse([]byte("Wed Dec  2 14:37:26 2026\n"), &r); err != ErrNoAttributes {
		t.Errorf("date line alone: %v", err)
	}
}

// FuzzParse checks: Next never panics, never returns a block or an
// advance beyond its input, and always advances on a complete block; Parse
// never panics, and a record it accepts has strings a RADIUS attribute can
// hold.
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "freeradius-3.2.1.detail"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("Date\n\tUser-Name = \"a\\\"b\\001\\\\\"\n\tFramed-IPv6-Prefix = 2001:db8::/64\n\n"))
	f.Add([]byte("\n\n\tAcct-Session-Time = 99999999999\n\tEvent-Timestamp = 12\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rest := in
		for range len(in) + 1 {
			block, adv := Next(rest, true)
			if adv < 0 || adv > len(rest) || len(block) > adv {
				t.Fatalf("Next: block %d bytes, advance %d of %d", len(block), adv, len(rest))
			}
			if adv == 0 {
				break
			}
			rest = rest[adv:]
			if block == nil {
				continue
			}
			var r subscriber.Record
			if Parse(block, &r) == nil {
				if len(r.User) > subscriber.MaxStringLen || len(r.SessionID) > subscriber.MaxStringLen ||
					len(r.CallingStationID) > subscriber.MaxStringLen || r.NumPrefixes > subscriber.MaxPrefixes {
					t.Fatalf("accepted %+v", r)
				}
				_ = subscriber.New(subscriber.Config{}).Apply(&r)
			}
		}
	})
}
