package radius

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// ListenerConfig configures a Listener.
type ListenerConfig struct {
	Addr   string // host:port to listen on (UDP)
	Secret []byte // the shared secret
	// Allow, if not empty, are the networks packets may come from; others
	// are dropped unanswered.
	Allow []netip.Prefix
	// Apply applies a record (Table.Apply). A packet that is authentic is
	// answered whether or not its record could be used (an unused status
	// type, no session id): it was received and counted, and a NAS would
	// otherwise send it again and again.
	Apply      func(*subscriber.Record) error
	Counts     *subscriber.Counts // may be nil
	Log        *slog.Logger       // rate-limited drops; may be nil
	ReadBuffer int                // socket receive buffer, bytes; 0: 4 MiB
}

// Listener is a RADIUS accounting server on one UDP socket.
type Listener struct {
	cfg  ListenerConfig
	conn *net.UDPConn
	warn rate.Sometimes
}

// ReadSecret returns the first line of a secret file, without its line
// ending. An empty secret is an error.
func ReadSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("radius: secret: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("radius: secret file %s is empty", path)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("radius: secret file %s: first line is empty", path)
	}
	return []byte(line), nil
}

// Listen binds the socket, so that a taken port is a startup error.
func Listen(cfg ListenerConfig) (*Listener, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("radius: no secret")
	}
	if cfg.Apply == nil {
		return nil, errors.New("radius: no Apply function")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Counts == nil {
		cfg.Counts = &subscriber.Counts{}
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 4 << 20
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("radius: listen %s: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("radius: %w", err)
	}
	_ = conn.SetReadBuffer(cfg.ReadBuffer) // bursts of accounting after a NAS restart
	return &Listener{cfg: cfg, conn: conn, warn: rate.Sometimes{First: 3, Interval: 30 * time.Second}}, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() netip.AddrPort { return l.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Run serves until ctx is done; it closes the socket then.
func (l *Listener) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { l.conn.Close() })
	defer stop()
	buf := make([]byte, MaxPacketLen+1)
	out := make([]byte, 0, HeaderLen)
	var rec subscriber.Record
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("radius: %w", err)
		}
		if resp := l.handle(buf[:n], from, &rec, out[:0]); resp != nil {
			if _, err := l.conn.WriteToUDPAddrPort(resp, from); err != nil {
				l.warn.Do(func() { l.cfg.Log.Warn("radius: answer not sent", "to", from.String(), "err", err) })
			}
		}
	}
}

// handle checks and applies one datagram; it returns the answer to send,
// or nil to drop it.
func (l *Listener) handle(b []byte, from netip.AddrPort, rec *subscriber.Record, out []byte) []byte {
	c := l.cfg.Counts
	src := subscriber.SourceRADIUS
	c.Read[src].Add(1)
	drop := func(reason subscriber.Reason, err error) []byte {
		c.Rejected[src][reason].Add(1)
		l.warn.Do(func() {
			l.cfg.Log.Warn("radius: packet dropped", "from", from.String(), "reason", reason.String(), "err", err)
		})
		return nil
	}
	if len(l.cfg.Allow) > 0 && !allowed(l.cfg.Allow, from.Addr().Unmap()) {
		return drop(subscriber.ReasonNotAllowed, nil)
	}
	p, err := Parse(b)
	if err != nil {
		return drop(subscriber.ReasonMalformed, err)
	}
	if p.Code != CodeAccountingRequest {
		return drop(subscriber.ReasonNotAccounting, fmt.Errorf("code %d", p.Code))
	}
	if !p.VerifyRequest(l.cfg.Secret) {
		return drop(subscriber.ReasonBadAuthenticator, errors.New("the secret does not match"))
	}
	if present, ok := p.VerifyMessageAuthenticator(l.cfg.Secret); present && !ok {
		return drop(subscriber.ReasonBadMessageAuth, errors.New("the secret does not match"))
	}
	Decode(p, rec, time.Now())
	if err := l.cfg.Apply(rec); err != nil {
		reason := c.Reject(src, err)
		l.warn.Do(func() {
			l.cfg.Log.Warn("radius: record not used", "from", from.String(), "reason", reason.String(), "err", err)
		})
	}
	return AppendResponse(out, p, l.cfg.Secret)
}

func allowed(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}
