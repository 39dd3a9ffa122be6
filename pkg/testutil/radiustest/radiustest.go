// Package radiustest runs Debian's FreeRADIUS server and radclient for
// tests: a server on a minimal configuration in a temporary directory
// that includes the example configuration of scripts/deploy/freeradius
// (so that the example README.md shows is the one tested), and radclient
// sending Accounting-Requests. A missing tool skips the test, or fails it
// when the CI environment variable is set.
package radiustest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/tools"
)

// Timeout bounds every tool run.
const Timeout = 60 * time.Second

// ClientSecret is the secret radclient and the server share.
const ClientSecret = "testing123"

// Require returns the path of tool, or skips the test (fails it when CI
// is set) if it is not installed.
func Require(t testing.TB, tool string) string {
	t.Helper()
	return tools.Require(t, tool)
}

// Radclient sends packets (radclient's input: "Attr = value" lines, a
// blank line between packets) as Accounting-Requests to addr, one at a
// time and in order, and returns how many Accounting-Responses came back
// and radclient's output. Unanswered packets are tried twice, one second
// apart.
func Radclient(t testing.TB, addr netip.AddrPort, secret, packets string) (int, string) {
	t.Helper()
	bin := Require(t, "radclient")
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-x", "-p", "1", "-r", "2", "-t", "1", addr.String(), "acct", secret)
	cmd.Stdin = strings.NewReader(packets)
	out, _ := cmd.CombinedOutput() // exits 1 when a packet got no answer
	return strings.Count(string(out), "Received Accounting-Response"), string(out)
}

// Server is a running FreeRADIUS.
type Server struct {
	Dir  string         // its configuration and log directory
	Acct netip.AddrPort // where it receives accounting
	// DetailGlob matches the detail files it writes (example config);
	// JSONPath is its JSON lines file.
	DetailGlob, JSONPath string
	log                  *bytes.Buffer
}

// Config says where the example configuration sends copies.
type Config struct {
	// ReplicateTo and ReplicateSecret: the listener the replicate module
	// sends to (the example's home server).
	ReplicateTo     netip.AddrPort
	ReplicateSecret string
}

// Start runs FreeRADIUS in the foreground with the example configuration
// of scripts/deploy/freeradius, accounting on a free loopback port, in
// the UTC zone; it is stopped when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	bin := Require(t, "freeradius")
	dir := t.TempDir()
	example := ExampleDir(t)
	s := &Server{Dir: dir, Acct: freeUDPPort(t), log: &bytes.Buffer{},
		DetailGlob: filepath.Join(dir, "flowenrich", "detail-*"), JSONPath: filepath.Join(dir, "flowenrich", "accounting.json")}
	for _, name := range []string{"mods-flowenrich", "policy-flowenrich", "proxy-flowenrich.conf"} {
		b, err := os.ReadFile(filepath.Join(example, name))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if name == "proxy-flowenrich.conf" {
			text = replaceOnce(t, text, "\tport = 1814\n", fmt.Sprintf("\tport = %d\n", cfg.ReplicateTo.Port()))
			text = replaceOnce(t, text, "\tsecret = change-me-flowenrich\n", fmt.Sprintf("\tsecret = %q\n", cfg.ReplicateSecret))
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`prefix = %[1]s
confdir = %[1]s
logdir = %[1]s
radacctdir = %[1]s
run_dir = %[1]s
libdir = /usr/lib/freeradius
pidfile = %[1]s/radiusd.pid
proxy_requests = yes
security {
	allow_vulnerable_openssl = yes
}
client localhost {
	ipaddr = 127.0.0.1
	secret = %[3]s
}
$INCLUDE proxy-flowenrich.conf
modules {
	$INCLUDE mods-flowenrich
}
policy {
	$INCLUDE policy-flowenrich
}
server default {
	listen {
		type = acct
		ipaddr = 127.0.0.1
		port = %[2]d
	}
	accounting {
		flowenrich
	}
}
`, dir, s.Acct.Port(), ClientSecret)
	if err := os.WriteFile(filepath.Join(dir, "radiusd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	cmd := exec.CommandContext(ctx, bin, "-f", "-l", "stdout", "-d", dir)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Ready to process requests") {
				ready <- true
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		<-done
		if t.Failed() {
			t.Logf("freeradius log:\n%s", s.log.String())
		}
	})
	select {
	case <-ready:
	case <-done:
		t.Fatalf("freeradius exited before it was ready:\n%s", s.log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("freeradius not ready after 20 s:\n%s", s.log.String())
	}
	return s
}

// Log is what the server printed so far.
func (s *Server) Log() string { return s.log.String() }

// ExampleDir is scripts/deploy/freeradius of this repository.
func ExampleDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "deploy", "freeradius")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("radiustest: go.mod not found above the test's directory")
		}
		dir = parent
	}
}

func replaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("radiustest: %q not found once in the example configuration", old)
	}
	return strings.Replace(s, old, new, 1)
}

// freeUDPPort finds a loopback UDP port free now; FreeRADIUS needs a
// number in its configuration.
func freeUDPPort(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Packets is an accounting scenario in radclient's input form, on
// 2026-01-01 UTC: sessions started, updated without a Start, stopped, an
// address reassigned, IPv6 prefixes, two NASes (one identified by name)
// and an Accounting-Off, a vendor attribute, a status that says nothing
// about sessions. Probes are the lookups it must answer.
const Packets = `Acct-Status-Type = Start
NAS-IP-Address = 192.0.2.1
Acct-Session-Id = "s1"
User-Name = "alice"
Calling-Station-Id = "00-11-22-33-44-55"
Framed-IP-Address = 100.64.0.1
Framed-IPv6-Prefix = 2001:db8:1::/64
Delegated-IPv6-Prefix = 2001:db8:100::/56
Event-Timestamp = "Jan  1 2026 08:00:00 UTC"
Acct-Delay-Time = 0

Acct-Status-Type = Start
NAS-IP-Address = 192.0.2.1
Acct-Session-Id = "s2"
User-Name = "bob@example.net"
Calling-Station-Id = "491701234567"
Framed-IP-Address = 100.64.0.2
Event-Timestamp = 1767254430
Cisco-AVPair = "subscriber:accounting-list=default"

Acct-Status-Type = Interim-Update
NAS-Identifier = "bng-2"
Acct-Session-Id = "s3"
User-Name = "carol"
Framed-IP-Address = 100.64.0.3
Acct-Session-Time = 600
Event-Timestamp = "Jan  1 2026 08:10:00 UTC"

Acct-Status-Type = Start
NAS-IP-Address = 192.0.2.2
Acct-Session-Id = "s1"
User-Name = "erin"
Framed-IP-Address = 100.64.0.5
Event-Timestamp = "Jan  1 2026 08:00:00 UTC"

Acct-Status-Type = Stop
NAS-IP-Address = 192.0.2.1
Acct-Session-Id = "s1"
User-Name = "alice"
Framed-IP-Address = 100.64.0.1
Acct-Session-Time = 3600
Acct-Terminate-Cause = User-Request
Event-Timestamp = "Jan  1 2026 09:00:00 UTC"

Acct-Status-Type = Start
NAS-IP-Address = 192.0.2.1
Acct-Session-Id = "s4"
User-Name = "dave"
Framed-IP-Address = 100.64.0.1
Event-Timestamp = "Jan  1 2026 09:05:00 UTC"

Acct-Status-Type = Accounting-Off
NAS-IP-Address = 192.0.2.2
Event-Timestamp = "Jan  1 2026 10:00:00 UTC"

Acct-Status-Type = Failed
NAS-IP-Address = 192.0.2.1
Acct-Session-Id = "f1"
Event-Timestamp = "Jan  1 2026 10:00:00 UTC"
`

// PacketCount is the number of packets in Packets; UnusedPackets of them
// say nothing about sessions (rejected as unused_status_type).
const (
	PacketCount   = 8
	UnusedPackets = 1
)

// Probe is a lookup the scenario must answer: the user that held Addr at
// Time (Unix ns), "" for none.
type Probe struct {
	Addr netip.Addr
	Time int64
	User string
}

// Probes are the lookups Packets must answer, at the edges of each rule.
var Probes = func() []Probe {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := func(addr, clock, user string) Probe {
		d, err := time.Parse("15:04:05.999", clock)
		if err != nil {
			panic(err)
		}
		t := day.Add(time.Duration(d.Hour())*time.Hour + time.Duration(d.Minute())*time.Minute +
			time.Duration(d.Second())*time.Second + time.Duration(d.Nanosecond()))
		return Probe{netip.MustParseAddr(addr), t.UnixNano(), user}
	}
	return []Probe{
		p("100.64.0.1", "07:59:59.999", ""),
		p("100.64.0.1", "08:00:00", "alice"),
		p("100.64.0.1", "08:59:59.999", "alice"),
		p("100.64.0.1", "09:00:00", ""),
		p("100.64.0.1", "09:05:00", "dave"),
		p("2001:db8:1::42", "08:30:00", "alice"),
		p("2001:db8:100:ab::1", "08:30:00", "alice"),
		p("2001:db8:100:ab::1", "09:30:00", ""),
		p("100.64.0.2", "08:00:29", ""),
		p("100.64.0.2", "08:00:30", "bob@example.net"),
		p("100.64.0.3", "07:59:59", ""),
		p("100.64.0.3", "08:00:00", "carol"),
		p("100.64.0.5", "09:59:59", "erin"),
		p("100.64.0.5", "10:00:00", ""),
		p("100.64.0.9", "08:30:00", ""),
	}
}()
