package publish

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

func keyGoldFlow() *flowpb.FlowMessage {
	return &flowpb.FlowMessage{
		Type: flowpb.FlowMessage_IPFIX, SequenceNum: 77, ObservationDomainId: 256, ObservationPointId: 3,
		InIf: 3, OutIf: 7, SrcAs: 64500, DstAs: 64511, NextHopAs: 64501, SrcNet: 24, DstNet: 16, Proto: 17,
		SrcPort: 53, DstPort: 33000, Etype: 0x800, VlanId: 10, SrcVlan: 10, DstVlan: 20, IpTos: 184,
		SrcCountry: "FR", DstCountry: "US", SamplerAddress: []byte{10, 0, 0, 254}, SrcAddr: []byte{198, 51, 100, 7},
		DstAddr: []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9}, NextHop: []byte{10, 0, 0, 1},
		BgpNextHop: []byte{10, 0, 0, 2},
	}
}

// TestKeysUnchanged pins the keys of the fields --key took before it
// resolved names from flow.proto's table (values printed by that
// version): a key decides a record's partition, so it must not move.
func TestKeysUnchanged(t *testing.T) {
	m := keyGoldFlow()
	for _, tc := range []struct{ spec, key string }{
		{"sampler_address", "7d63f2ff2d8bac05"},
		{"src_dst", "58763bd0471a307e"},
		{"src_dst,dst_port,src_country", "4e79597fbdf4bd84"},
		{"type,sequence_num,observation_domain_id,observation_point_id,in_if,out_if,src_as,dst_as,next_hop_as,src_net,dst_net,proto,src_port,etype,vlan_id,src_vlan,dst_vlan,ip_tos,dst_country,next_hop,bgp_next_hop", "15bdab87f7a33c88"},
	} {
		k, err := ParseKey(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", k.Append(nil, m)); got != tc.key {
			t.Errorf("--key %s: %s, want %s", tc.spec, got, tc.key)
		}
	}
}

// TestKeyAnyField: every singular field of flow.proto is a key by its
// name, hashed as documented (checked against hash/fnv): a field added to
// flow.proto is a key without a change here.
func TestKeyAnyField(t *testing.T) {
	m := &flowpb.FlowMessage{}
	mr := m.ProtoReflect()
	fds := mr.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		if fd.IsList() || fd.IsMap() {
			if _, err := ParseKey(string(fd.Name())); err == nil {
				t.Errorf("%s: a list or map accepted as a key", fd.Name())
			}
			continue
		}
		var v protoreflect.Value
		switch fd.Kind() {
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString("v-" + string(fd.Name()))
		case protoreflect.BytesKind:
			v = protoreflect.ValueOfBytes([]byte{192, 0, 2, byte(i)})
		case protoreflect.BoolKind:
			v = protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			v = protoreflect.ValueOfEnum(protoreflect.EnumNumber(i%3 + 1))
		case protoreflect.Uint32Kind:
			v = protoreflect.ValueOfUint32(uint32(1000 + i))
		case protoreflect.Uint64Kind:
			v = protoreflect.ValueOfUint64(uint64(1<<40 + i))
		default:
			t.Fatalf("%s: kind %v not covered", fd.Name(), fd.Kind())
		}
		mr.Set(fd, v)
	}
	names := KeyFieldNames()
	if len(names) < 60 {
		t.Fatalf("only %d key fields", len(names))
	}
	for _, name := range names {
		k, err := ParseKey(name)
		if err != nil {
			t.Fatal(err)
		}
		fd := fds.ByName(protoreflect.Name(name))
		want := fnv.New64a()
		switch fd.Kind() {
		case protoreflect.StringKind:
			s := mr.Get(fd).String()
			want.Write([]byte(s))
			want.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
		case protoreflect.BytesKind:
			b := mr.Get(fd).Bytes()
			want.Write(b)
			want.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(b))))
		case protoreflect.BoolKind:
			want.Write(binary.LittleEndian.AppendUint64(nil, 1))
		case protoreflect.EnumKind:
			want.Write(binary.LittleEndian.AppendUint64(nil, uint64(mr.Get(fd).Enum())))
		default:
			want.Write(binary.LittleEndian.AppendUint64(nil, mr.Get(fd).Uint()))
		}
		if got := k.Append(nil, m); binary.BigEndian.Uint64(got) != want.Sum64() {
			t.Errorf("--key %s: %x, want %x", name, got, want.Sum64())
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	for _, spec := range []string{"nosuch", "src_addr,nosuch", "as_path", "src_net_labels"} {
		_, err := ParseKey(spec)
		if err == nil || !strings.HasPrefix(err.Error(), "publish: --key: ") {
			t.Errorf("%s: %v", spec, err)
		}
	}
	k, err := ParseKey(" src_dst , nat_pool_id ")
	if err != nil || k.String() != "src_addr,dst_addr,nat_pool_id" {
		t.Fatalf("%v %v", k, err)
	}
	m, buf := keyGoldFlow(), make([]byte, 0, KeySize)
	if allocs := testing.AllocsPerRun(100, func() { _ = k.Append(buf, m) }); allocs != 0 {
		t.Errorf("key: %v allocs", allocs)
	}
}
