package export

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// userFlow is a flow between two subscribers (either may be ""), AS
// numbers set as flowenrich would.
func userFlow(src, dst string, bytes, rate uint64, sampler string) *flowpb.FlowMessage {
	m := testFlow(64500, 64500, bytes, 1, rate, sampler)
	m.SrcUser, m.DstUser = src, dst
	return m
}

// TestTableUsers counts by user from every format that carries the user
// fields, beside the AS pairs, and checks the exposition.
func TestTableUsers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ASN, cfg.Users = 64500, true
	tbl, c := newTestTable(t, cfg)
	countAll(t, c, time.Now(),
		framed(userFlow("alice@isp", "", 100, 10, "192.0.2.1")),                       // alice transmits 1000
		jsonFlow(userFlow("", "alice@isp", 7, 1, "192.0.2.1")),                        // alice receives 7
		bare(userFlow("bob", "alice@isp", 5, 2, "192.0.2.2")),                         // bob transmits 10, alice receives 10 (other exporter)
		framed(userFlow("", "", 1, 1, "192.0.2.1")),                                   // no user: AS pairs only
		[]byte(`{"label":"bdr1","as_src":64500,"as_dst":6939,"bytes":7,"packets":1}`), // pmacct: no user
	)
	want := `
# HELP flowexport_user_receive_bytes_total Bytes received by the subscriber (dst_user), multiplied by the sampling rate.
# TYPE flowexport_user_receive_bytes_total counter
flowexport_user_receive_bytes_total{hostname="192.0.2.1",user="alice@isp"} 7
flowexport_user_receive_bytes_total{hostname="192.0.2.2",user="alice@isp"} 10
# HELP flowexport_user_transmit_bytes_total Bytes transmitted by the subscriber (src_user), multiplied by the sampling rate.
# TYPE flowexport_user_transmit_bytes_total counter
flowexport_user_transmit_bytes_total{hostname="192.0.2.1",user="alice@isp"} 1000
flowexport_user_transmit_bytes_total{hostname="192.0.2.2",user="bob"} 10
# HELP flowexport_user_transmit_flows_total Flow records transmitted by the subscriber (src_user).
# TYPE flowexport_user_transmit_flows_total counter
flowexport_user_transmit_flows_total{hostname="192.0.2.1",user="alice@isp"} 1
flowexport_user_transmit_flows_total{hostname="192.0.2.2",user="bob"} 1
# HELP flowexport_users Per-user series currently exported (--group-by user), the "other" series included.
# TYPE flowexport_users gauge
flowexport_users 4
`
	if err := testutil.CollectAndCompare(tbl, strings.NewReader(want), "flowexport_user_receive_bytes_total",
		"flowexport_user_transmit_bytes_total", "flowexport_user_transmit_flows_total", "flowexport_users"); err != nil {
		t.Error(err)
	}
	// The AS pairs are counted as before, users or not.
	if n := tbl.Len(); n != 3 {
		t.Errorf("%d AS-pair series, want 3", n)
	}
}

// TestTableUsersCap folds users beyond --max-users into "other", keeps
// existing users counting, and expires idle users.
func TestTableUsersCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Users, cfg.MaxUsers, cfg.PairTTL = true, 2, time.Minute
	tbl, c := newTestTable(t, cfg)
	t0 := time.Now()
	for _, u := range []string{"u1", "u2", "u3", "u4", "u1"} {
		countAll(t, c, t0, bare(userFlow(u, "", 10, 1, "192.0.2.1")))
	}
	countAll(t, c, t0, bare(userFlow("", "u9\xff", 3, 1, "192.0.2.1"))) // receive: folded too (cap is per table)
	want := `
# HELP flowexport_user_receive_bytes_total Bytes received by the subscriber (dst_user), multiplied by the sampling rate.
# TYPE flowexport_user_receive_bytes_total counter
flowexport_user_receive_bytes_total{hostname="other",user="other"} 3
# HELP flowexport_user_transmit_bytes_total Bytes transmitted by the subscriber (src_user), multiplied by the sampling rate.
# TYPE flowexport_user_transmit_bytes_total counter
flowexport_user_transmit_bytes_total{hostname="192.0.2.1",user="u1"} 20
flowexport_user_transmit_bytes_total{hostname="192.0.2.1",user="u2"} 10
flowexport_user_transmit_bytes_total{hostname="other",user="other"} 20
# HELP flowexport_users_folded_total Records counted in a user family's "other" series because it was full (--max-users).
# TYPE flowexport_users_folded_total counter
flowexport_users_folded_total 3
`
	if err := testutil.CollectAndCompare(tbl, strings.NewReader(want), "flowexport_user_receive_bytes_total",
		"flowexport_user_transmit_bytes_total", "flowexport_users_folded_total"); err != nil {
		t.Error(err)
	}
	countAll(t, c, t0.Add(50*time.Second), bare(userFlow("u2", "", 1, 1, "192.0.2.1")))
	tbl.Expire(t0.Add(90 * time.Second))
	if n := tbl.Users(); n != 1 {
		t.Fatalf("after expiry: %d user series, want 1 (u2)", n)
	}
	// Room again: a new user gets its own series; its invalid UTF-8 is replaced.
	countAll(t, c, t0.Add(91*time.Second), bare(userFlow("", "u9\xff", 3, 1, "192.0.2.1")))
	if err := testutil.CollectAndCompare(tbl, strings.NewReader(`
# HELP flowexport_user_receive_bytes_total Bytes received by the subscriber (dst_user), multiplied by the sampling rate.
# TYPE flowexport_user_receive_bytes_total counter
flowexport_user_receive_bytes_total{hostname="192.0.2.1",user="u9`+"\uFFFD"+`"} 3
`), "flowexport_user_receive_bytes_total"); err != nil {
		t.Error(err)
	}
}

// TestUsersOnlyConfig: counting by user alone needs no monitored AS.
func TestUsersOnlyConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Users = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.MaxUsers = 0
	if err := cfg.Validate(); err == nil {
		t.Fatal("max users 0 validated")
	}
	_, c := newTestTable(t, usersConfig())
	c.Begin(time.Now())
	defer c.End()
	if _, counted, err := c.Count(bare(userFlow("", "", 1, 1, "192.0.2.1"))); err != nil || counted {
		t.Fatalf("a flow without users: counted %v, err %v; want uncounted", counted, err)
	}
}

// usersConfig counts by user only.
func usersConfig() Config {
	cfg := DefaultConfig()
	cfg.Users = true
	return cfg
}
