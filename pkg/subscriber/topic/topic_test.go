package topic

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

func TestParse(t *testing.T) {
	produced := time.Unix(1800000000, 0)
	for _, tc := range []struct {
		name, json string
		check      func(r *subscriber.Record) bool
		reason     subscriber.Reason
		fails      bool
	}{
		{"FreeRADIUS 3.2 json_encode object_simple, through an attribute",
			`{"Acct-Status-Type":"Start","User-Name":"alice","Acct-Session-Id":"s1","Framed-IP-Address":"100.64.0.1","NAS-IP-Address":"192.0.2.1","Event-Timestamp":"Jan  1 2026 08:00:00 UTC","Acct-Session-Time":5,"Framed-IPv6-Prefix":["2001:db8::\\/64","2001:db8:1::\\/64"],"Cisco-AVPair":"a=b","Calling-Station-Id":"a\"b"}`,
			func(r *subscriber.Record) bool {
				return r.Status == 1 && r.User == "alice" && r.SessionID == "s1" && r.FramedIP == netip.MustParseAddr("100.64.0.1") &&
					r.EventTime == time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC).UnixNano() && r.SessionTime == 5 &&
					r.NumPrefixes == 2 && r.Prefixes[1] == netip.MustParsePrefix("2001:db8:1::/64") && r.CallingStationID == `a"b` &&
					r.RecordTime == produced.UnixNano()
			}, 0, false},
		{"object mode with types, integer enums, epoch time, prefixed names",
			`{"acct:Acct-Status-Type":{"type":"integer","value":2},"acct:Acct-Session-Id":{"type":"string","value":["s9"]},"acct:Event-Timestamp":{"type":"date","value":1767254400},"acct:NAS-Identifier":{"type":"string","value":"bng-1"}}`,
			func(r *subscriber.Record) bool {
				return r.Status == 2 && r.SessionID == "s9" && r.EventTime == 1767254400e9 && r.NASIdentifier == "bng-1"
			}, 0, false},
		{"the detail file's Timestamp is the record's time",
			`{"Acct-Status-Type":"Interim-Update","Acct-Session-Id":"s1","Timestamp":1767254400,"Acct-Delay-Time":"10","Ignored":null,"Flag":true}`,
			func(r *subscriber.Record) bool { return r.Time() == 1767254390e9 }, 0, false},
		{"not JSON", `Acct-Status-Type = Start`, nil, subscriber.ReasonBadJSON, true},
		{"an array", `[{"Acct-Status-Type":"Start"}]`, nil, subscriber.ReasonBadJSON, true},
		{"two objects", `{"a":1}{"b":2}`, nil, subscriber.ReasonBadJSON, true},
		{"null", `null`, nil, subscriber.ReasonBadJSON, true},
		{"bad value", `{"Framed-IP-Address":"not an address"}`, nil, subscriber.ReasonMalformed, true},
		{"nested arrays", `{"User-Name":[["a"]]}`, nil, subscriber.ReasonMalformed, true},
		{"object without value", `{"User-Name":{"type":"string"}}`, nil, subscriber.ReasonMalformed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r subscriber.Record
			err := Parse([]byte(tc.json), &r, produced)
			if tc.fails {
				if err == nil || subscriber.ReasonOf(err) != tc.reason {
					t.Fatalf("error %v, want reason %v", err, tc.reason)
				}
				return
			}
			if err != nil || !tc.check(&r) || r.Source != subscriber.SourceKafka {
				t.Fatalf("%v: %+v", err, r)
			}
		})
	}
}

// FuzzParse checks: Parse never panics; a record it accepts can be
// applied without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"Acct-Status-Type":"Start","Acct-Session-Id":"s1","Framed-IP-Address":"100.64.0.1","Event-Timestamp":"Jan  1 2026 08:00:00 UTC"}`))
	f.Add([]byte(`{"x:Delegated-IPv6-Prefix":{"value":["2001:db8::/56"]},"Acct-Status-Type":3,"Acct-Session-Time":4294967295}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r subscriber.Record
		if Parse(b, &r, time.Unix(1, 0)) == nil {
			_ = subscriber.New(subscriber.Config{}).Apply(&r)
		}
	})
}

const topicName = "radius-accounting"

func newCluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topicName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func produce(t *testing.T, c *kfake.Cluster, values ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(topicName))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i, v := range values {
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(v)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func start(id, user, ip, at string) string {
	return fmt.Sprintf(`{"Acct-Status-Type":"Start","NAS-IP-Address":"192.0.2.1","Acct-Session-Id":%q,"User-Name":%q,"Framed-IP-Address":%q,"Event-Timestamp":%q}`, id, user, ip, at)
}

func run(t *testing.T, c *kfake.Cluster, topic string) (*subscriber.Table, *subscriber.Counts, *Source) {
	t.Helper()
	tbl := subscriber.New(subscriber.Config{})
	counts := &subscriber.Counts{}
	s, err := New(Config{Opts: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Topic: topic, Apply: tbl.Apply, Counts: counts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	})
	select {
	case <-s.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("not ready after 20 s")
	}
	return tbl, counts, s
}

func user(tbl *subscriber.Table, addr string, at int64) string {
	if s := tbl.Lookup(netip.MustParseAddr(addr), at); s != nil {
		return s.User()
	}
	return ""
}

const t0 = 1767254400e9 // 2026-01-01 08:00:00 UTC

// TestSourceCatchesUpThenFollows: records produced before the source
// starts are all applied by the time Ready closes; records produced after
// are applied within a second.
func TestSourceCatchesUpThenFollows(t *testing.T) {
	c := newCluster(t)
	var before []string
	for i := range 300 {
		before = append(before, start(fmt.Sprint("s", i), fmt.Sprint("user", i), fmt.Sprintf("100.64.%d.%d", i/256, i%256), "Jan  1 2026 08:00:00 UTC"))
	}
	before = append(before, "not json")
	produce(t, c, before...)
	tbl, counts, _ := run(t, c, topicName)
	if tbl.Len() != 300 || user(tbl, "100.64.1.43", t0) != "user299" {
		t.Fatalf("%d sessions when ready", tbl.Len())
	}
	if counts.Rejected[subscriber.SourceKafka][subscriber.ReasonBadJSON].Load() != 1 {
		t.Error("bad JSON not counted")
	}
	produce(t, c, start("late", "zoe", "100.64.9.9", "Jan  1 2026 08:00:01 UTC"))
	deadline := time.Now().Add(time.Second)
	for user(tbl, "100.64.9.9", t0+1e9) != "zoe" {
		if time.Now().After(deadline) {
			t.Fatal("a record produced after the start was not applied within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSourceEmptyAndMissingTopics(t *testing.T) {
	c := newCluster(t)
	tbl, _, _ := run(t, c, topicName)
	if tbl.Len() != 0 {
		t.Fatal("sessions from an empty topic")
	}
	run(t, c, "no-such-topic") // ready at once
}

// TestKcatProducer feeds the topic with Debian's kcat (librdkafka), one
// message per line of a JSON lines file, as a shipper would.
func TestKcatProducer(t *testing.T) {
	kcat := tools.Require(t, "kcat")
	c := newCluster(t)
	lines := start("k1", "kim", "100.64.5.1", "Jan  1 2026 08:00:00 UTC") + "\n" +
		`{"Acct-Status-Type":"Stop","NAS-IP-Address":"192.0.2.1","Acct-Session-Id":"k1","Event-Timestamp":"Jan  1 2026 09:00:00 UTC"}` + "\n"
	path := t.TempDir() + "/acct.json"
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, "-P", "-b", strings.Join(c.ListenAddrs(), ","), "-t", topicName, "-l", path).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	tbl, _, _ := run(t, c, topicName)
	if user(tbl, "100.64.5.1", t0+3599e9) != "kim" || user(tbl, "100.64.5.1", t0+3600e9) != "" {
		t.Fatal("kcat's records not applied")
	}
}
