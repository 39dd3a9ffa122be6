package template

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/decode"
)

func newCache(cfg Config) *Cache[int] {
	return New(cfg, func(_ Key, s *Spec) (int, error) { return len(s.Fields), nil })
}

var ex = netip.MustParseAddr("192.0.2.1")

func spec(n int) Spec {
	s := Spec{}
	for i := 0; i < n; i++ {
		s.Fields = append(s.Fields, Field{ID: uint16(i + 1), Length: 4})
	}
	return s
}

func TestExpiryRefreshAndLimits(t *testing.T) {
	c := newCache(Config{TTL: time.Minute, MaxPerExporter: 2, MaxTotal: 3})
	k := Key{ex, 10, 1, 256}
	if _, changed, err := c.Put(k, spec(2), 0); err != nil || !changed {
		t.Fatal(changed, err)
	}
	if _, changed, _ := c.Put(k, spec(2), uint64(50*time.Second)); changed {
		t.Fatal("same template reported changed")
	}
	if c.Get(k, uint64(100*time.Second)) == nil {
		t.Fatal("refreshed template expired")
	}
	if c.Get(k, uint64(200*time.Second)) != nil || c.Stats().Expired != 1 {
		t.Fatalf("not expired: %+v", c.Stats())
	}
	c.Put(Key{ex, 10, 1, 256}, spec(1), 0)
	c.Put(Key{ex, 10, 1, 257}, spec(1), 0)
	if _, _, err := c.Put(Key{ex, 10, 1, 258}, spec(1), 0); !errors.Is(err, decode.ErrLimit) {
		t.Fatalf("per-exporter limit: %v", err)
	}
	c.Put(Key{netip.MustParseAddr("192.0.2.2"), 10, 1, 256}, spec(1), 0)
	if _, _, err := c.Put(Key{netip.MustParseAddr("192.0.2.3"), 10, 1, 256}, spec(1), 0); !errors.Is(err, decode.ErrLimit) {
		t.Fatalf("total limit: %v", err)
	}
	if st := c.Stats(); st.LimitHits != 2 || st.Templates != 3 {
		t.Fatalf("%+v", st)
	}
}

func TestPendingBounds(t *testing.T) {
	c := newCache(Config{PendingSets: 2, PendingBytes: 100, PendingAge: time.Second})
	k := Key{ex, 10, 1, 256}
	for i := 0; i < 3; i++ {
		if err := c.Hold(Held{Key: k, Data: make([]byte, 10), ReceivedNs: uint64(i)}, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.PendingSets != 2 || st.PendingDropped != 1 {
		t.Fatalf("count bound: %+v", st)
	}
	if err := c.Hold(Held{Key: k, Data: make([]byte, 101)}, 3); err == nil {
		t.Fatal("oversized set held")
	}
	if got := c.Release(k, uint64(2*time.Second)); len(got) != 0 {
		t.Fatalf("aged sets released: %d", len(got))
	}
	c.Hold(Held{Key: k, Data: []byte{1}, ReceivedNs: 5}, 5)
	c.Hold(Held{Key: Key{ex, 10, 1, 300}, Data: []byte{2}, ReceivedNs: 5}, 5)
	if got := c.Release(k, 6); len(got) != 1 || got[0].Data[0] != 1 {
		t.Fatalf("release: %v", got)
	}
	if st := c.Stats(); st.PendingSets != 1 || st.PendingBytes != 1 || st.PendingDecoded != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c := newCache(Config{})
	c.Put(Key{ex, 9, 3, 256}, spec(3), 10)
	c.Put(Key{netip.MustParseAddr("2001:db8::1"), 10, 7, 300},
		Spec{Options: true, ScopeFields: 1, Fields: []Field{{ID: 149, Length: 4}, {ID: 82, Length: VariableLength}, {ID: 5, Length: 2, PEN: 29305}}}, 20)
	var buf bytes.Buffer
	if err := c.Save(&buf); err != nil {
		t.Fatal(err)
	}
	c2 := newCache(Config{})
	if n, err := c2.Load(bytes.NewReader(buf.Bytes()), 0); n != 2 || err != nil {
		t.Fatalf("load: %d %v", n, err)
	}
	var buf2 bytes.Buffer
	c2.Save(&buf2)
	if buf.String() != buf2.String() {
		t.Fatalf("round trip differs:\n%s\n%s", buf.String(), buf2.String())
	}
	for _, bad := range []string{"", "{}", `{"format":"flowpipe-templates","version":2,"templates":[]}`,
		`{"format":"flowpipe-templates","version":1,"templates":[{"exporter":"192.0.2.1","version":9,"domain":0,"id":12,"fields":[[1,4,0]],"seen_ns":0}]}`} {
		if _, err := newCache(Config{}).Load(strings.NewReader(bad), 0); err == nil {
			t.Errorf("%q loaded", bad)
		}
	}
}

// FuzzTemplateLoad: Load never panics on arbitrary input; what it loads
// saves and loads again to the same templates.
func FuzzTemplateLoad(f *testing.F) {
	c := newCache(Config{})
	c.Put(Key{ex, 9, 3, 256}, spec(3), 10)
	c.Put(Key{ex, 10, 1, 257}, Spec{Options: true, ScopeFields: 1, Fields: []Field{{ID: 149, Length: 4}, {ID: 34, Length: 4}}}, 10)
	var buf bytes.Buffer
	c.Save(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":"flowpipe-templates","version":1,"templates":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newCache(Config{})
		n, err := c.Load(bytes.NewReader(data), 0)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := c.Save(&out); err != nil {
			t.Fatal(err)
		}
		c2 := newCache(Config{})
		if n2, err := c2.Load(&out, 0); err != nil || n2 != int(c.Stats().Templates) || n2 > n {
			t.Fatalf("reload: %d of %d: %v", n2, n, err)
		}
	})
}

// TestRefreshDoesNotAllocate: exporters resend unchanged templates every
// few seconds; storing one again must not allocate.
func TestRefreshDoesNotAllocate(t *testing.T) {
	c := newCache(Config{TTL: time.Minute, MaxPerExporter: 2, MaxTotal: 3})
	k := Key{ex, 10, 1, 256}
	s := spec(20)
	if _, changed, err := c.Put(k, s, 0); err != nil || !changed {
		t.Fatal(changed, err)
	}
	now := uint64(0)
	if n := testing.AllocsPerRun(100, func() {
		now++
		if _, changed, err := c.Put(k, s, now); err != nil || changed {
			t.Fatal(changed, err)
		}
	}); n != 0 {
		t.Fatalf("refresh allocates %v times", n)
	}
}
