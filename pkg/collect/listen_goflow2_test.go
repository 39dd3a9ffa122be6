package collect

import (
	"strings"
	"testing"
)

// TestGoflow2ListenURIs parses the listen URIs of goflow2's README and
// cmd/goflow2/main.go: accepted, with count and workers taken, and a note
// naming flowpipe's setting for blocking and queue_size.
func TestGoflow2ListenURIs(t *testing.T) {
	for _, c := range []struct {
		uri            string
		count, workers int
		notes          []string
	}{
		{"sflow://:6343?count=4&blocking=false&queue_size=1000000&workers=8", 4, 8, []string{"--queue-wait", "--queue"}},
		{"netflow://:2055?count=1", 1, 0, nil},
		{"netflow://[::]:2055?blocking=true", 1, 0, []string{"raise --queue-wait"}},
		{"sflow://127.0.0.1:6343?workers=2&rcvbuf=1048576", 1, 2, nil},
	} {
		l, err := ParseListen(c.uri, 0)
		if err != nil {
			t.Errorf("%s: %v", c.uri, err)
			continue
		}
		if l.Count != c.count || l.Workers != c.workers || len(l.Notes()) != len(c.notes) {
			t.Errorf("%s: count %d workers %d notes %q", c.uri, l.Count, l.Workers, l.Notes())
			continue
		}
		for i, n := range c.notes {
			if !strings.Contains(l.Notes()[i], n) {
				t.Errorf("%s: note %q does not name %s", c.uri, l.Notes()[i], n)
			}
		}
	}
	for _, bad := range []string{"sflow://:6343?blocking=maybe", "sflow://:6343?queue_size=-1", "sflow://:6343?workers=x", "sflow://:6343?colour=red"} {
		if _, err := ParseListen(bad, 0); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
