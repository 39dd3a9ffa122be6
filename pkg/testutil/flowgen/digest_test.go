package flowgen

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// TestStreamDigest pins the exact bytes of the first packets of each test
// case, and the flows' times, ASPath and Communities, so that changes
// made for speed cannot change what a seed produces: decoder golden files
// elsewhere depend on it.
func TestStreamDigest(t *testing.T) {
	want := map[string]string{
		"netflow5":                "9437515d20fa4c0f356ebda7b41344f3939b064152e20cb4005402763cb02145",
		"netflow5-few":            "2d222d9d3152e0fa5d5d24e952987510b3595fa67f07dd60d06a69b363752449",
		"netflow9":                "1940dcdf87b054ad67ef97c29fe3413f9aa17cffc79287677ef91457dfd11947",
		"netflow9-ipv6-unsampled": "33feedfecddf71a76ddab2ef2b43d7e3ace48d96752e533fa800443bf5965765",
		"ipfix":                   "8a8ade95582fb107b0cda4042f5ae33a9c536ff48f990dd508ebac588ab3f8c6",
		"ipfix-benchmark":         "ec7837d079972aa7627be5554d69a916cf30339ecbf4ff34ed16883d68baa8cd",
		"sflow":                   "3bb752ab33511590246db70a45fea785103ef2b672026e92c05847d964ccdfa8",
		"sflow-ipv6-agent":        "e3556191446a0bf1d088081d83f64c526ba7c462245c9c0bf4de223b4a3cb335",
		"netflow5-pool":           "09fe1fd9f604aaed9e0d0d402071ccf69a6ac14a280871b63f9fc9d1eec80549",
		"netflow9-pool":           "d14b40b286fad60240ee1763692d89bc595885fd014bac8d3d4f9597ab8db340",
		"ipfix-pool":              "b1bee0a359d2b0b79f320f520037526dbc9b0a49d6361eb04f7f0e361bad5c55",
		"sflow-pool":              "5f98d63f6e290de972a0bc06a2c95e50edbf6244f8c37006f4648e4023f1eab7",
	}
	for _, tc := range testCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, c := generate(t, tc.cfg, 60)
			h := sha256.New()
			for i, pkt := range c.pkts {
				h.Write(pkt)
				for _, f := range c.flows[i] {
					var b []byte
					b = binary.BigEndian.AppendUint64(b, uint64(f.Start.UnixMilli()))
					b = binary.BigEndian.AppendUint64(b, uint64(f.End.UnixMilli()))
					for _, v := range f.ASPath {
						b = binary.BigEndian.AppendUint32(b, v)
					}
					b = append(b, 0xff)
					for _, v := range f.Communities {
						b = binary.BigEndian.AppendUint32(b, v)
					}
					h.Write(b)
				}
			}
			got := hex.EncodeToString(h.Sum(nil))
			if w := want[tc.name]; w != got {
				t.Errorf("digest %s, want %s", got, w)
			}
		})
	}
}
