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
}

// Addr is the host:port form for net.ListenConfig.
func (l Listen) Addr() string { return net.JoinHostPort(l.Host, strconv.Itoa(l.Port)) }

// ParseListen parses a listener URI. Schemes: netflow (v5, v9 and IPFIX,
// told apart by version), ipfix (an alias kept for readability) and sflow.
// Query parameters: count (sockets, default 1), rcvbuf (bytes, default
// defaultRcvBuf). A port is required.
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
		case "count", "rcvbuf", "workers":
		default:
			return Listen{}, fmt.Errorf("collect: listen %q: unknown parameter %q (want count, rcvbuf)", uri, k)
		}
	}
	if v := q.Get("count"); v != "" {
		if l.Count, err = strconv.Atoi(v); err != nil || l.Count < 1 || l.Count > 256 {
			return Listen{}, fmt.Errorf("collect: listen %q: count must be 1-256, got %q", uri, v)
		}
	}
	if v := q.Get("rcvbuf"); v != "" {
		if l.RcvBuf, err = strconv.Atoi(v); err != nil || l.RcvBuf < 0 {
			return Listen{}, fmt.Errorf("collect: listen %q: rcvbuf must be a byte count, got %q", uri, v)
		}
	}
	// workers is accepted for goflow2-style URIs but workers are shared by
	// every listener (--workers), so that one exporter stays in order.
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
