package enrich

import "net/netip"

// reserved holds the address ranges that never get an AS or a country from
// the databases: private, shared (CGNAT), loopback, link-local, multicast,
// unspecified and reserved space. A record in the networks file may still
// give them an AS or a country.
//
// The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32) are deliberately not here: no public database maps them,
// so treating them as public costs nothing in production, and it lets tests
// and demos use them as stand-ins for public addresses.
var reservedV4 = [...]netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network", unspecified
	netip.MustParsePrefix("10.0.0.0/8"),     // RFC 1918
	netip.MustParsePrefix("100.64.0.0/10"),  // RFC 6598 shared (CGNAT)
	netip.MustParsePrefix("127.0.0.0/8"),    // loopback
	netip.MustParsePrefix("169.254.0.0/16"), // link-local
	netip.MustParsePrefix("172.16.0.0/12"),  // RFC 1918
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("192.168.0.0/16"), // RFC 1918
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
}

var reservedV6 = [...]netip.Prefix{
	netip.MustParsePrefix("::/127"),    // unspecified and loopback
	netip.MustParsePrefix("fc00::/7"),  // unique local
	netip.MustParsePrefix("fe80::/10"), // link-local
	netip.MustParsePrefix("ff00::/8"),  // multicast
}

// IsReserved reports whether a is private or reserved space that the
// databases must not be asked about. a must be unmapped.
func IsReserved(a netip.Addr) bool {
	if a.Is4() {
		// The first octet decides most cases without a prefix scan.
		b := a.As4()
		switch {
		case b[0] >= 224, b[0] == 0, b[0] == 10, b[0] == 127:
			return true
		case b[0] != 100 && b[0] != 169 && b[0] != 172 && b[0] != 192 && b[0] != 198:
			return false
		}
		for _, p := range reservedV4 {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, p := range reservedV6 {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
