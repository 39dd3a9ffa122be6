package flowgen_test

import (
	"fmt"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// A decoder test feeds the template packet, then data packets, and compares
// what it decodes with the flows Next returns.
func Example() {
	g, err := flowgen.New(flowgen.Config{Protocol: flowgen.IPFIX, Seed: 1, SamplingRate: 100})
	if err != nil {
		panic(err)
	}
	tmpl, flows := g.Next() // templates come first
	fmt.Println(len(tmpl), len(flows))
	pkt, flows := g.Next()
	f := flows[0]
	fmt.Println(len(pkt), len(flows))
	fmt.Println(f.SrcAddr, f.SrcPort, "->", f.DstAddr, f.DstPort, f.Proto, f.Bytes, f.Packets, f.SamplingRate)
	// Output:
	// 248 0
	// 2260 28
	// 10.23.198.157 50651 -> 63.62.243.138 5060 6 67156 103 100
}
