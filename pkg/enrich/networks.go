package enrich

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gaissmai/bart"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// Network is one named network of the CIDR context file.
type Network struct {
	Name string
	// Labels are shared by every record that matches the network: callers
	// must treat the map as read-only.
	Labels map[string]string
	// ASN, ASName and Country, when set, override the databases for
	// addresses in the network (meant for private space).
	ASN     uint32
	ASName  string
	Country string
	Line    int // line of the network in its file
}

// netEntry is what the prefix table holds: the network and the matched
// prefix's text, built once so that records share it, and the CIDR-context
// fields already encoded for either side, so that the splicer copies them
// instead of encoding a label map per record.
type netEntry struct {
	net            *Network
	prefix         string
	encSrc, encDst []byte
}

func newNetEntry(nw *Network, p netip.Prefix) *netEntry {
	e := &netEntry{net: nw, prefix: p.String()}
	e.encSrc = appendNetFields(nil, fieldSrcNetName, fieldSrcNetLabels, fieldSrcNetPrefix, nw, e.prefix)
	e.encDst = appendNetFields(nil, fieldDstNetName, fieldDstNetLabels, fieldDstNetPrefix, nw, e.prefix)
	return e
}

// appendNetFields encodes one side's name, labels (in key order, so that
// output is stable) and prefix as FlowMessage fields.
func appendNetFields(b []byte, nameField, labelsField, prefixField protowire.Number, nw *Network, prefix string) []byte {
	if nw.Name != "" {
		b = protowire.AppendTag(b, nameField, protowire.BytesType)
		b = protowire.AppendString(b, nw.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(nw.Labels)) {
		var entry []byte
		entry = protowire.AppendTag(entry, 1, protowire.BytesType)
		entry = protowire.AppendString(entry, k)
		entry = protowire.AppendTag(entry, 2, protowire.BytesType)
		entry = protowire.AppendString(entry, nw.Labels[k])
		b = protowire.AppendTag(b, labelsField, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	if prefix != "" {
		b = protowire.AppendTag(b, prefixField, protowire.BytesType)
		b = protowire.AppendString(b, prefix)
	}
	return b
}

// Networks is a CIDR context: named networks in a longest-prefix-match
// table. It is immutable once built and safe for concurrent lookups.
type Networks struct {
	table    bart.Table[*netEntry]
	networks []*Network
	prefixes int
}

// Len is the number of named networks.
func (n *Networks) Len() int { return len(n.networks) }

// Prefixes is the number of prefixes in the table.
func (n *Networks) Prefixes() int { return n.prefixes }

// Lookup returns the most specific network holding a (unmapped), and the
// matched prefix as text.
func (n *Networks) Lookup(a netip.Addr) (net *Network, prefix string, ok bool) {
	e, ok := n.table.Lookup(a)
	if !ok {
		return nil, "", false
	}
	return e.net, e.prefix, true
}

func (n *Networks) lookup(a netip.Addr) *netEntry {
	e, _ := n.table.Lookup(a)
	return e
}

// LoadNetworks reads a CIDR context file. Errors name the file and line.
func LoadNetworks(path string) (*Networks, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("enrich: networks file: %w", err)
	}
	return ParseNetworks(path, data)
}

// ParseNetworks parses a CIDR context document:
//
//	networks:
//	  - name: dc1-servers
//	    cidrs: [10.1.0.0/16, "2001:db8:1::/48"]
//	    labels: {site: ams1, role: servers}
//	    asn: 64512        # optional
//	    as_name: ACME-DC1 # optional
//	    country: NL       # optional
//
// Overlapping prefixes are allowed (the most specific wins); the same
// prefix twice is an error naming both lines. An empty document holds no
// networks. name is used in error messages only.
func ParseNetworks(name string, data []byte) (*Networks, error) {
	n := &Networks{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("enrich: %s: %v", name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return n, nil // empty file
	}
	errorf := func(node *yaml.Node, format string, args ...any) error {
		return fmt.Errorf("enrich: %s:%d: %s", name, node.Line, fmt.Sprintf(format, args...))
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errorf(root, "want a mapping with a \"networks\" list at the top")
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "networks" {
			return nil, errorf(k, "unknown key %q (want \"networks\")", k.Value)
		}
		list = v
	}
	if list == nil || (list.Kind == yaml.ScalarNode && list.Tag == "!!null") {
		return n, nil
	}
	if list.Kind != yaml.SequenceNode {
		return nil, errorf(list, "\"networks\" must be a list")
	}
	seen := make(map[netip.Prefix]int) // prefix -> line
	for _, item := range list.Content {
		if item.Kind != yaml.MappingNode {
			return nil, errorf(item, "each network must be a mapping with name and cidrs")
		}
		nw := &Network{Line: item.Line}
		var cidrs *yaml.Node
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := item.Content[i], item.Content[i+1]
			switch k.Value {
			case "name":
				if v.Kind != yaml.ScalarNode || v.Value == "" {
					return nil, errorf(v, "name must be a non-empty string")
				}
				nw.Name = v.Value
			case "cidrs":
				if v.Kind != yaml.SequenceNode {
					return nil, errorf(v, "cidrs must be a list of prefixes")
				}
				cidrs = v
			case "labels":
				if v.Kind != yaml.MappingNode {
					return nil, errorf(v, "labels must be a mapping of names to values")
				}
				nw.Labels = make(map[string]string, len(v.Content)/2)
				for j := 0; j+1 < len(v.Content); j += 2 {
					lk, lv := v.Content[j], v.Content[j+1]
					if lk.Kind != yaml.ScalarNode || lv.Kind != yaml.ScalarNode {
						return nil, errorf(lk, "label %q must have a plain value", lk.Value)
					}
					if _, dup := nw.Labels[lk.Value]; dup {
						return nil, errorf(lk, "label %q given twice", lk.Value)
					}
					nw.Labels[lk.Value] = lv.Value
				}
			case "asn":
				asn, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(v.Value), "AS"), 10, 32)
				if v.Kind != yaml.ScalarNode || err != nil || asn == 0 {
					return nil, errorf(v, "asn %q: want a number from 1 to 4294967295", v.Value)
				}
				nw.ASN = uint32(asn)
			case "as_name":
				nw.ASName = v.Value
			case "country":
				if v.Kind != yaml.ScalarNode || !isCountryCode(v.Value) {
					return nil, errorf(v, "country %q: want a two-letter ISO 3166 code", v.Value)
				}
				nw.Country = strings.ToUpper(v.Value)
			default:
				return nil, errorf(k, "unknown key %q in network (want name, cidrs, labels, asn, as_name, country)", k.Value)
			}
		}
		if nw.Name == "" {
			return nil, errorf(item, "network without a name")
		}
		if cidrs == nil || len(cidrs.Content) == 0 {
			return nil, errorf(item, "network %q has no cidrs", nw.Name)
		}
		for _, c := range cidrs.Content {
			p, err := parseCIDR(c.Value)
			if c.Kind != yaml.ScalarNode || err != nil {
				return nil, errorf(c, "network %q: bad CIDR %q: %v", nw.Name, c.Value, err)
			}
			if line, dup := seen[p]; dup {
				return nil, errorf(c, "network %q: prefix %s already declared at line %d", nw.Name, p, line)
			}
			seen[p] = c.Line
			n.table.Insert(p, newNetEntry(nw, p))
			n.prefixes++
		}
		n.networks = append(n.networks, nw)
	}
	return n, nil
}

// parseCIDR accepts a canonical prefix or a bare address (a host prefix).
// Host bits set are an error rather than silently masked: 10.1.2.3/16 is
// more likely a typo than a wish for 10.1.0.0/16.
func parseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an address or prefix")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zones are not allowed")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a prefix")
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 prefix: write it as IPv4")
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits set (did you mean %s?)", m)
	}
	return p, nil
}

func isCountryCode(s string) bool {
	if len(s) != 2 {
		return false
	}
	for i := 0; i < 2; i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}
