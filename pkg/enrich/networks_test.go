package enrich

import (
	"net/netip"
	"strings"
	"testing"
)

const sampleNetworks = `# CIDR context
networks:
  - name: dc1
    cidrs: [10.1.0.0/16, "2001:db8:1::/48"]
    labels: {site: ams1, role: servers, tenant: acme}
    asn: 64512
    as_name: ACME-DC1
    country: nl
  - name: dc1-db
    cidrs:
      - 10.1.2.0/24
      - 2001:db8:1:2::/64
    labels:
      role: databases
  - name: office
    cidrs: [192.168.1.7]
`

func TestParseNetworks(t *testing.T) {
	n, err := ParseNetworks("nets.yaml", []byte(sampleNetworks))
	if err != nil {
		t.Fatal(err)
	}
	if n.Len() != 3 || n.Prefixes() != 5 {
		t.Fatalf("got %d networks, %d prefixes", n.Len(), n.Prefixes())
	}
	for _, tc := range []struct {
		addr, name, prefix string
	}{
		{"10.1.0.1", "dc1", "10.1.0.0/16"},
		{"10.1.2.3", "dc1-db", "10.1.2.0/24"}, // most specific wins
		{"10.1.3.3", "dc1", "10.1.0.0/16"},
		{"2001:db8:1::5", "dc1", "2001:db8:1::/48"},
		{"2001:db8:1:2::5", "dc1-db", "2001:db8:1:2::/64"},
		{"192.168.1.7", "office", "192.168.1.7/32"},
		{"192.168.1.8", "", ""},
		{"2001:db8:2::1", "", ""},
	} {
		nw, prefix, ok := n.Lookup(netip.MustParseAddr(tc.addr))
		if tc.name == "" {
			if ok {
				t.Errorf("%s: got %s, want no match", tc.addr, nw.Name)
			}
			continue
		}
		if !ok || nw.Name != tc.name || prefix != tc.prefix {
			t.Errorf("%s: got %v %q, want %s %s", tc.addr, nw, prefix, tc.name, tc.prefix)
		}
	}
	dc1, _, _ := n.Lookup(netip.MustParseAddr("10.1.0.1"))
	if dc1.ASN != 64512 || dc1.ASName != "ACME-DC1" || dc1.Country != "NL" || dc1.Labels["tenant"] != "acme" || dc1.Line != 3 {
		t.Errorf("dc1 = %+v", dc1)
	}
}

func TestParseNetworksErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"bad cidr", "networks:\n  - name: a\n    cidrs:\n      - 10.0.0.0/8\n      - 10.300.0.0/16\n", `nets.yaml:5: network "a": bad CIDR "10.300.0.0/16"`},
		{"host bits", "networks:\n  - name: a\n    cidrs: [10.1.2.3/16]\n", "nets.yaml:3: network \"a\": bad CIDR \"10.1.2.3/16\": host bits set (did you mean 10.1.0.0/16?)"},
		{"duplicate", "networks:\n  - name: a\n    cidrs: [10.0.0.0/8]\n  - name: b\n    cidrs: [\"10.0.0.0/8\"]\n", `nets.yaml:5: network "b": prefix 10.0.0.0/8 already declared at line 3`},
		{"duplicate v6", "networks:\n  - name: a\n    cidrs: [2001:db8::/32, 2001:DB8::/32]\n", "already declared at line 3"},
		{"no name", "networks:\n  - cidrs: [10.0.0.0/8]\n", "nets.yaml:2: network without a name"},
		{"no cidrs", "networks:\n  - name: a\n", `nets.yaml:2: network "a" has no cidrs`},
		{"unknown key", "networks:\n  - name: a\n    cidr: [10.0.0.0/8]\n", `nets.yaml:3: unknown key "cidr"`},
		{"bad asn", "networks:\n  - name: a\n    cidrs: [10.0.0.0/8]\n    asn: -1\n", `nets.yaml:4: asn "-1"`},
		{"bad country", "networks:\n  - name: a\n    cidrs: [10.0.0.0/8]\n    country: NLD\n", `nets.yaml:4: country "NLD"`},
		{"not a list", "networks: {a: b}\n", `nets.yaml:1: "networks" must be a list`},
		{"top key", "nets: []\n", `nets.yaml:1: unknown key "nets"`},
		{"syntax", "networks: [\n", "nets.yaml: yaml:"},
		{"mapped", "networks:\n  - name: a\n    cidrs: [\"::ffff:10.0.0.0/104\"]\n", "IPv4-mapped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNetworks("nets.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "enrich: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestParseNetworksEmpty(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "networks:\n", "networks: []\n"} {
		n, err := ParseNetworks("nets.yaml", []byte(doc))
		if err != nil || n.Len() != 0 {
			t.Errorf("%q: %v, %d networks", doc, err, n.Len())
		}
	}
}

// FuzzParseNetworks checks that ParseNetworks never panics, and that on
// success every network has a name and at least one prefix, and every
// declared prefix's own address finds a network.
func FuzzParseNetworks(f *testing.F) {
	f.Add(sampleNetworks)
	f.Add("networks:\n  - name: a\n    cidrs: [10.0.0.0/8]\n  - name: b\n    cidrs: [\"10.0.0.0/8\"]\n")
	f.Add("networks: [{name: x, cidrs: ['::/0', 0.0.0.0/0], labels: {a: b}}]")
	f.Add("networks:\n  - &a {name: y, cidrs: [1.2.3.4]}\n  - *a\n")
	f.Fuzz(func(t *testing.T, doc string) {
		n, err := ParseNetworks("f.yaml", []byte(doc))
		if err != nil {
			return
		}
		if n.Prefixes() < n.Len() {
			t.Fatalf("%d prefixes for %d networks", n.Prefixes(), n.Len())
		}
		for p, e := range n.table.All() {
			if e.net.Name == "" {
				t.Fatal("network without a name")
			}
			if _, _, ok := n.Lookup(p.Addr()); !ok {
				t.Fatalf("%s finds no network", p)
			}
		}
	})
}
