package collect

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Family is the decoder family a listener or a packet belongs to.
type Family uint8

const (
	// FamilyAuto sniffs each packet: NetFlow v5/v9/IPFIX by the 2-byte
	// version, sFlow by the 4-byte version 5.
	FamilyAuto Family = iota
	// FamilyNetFlow is NetFlow v5, v9 and IPFIX (told apart by version).
	FamilyNetFlow
	// FamilySFlow is sFlow v5.
	FamilySFlow
)

func (f Family) String() string {
	switch f {
	case FamilyNetFlow:
		return "netflow"
	case FamilySFlow:
		return "sflow"
	}
	return "auto"
}

// DefaultListen is the listen set used when none is given.
var DefaultListen = []string{"netflow://:2055", "ipfix://:4739", "sflow://:6343"}

// Listen is one listener, parsed from a URI such as
// netflow://[::]:2055?count=4&rcvbuf=33554432.
type Listen struct {
	URI    string // as given, for logs and metric labels
	Family Family
	Host   string // empty: every address
	Port   int
	// Count is the number of SO_REUSEPORT sockets (and reader goroutines).
	Count int
	// RcvBuf is the SO_RCVBUF asked for, in bytes; 0 keeps the default.
	RcvBuf int
	// Workers is goflow2's ?workers= (0 when absent): decoding goroutines,
	// which flowpipe shares among every listener (--workers).
	Workers int
	// Blocking (goflow2's ?blocking=: 0 absent, 1 false, 2 true) and
	// QueueSize (?queue_size=, 0 absent) have flowpipe equivalents of
	// another shape, which Notes names.
	Blocking  uint8
	QueueSize uint64
}

// Notes say how goflow2's parameters without a flowpipe meaning of their
// own (blocking, queue_size) map to flowpipe's settings; the caller logs
// them.
func (l Listen) Notes() []string {
	var notes []string
	switch l.Blocking {
	case 2:
		notes = append(notes, "blocking=true (goflow2: a socket reader waits for room in a full queue instead of dropping): flowpipe's readers wait --queue-wait (default 100ms) then drop and count in flowcollect_packets_dropped_total; raise --queue-wait to wait longer")
	case 1:
		notes = append(notes, "blocking=false is flowpipe's behaviour too: a full queue drops after --queue-wait (default 100ms), counted in flowcollect_packets_dropped_total")
	}
	if l.QueueSize != 0 {
		notes = append(notes, "queue_size (goflow2: packets queued per listener) has no one-to-one equivalent: flowpipe queues --queue chunks of up to 64 KiB of datagrams per worker (default 256), and the socket buffer (?rcvbuf=, --rcvbuf) absorbs bursts")
	}
	return notes
}

// Addr is the host:port form for net.ListenConfig.
func (l Listen) Addr() string { return net.JoinHostPort(l.Host, strconv.Itoa(l.Port)) }

// ParseListen parses a listener URI. Schemes: netflow (v5, v9 and IPFIX,
// told apart by version), ipfix (an alias kept for readability) and sflow.
// Query parameters: count (sockets, default 1), rcvbuf (bytes, default
// defaultRcvBuf), and goflow2's workers (Workers), blocking and queue_size
// (Notes says what stands for them). A port is required.
func ParseListen(uri string, defaultRcvBuf int) (Listen, error) {
	if !strings.Contains(uri, "://") {
		return Listen{}, fmt.Errorf("collect: listen %q: missing scheme (netflow://, ipfix://, sflow://)", uri)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return Listen{}, fmt.Errorf("collect: listen %q: %w", uri, err)
	}
	l := Listen{URI: uri, Count: 1, RcvBuf: defaultRcvBuf}
	switch strings.ToLower(u.Scheme) {
	case "netflow", "nfv5", "nfv9", "ipfix":
		l.Family = FamilyNetFlow
	case "sflow":
		l.Family = FamilySFlow
	case "":
		return Listen{}, fmt.Errorf("collect: listen %q: missing scheme (netflow://, ipfix://, sflow://)", uri)
	default:
		return Listen{}, fmt.Errorf("collect: listen %q: unknown scheme %q (want netflow, ipfix or sflow)", uri, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return Listen{}, fmt.Errorf("collect: listen %q: unexpected path %q", uri, u.Path)
	}
	l.Host = u.Hostname()
	port := u.Port()
	if port == "" {
		return Listen{}, fmt.Errorf("collect: listen %q: missing port", uri)
	}
	if l.Port, err = strconv.Atoi(port); err != nil || l.Port < 0 || l.Port > 65535 {
		return Listen{}, fmt.Errorf("collect: listen %q: bad port %q", uri, port)
	}
	if l.Host != "" && net.ParseIP(l.Host) == nil && l.Host != "localhost" {
		return Listen{}, fmt.Errorf("collect: listen %q: host must be an IP address", uri)
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "count", "rcvbuf", "workers", "blocking", "queue_size":
		default:
			return Listen{}, fmt.Errorf("collect: listen %q: unknown parameter %q (want count, rcvbuf; goflow2's workers, blocking, queue_size)", uri, k)
		}
	}
	if v := q.Get("count"); q.Has("count") {
		if l.Count, err = strconv.Atoi(v); err != nil || l.Count < 1 || l.Count > 256 {
			return Listen{}, fmt.Errorf("collect: listen %q: count must be 1-256, got %q", uri, v)
		}
	}
	if v := q.Get("rcvbuf"); q.Has("rcvbuf") {
		if l.RcvBuf, err = strconv.Atoi(v); err != nil || l.RcvBuf < 0 {
			return Listen{}, fmt.Errorf("collect: listen %q: rcvbuf must be a byte count, got %q", uri, v)
		}
	}
	// goflow2's parameters: parsed as goflow2 parses them (a bad value is
	// an error there too), then mapped to flowpipe's settings.
	if v := q.Get("workers"); q.Has("workers") {
		if l.Workers, err = strconv.Atoi(v); err != nil || l.Workers < 0 || l.Workers > 1024 {
			return Listen{}, fmt.Errorf("collect: listen %q: workers must be 0-1024, got %q", uri, v)
		}
	}
	if v := q.Get("blocking"); q.Has("blocking") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Listen{}, fmt.Errorf("collect: listen %q: blocking must be true or false, got %q", uri, v)
		}
		l.Blocking = 1
		if b {
			l.Blocking = 2
		}
	}
	if v := q.Get("queue_size"); q.Has("queue_size") {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil || n == 0 {
			return Listen{}, fmt.Errorf("collect: listen %q: queue_size must be a positive count, got %q", uri, v)
		}
		l.QueueSize = n
	}
	return l, nil
}

// ParseListens parses several URIs and rejects two listeners on one port
// and host.
func ParseListens(uris []string, defaultRcvBuf int) ([]Listen, error) {
	var out []Listen
	var errs []error
	seen := map[string]bool{}
	for _, s := range uris {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		l, err := ParseListen(s, defaultRcvBuf)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l.Port != 0 && seen[l.Addr()] {
			errs = append(errs, fmt.Errorf("collect: listen %q: address %s used twice", s, l.Addr()))
		}
		seen[l.Addr()] = true
		out = append(out, l)
	}
	return out, errors.Join(errs...)
}
