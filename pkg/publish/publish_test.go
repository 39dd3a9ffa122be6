package publish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowpipe/flowpipe/pkg/flowpb"
	"github.com/flowpipe/flowpipe/pkg/framing"
)

func keyed(t *testing.T, spec string) *Keyer {
	k, err := ParseKey(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestInOrderPerKey(t *testing.T) {
	const n, samplers = 20000, 8
	c := newCluster(t)
	cfg := DefaultConfig()
	cfg.Key = keyed(t, "sampler_address")
	p, reg := newPublisher(t, c.ListenAddrs(), cfg)
	stream := binStream(t, n, samplers)
	if err := p.Run(context.Background(), bytes.NewReader(stream)); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Read != n || st.Produced != n || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	recs := consumeAll(t, c.ListenAddrs(), n)
	checkOrder(t, recs, n, samplers)

	// Bin input passes through byte for byte: the values concatenated are
	// the input stream, per partition in order.
	var total int
	for _, r := range recs {
		total += len(r.Value)
		if len(r.Key) != KeySize {
			t.Fatalf("key of %d bytes", len(r.Key))
		}
	}
	if total != len(stream) {
		t.Errorf("values hold %d bytes, the stream %d", total, len(stream))
	}
	if got := testutil.ToFloat64(p.m.recordsIn); got != n {
		t.Errorf("records_in %v", got)
	}
	if got := testutil.ToFloat64(p.m.produced); got != n {
		t.Errorf("produced %v", got)
	}
	if got := testutil.ToFloat64(p.m.bytesIn); int(got) >= len(stream) || got == 0 {
		t.Errorf("bytes_in %v (bodies of a %d-byte stream)", got, len(stream))
	}
	if cnt := testutil.CollectAndCount(reg, "flowpublish_batch_records"); cnt != 1 {
		t.Errorf("batch histogram: %d", cnt)
	}
}

func TestValueFormats(t *testing.T) {
	const n = 50
	var jsonIn bytes.Buffer
	for i := 0; i < n; i++ {
		jsonIn.Write(framing.AppendJSONLine(nil, testFlow(i, 1), nil))
	}
	binIn := binStream(t, n, 1)
	cases := []struct {
		name  string
		in    []byte
		value framing.Format
		key   string
	}{
		{"bin-to-bin", binIn, framing.FormatBin, "none"},
		{"json-to-bin", jsonIn.Bytes(), framing.FormatBin, "none"},
		{"bin-to-json", binIn, framing.FormatJSON, "none"},
		{"json-to-json", jsonIn.Bytes(), framing.FormatJSON, "none"},
		{"json-to-bin-keyed", jsonIn.Bytes(), framing.FormatBin, "src_dst"},
		{"bin-to-json-keyed", binIn, framing.FormatJSON, "src_dst,dst_port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			cfg := DefaultConfig()
			cfg.ValueFormat = tc.value
			cfg.Key = keyed(t, tc.key)
			p, _ := newPublisher(t, c.ListenAddrs(), cfg)
			if err := p.Run(context.Background(), bytes.NewReader(tc.in)); err != nil {
				t.Fatal(err)
			}
			recs := consumeAll(t, c.ListenAddrs(), n)
			if len(recs) != n {
				t.Fatalf("%d records", len(recs))
			}
			seen := map[uint64]bool{}
			for _, r := range recs {
				var m *flowpb.FlowMessage
				if tc.value == framing.FormatBin {
					m = decodeValue(t, r.Value)
				} else {
					m = &flowpb.FlowMessage{}
					if bytes.ContainsRune(r.Value, '\n') {
						t.Fatal("JSON value holds a newline")
					}
					if err := framing.ParseJSON(r.Value, m, nil); err != nil {
						t.Fatal(err)
					}
				}
				i := m.TimeReceivedNs - 1_700_000_000_000_000_000
				if !m.EqualVT(testFlow(int(i), 1)) {
					t.Fatalf("record %d changed on the way", i)
				}
				if want := cfg.Key.Append(nil, m); !bytes.Equal(r.Key, want) && (cfg.Key != nil || r.Key != nil) {
					t.Fatalf("record %d: key %x, want %x", i, r.Key, want)
				}
				seen[i] = true
			}
			if len(seen) != n {
				t.Fatalf("%d distinct records", len(seen))
			}
		})
	}
}

// TestBadInput: the records before a bad frame are all produced, then Run
// reports the frame's offset; on the pass-through path (no key) and the
// decoding one (keyed). With 100 and 101 good records before it, the bad
// frame is second and first of a pair the pass-through path checks
// together.
func TestBadInput(t *testing.T) {
	next := binStream(t, 1, 1)
	for _, tc := range []struct{ name, tail, want string }{
		{"truncated", "\x05\x01\x02", "truncated frame"},
		{"not-protobuf", "\x03\xff\xff\xff", "invalid protobuf message"},
		{"not-protobuf-then-good", "\x03\xff\xff\xff" + string(next), "invalid protobuf message"},
	} {
		for _, n := range []int{100, 101} {
			good := binStream(t, n, 1)
			for _, key := range []string{"none", "src_addr"} {
				t.Run(fmt.Sprintf("%s/good=%d/key=%s", tc.name, n, key), func(t *testing.T) {
					c := newCluster(t)
					cfg := DefaultConfig()
					cfg.Key = keyed(t, key)
					p, _ := newPublisher(t, c.ListenAddrs(), cfg)
					in := append(append([]byte{}, good...), tc.tail...)
					err := p.Run(context.Background(), bytes.NewReader(in))
					want := fmt.Sprintf("offset %d: %s", len(good), tc.want)
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Fatalf("want an error with %q, got %v", want, err)
					}
					if st := p.Stats(); st.Read != uint64(n) || st.Produced != uint64(n) {
						t.Fatalf("stats %+v", st)
					}
					if got := testutil.ToFloat64(p.m.inputErrors); got != 1 {
						t.Errorf("input errors %v", got)
					}
				})
			}
		}
	}
}

// TestStopOnCancel: cancelling stops a blocked read; everything read is
// still acknowledged and Run returns nil.
func TestStopOnCancel(t *testing.T) {
	c := newCluster(t)
	p, _ := newPublisher(t, c.ListenAddrs(), DefaultConfig())
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(binStream(t, 1000, 4)) // then the writer stays open
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, pr) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Read < 1000 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if st := p.Stats(); st.Read != 1000 || st.Produced != 1000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseKey(t *testing.T) {
	if k, err := ParseKey("none"); k != nil || err != nil {
		t.Fatal(k, err)
	}
	k := keyed(t, "src_dst,dst_port")
	if k.String() != "src_addr,dst_addr,dst_port" {
		t.Fatal(k.String())
	}
	if _, err := ParseKey("src_addr,nosuch"); err == nil || !strings.HasPrefix(err.Error(), "publish: ") {
		t.Fatal(err)
	}
	a, b := testFlow(1, 4), testFlow(5, 4) // same sampler, different addresses
	ks := keyed(t, "sampler_address")
	if !bytes.Equal(ks.Append(nil, a), ks.Append(nil, b)) {
		t.Error("same sampler, different keys")
	}
	if bytes.Equal(k.Append(nil, a), k.Append(nil, b)) {
		t.Error("different addresses, same key")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = k.Append(make([]byte, 0), a) }); allocs > 1 {
		t.Errorf("key: %v allocs", allocs)
	}
}

// chunkReader returns at most n bytes per Read, so frames straddle reads
// and slabs at every possible place.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(b []byte) (int, error) { return c.r.Read(b[:min(len(b), c.n)]) }

// TestPassThroughExact: bin in, bin out, no key (the zero-copy path), with
// reads cut at odd sizes and a frame larger than a slab: every value is
// exactly its input frame.
func TestPassThroughExact(t *testing.T) {
	const n = 30000
	var buf bytes.Buffer
	w := framing.NewWriter(&buf)
	for i := 0; i < n; i++ {
		m := testFlow(i, 5)
		if i == n/2 {
			m.SrcCountry = strings.Repeat("x", 3*slabSize/2) // a frame bigger than a slab
		}
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	stream := buf.Bytes()
	c := newCluster(t)
	p, _ := newPublisher(t, c.ListenAddrs(), DefaultConfig())
	if err := p.Run(context.Background(), chunkReader{bytes.NewReader(stream), 7919}); err != nil {
		t.Fatal(err)
	}
	recs := consumeAll(t, c.ListenAddrs(), n)
	if len(recs) != n {
		t.Fatalf("%d records", len(recs))
	}
	byTime := make([][]byte, n)
	for _, r := range recs {
		i := decodeValue(t, r.Value).TimeReceivedNs - 1_700_000_000_000_000_000
		if byTime[i] != nil {
			t.Fatalf("record %d twice", i)
		}
		byTime[i] = r.Value
	}
	if got := bytes.Join(byTime, nil); !bytes.Equal(got, stream) {
		t.Fatal("values are not the input frames byte for byte")
	}
}
