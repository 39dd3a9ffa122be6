package mapping

import (
	"strings"
	"testing"

	"github.com/flowpipe/flowpipe/pkg/framing"
)

func TestLoadAndCustomFields(t *testing.T) {
	m, err := Load(strings.NewReader(`
ipfix:
  mapping:
    - field: 82
      destination: in_if_name
      protobuf: 1200
      type: string
    - field: 123
      penprovided: true
      pen: 2636
      destination: juniper_x
      protobuf: 1201
      type: uint
netflowv9:
  mapping:
    - field: 225
      destination: post_nat_src
      protobuf: 1202
      type: ip
`))
	if err != nil {
		t.Fatal(err)
	}
	if m.Lookup(10, 2636, 123) != 1 || m.Lookup(10, 0, 123) != -1 || m.Lookup(9, 0, 225) != 0 {
		t.Fatal("lookup")
	}
	cf := m.CustomFields()
	if len(cf) != 3 || cf[0].Render != framing.RenderString || cf[1].Render != framing.RenderUint || cf[2].Render != framing.RenderIP {
		t.Fatalf("%+v", cf)
	}
	if got := m.Entry(10, 1).Append(nil, []byte{0, 0, 1, 0}); len(got) != 4 { // tag (2 bytes) + varint 256 (2 bytes)
		t.Fatalf("append % x", got)
	}
}

func TestLoadRejects(t *testing.T) {
	for name, y := range map[string]string{
		"flow.proto field": "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1000}\n",
		"below range":      "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 50}\n",
		"collision":        "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1300}\n    - {field: 2, destination: y, protobuf: 1300}\n",
		"bad type":         "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1300, type: float}\n",
		"unknown key":      "ipfix:\n  mapping:\n    - {field: 1, destination: x, protobuf: 1300, colour: red}\n",
		"no destination":   "ipfix:\n  mapping:\n    - {field: 1, protobuf: 1300}\n",
	} {
		if _, err := Load(strings.NewReader(y)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.HasPrefix(err.Error(), "mapping: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

// FuzzMappingYAML: Load never panics; what it accepts has valid numbers.
func FuzzMappingYAML(f *testing.F) {
	f.Add([]byte("ipfix:\n  mapping:\n    - {field: 82, destination: n, protobuf: 1200, type: string}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, e := range append(m.IPFIX, m.NetFlowV9...) {
			if e.Protobuf < MinProtobuf || e.Destination == "" {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}
