package radius

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
	"github.com/flowpipe/flowpipe/pkg/testutil/radiustest"
)

// serve runs a listener on a loopback port until the test ends.
func serve(t *testing.T, secret string, allow []netip.Prefix) (*Listener, *subscriber.Table, *subscriber.Counts) {
	t.Helper()
	tbl := subscriber.New(subscriber.Config{})
	counts := &subscriber.Counts{}
	l, err := Listen(ListenerConfig{Addr: "127.0.0.1:0", Secret: []byte(secret), Allow: allow, Apply: tbl.Apply, Counts: counts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return l, tbl, counts
}

func checkProbes(t *testing.T, tbl *subscriber.Table) {
	t.Helper()
	for _, p := range radiustest.Probes {
		got := ""
		if s := tbl.Lookup(p.Addr, p.Time); s != nil {
			got = s.User()
		}
		if got != p.User {
			t.Errorf("%v at %v: %q, want %q", p.Addr, time.Unix(0, p.Time).UTC(), got, p.User)
		}
	}
}

// TestRadclient sends the scenario with Debian's radclient: every packet
// is answered with an Accounting-Response radclient accepts (so the
// Response Authenticator is right), and the sessions are those expected.
func TestRadclient(t *testing.T) {
	l, tbl, counts := serve(t, "s3cret", nil)
	n, out := radiustest.Radclient(t, l.Addr(), "s3cret", radiustest.Packets)
	if n != radiustest.PacketCount {
		t.Fatalf("%d answers, want %d:\n%s", n, radiustest.PacketCount, out)
	}
	checkProbes(t, tbl)
	src := subscriber.SourceRADIUS
	if got := counts.Read[src].Load(); got != radiustest.PacketCount {
		t.Errorf("read %d", got)
	}
	if got := counts.Rejected[src][subscriber.ReasonUnusedStatus].Load(); got != radiustest.UnusedPackets {
		t.Errorf("unused %d", got)
	}
}

func TestRadclientMessageAuthenticator(t *testing.T) {
	l, tbl, _ := serve(t, "s3cret", nil)
	pkt := "Acct-Status-Type = Start\nNAS-IP-Address = 192.0.2.1\nAcct-Session-Id = \"m1\"\nUser-Name = \"mallory\"\n" +
		"Framed-IP-Address = 100.64.9.9\nEvent-Timestamp = 1767254400\nMessage-Authenticator = 0x00\n"
	if n, out := radiustest.Radclient(t, l.Addr(), "s3cret", pkt); n != 1 {
		t.Fatalf("not answered:\n%s", out)
	}
	if s := tbl.Lookup(netip.MustParseAddr("100.64.9.9"), 1767254400e9); s == nil || s.User() != "mallory" {
		t.Fatal("session not applied")
	}
}

func TestRadclientWrongSecret(t *testing.T) {
	l, tbl, counts := serve(t, "s3cret", nil)
	first, _, _ := strings.Cut(radiustest.Packets, "\n\n")
	if n, out := radiustest.Radclient(t, l.Addr(), "not-the-secret", first); n != 0 {
		t.Fatalf("answered with a wrong secret:\n%s", out)
	}
	if counts.Rejected[subscriber.SourceRADIUS][subscriber.ReasonBadAuthenticator].Load() == 0 || tbl.Len() != 0 {
		t.Errorf("bad authenticators %d, sessions %d", counts.Rejected[subscriber.SourceRADIUS][subscriber.ReasonBadAuthenticator].Load(), tbl.Len())
	}
}

func TestRadclientNotAllowed(t *testing.T) {
	l, tbl, counts := serve(t, "s3cret", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	first, _, _ := strings.Cut(radiustest.Packets, "\n\n")
	if n, _ := radiustest.Radclient(t, l.Addr(), "s3cret", first); n != 0 || tbl.Len() != 0 {
		t.Fatal("answered a source outside --radius-allow")
	}
	if counts.Rejected[subscriber.SourceRADIUS][subscriber.ReasonNotAllowed].Load() == 0 {
		t.Error("not counted")
	}
}

// TestBadPackets sends datagrams no NAS would: each is dropped unanswered
// and counted by reason, and a good packet after them is answered.
func TestBadPackets(t *testing.T) {
	l, tbl, counts := serve(t, "s3cret", nil)
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	accessRequest := request(2, "s3cret", attr(attrUserName, 'x'))
	accessRequest[0] = 1
	badMA := request(3, "s3cret", u32(attrAcctStatusType, 1), attr(attrMessageAuthenticator, make([]byte, 16)...))
	for _, b := range [][]byte{
		[]byte("garbage"),
		request(1, "s3cret", []byte{1, 1}), // attribute length 1
		accessRequest,
		request(4, "other", u32(attrAcctStatusType, 1)),
		badMA,
	} {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	good := request(5, "s3cret", u32(attrAcctStatusType, 1), attr(attrAcctSessionID, 'g'), u32(attrEventTimestamp, 1767254400),
		attr(attrFramedIPAddress, 100, 64, 7, 7), attr(attrUserName, 'g'))
	if _, err := conn.Write(good); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp := make([]byte, 100)
	n, err := conn.Read(resp)
	if err != nil {
		t.Fatal(err)
	}
	if n != HeaderLen || resp[1] != 5 {
		t.Fatalf("answer % x, want one to id 5 only", resp[:n])
	}
	src := subscriber.SourceRADIUS
	for r, want := range map[subscriber.Reason]int64{
		subscriber.ReasonMalformed: 2, subscriber.ReasonNotAccounting: 1,
		subscriber.ReasonBadAuthenticator: 1, subscriber.ReasonBadMessageAuth: 1,
	} {
		if got := counts.Rejected[src][r].Load(); got != want {
			t.Errorf("%s: %d, want %d", r, got, want)
		}
	}
	if counts.Read[src].Load() != 6 || tbl.Len() != 1 {
		t.Errorf("read %d, sessions %d", counts.Read[src].Load(), tbl.Len())
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content, want string
	}{
		"one line":         {"s3cret\n", "s3cret"},
		"no newline":       {"s3cret", "s3cret"},
		"crlf and more":    {"s3 cret\r\nignored\n", "s3 cret"},
		"empty":            {"", ""},
		"empty first line": {"\nsecret\n", ""},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSecret(p)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: no error", name)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
}
