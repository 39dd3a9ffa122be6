package framing

import (
	"strings"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// Clone returns a copy of m that shares no memory with it. A record from
// MessageReader.Read points into the reader's buffer; CloneVT copies its
// byte fields but not its strings, which would still change under the
// copy at the next Read. Use Clone to keep a record.
func Clone(m *flowpb.FlowMessage) *flowpb.FlowMessage {
	c := m.CloneVT()
	for _, s := range []*string{
		&c.SrcCountry, &c.DstCountry, &c.SrcAsName, &c.DstAsName,
		&c.SrcNetName, &c.DstNetName, &c.SrcNetPrefix, &c.DstNetPrefix,
	} {
		*s = strings.Clone(*s)
	}
	c.SrcNetLabels = cloneLabels(c.SrcNetLabels)
	c.DstNetLabels = cloneLabels(c.DstNetLabels)
	return c
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[strings.Clone(k)] = strings.Clone(v)
	}
	return c
}
