package flowgen

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// The readers below decode what the generator writes, straight from the
// protocol documents and without the package's own helpers or constants, and
// fail the test on any inconsistency of lengths, counts or padding.

// cursor reads big-endian values and fails the test on a short read.
type cursor struct {
	t    testing.TB
	what string
	b    []byte
	off  int
}

func (c *cursor) next(n int) []byte {
	c.t.Helper()
	if n < 0 || c.off+n > len(c.b) {
		c.t.Fatalf("%s: need %d bytes at offset %d, have %d", c.what, n, c.off, len(c.b)-c.off)
	}
	c.off += n
	return c.b[c.off-n : c.off]
}

func (c *cursor) left() int   { return len(c.b) - c.off }
func (c *cursor) u8() uint8   { return c.next(1)[0] }
func (c *cursor) u16() uint16 { return binary.BigEndian.Uint16(c.next(2)) }
func (c *cursor) u32() uint32 { return binary.BigEndian.Uint32(c.next(4)) }

func (c *cursor) uint(n int) uint64 {
	var v uint64
	for _, x := range c.next(n) {
		v = v<<8 | uint64(x)
	}
	return v
}

func (c *cursor) addr(n int) netip.Addr {
	a, ok := netip.AddrFromSlice(c.next(n))
	if !ok {
		c.t.Fatalf("%s: bad address length %d", c.what, n)
	}
	return a
}

func (c *cursor) mac() (m [6]byte) { copy(m[:], c.next(6)); return m }

// zeros checks that the rest, at most 3 bytes, is zero padding.
func (c *cursor) zeros() {
	c.t.Helper()
	p := c.next(c.left())
	if len(p) > 3 {
		c.t.Fatalf("%s: %d bytes left over at offset %d", c.what, len(p), c.off-len(p))
	}
	for _, x := range p {
		if x != 0 {
			c.t.Fatalf("%s: non-zero padding % x", c.what, p)
		}
	}
}

type v5Header struct {
	count              int
	uptime, secs, seq  uint32
	nsecs              uint32
	engineType, engine uint8
	sampling           uint16
}

func readV5(t testing.TB, pkt []byte) (v5Header, []Flow) {
	t.Helper()
	c := &cursor{t: t, what: "netflow v5", b: pkt}
	if v := c.u16(); v != 5 {
		t.Fatalf("netflow v5: version %d", v)
	}
	h := v5Header{count: int(c.u16()), uptime: c.u32(), secs: c.u32(), nsecs: c.u32(), seq: c.u32(),
		engineType: c.u8(), engine: c.u8(), sampling: c.u16()}
	if len(pkt) != 24+48*h.count || h.count > 30 {
		t.Fatalf("netflow v5: %d bytes for %d records", len(pkt), h.count)
	}
	bootMs := int64(h.secs)*1000 + int64(h.nsecs)/1e6 - int64(h.uptime)
	flows := make([]Flow, h.count)
	for i := range flows {
		f := &flows[i]
		f.SrcAddr, f.DstAddr, f.NextHop = c.addr(4), c.addr(4), c.addr(4)
		f.InIf, f.OutIf = uint32(c.u16()), uint32(c.u16())
		f.Packets, f.Bytes = uint64(c.u32()), uint64(c.u32())
		f.Start, f.End = time.UnixMilli(bootMs+int64(c.u32())).UTC(), time.UnixMilli(bootMs+int64(c.u32())).UTC()
		f.SrcPort, f.DstPort = c.u16(), c.u16()
		if c.u8() != 0 {
			t.Fatal("netflow v5: pad1 not zero")
		}
		f.TCPFlags, f.Proto, f.TOS = c.u8(), c.u8(), c.u8()
		f.SrcAS, f.DstAS = uint32(c.u16()), uint32(c.u16())
		f.SrcMask, f.DstMask = c.u8(), c.u8()
		if c.u16() != 0 {
			t.Fatal("netflow v5: pad2 not zero")
		}
		f.SamplingRate = uint32(h.sampling & 0x3fff)
	}
	return h, flows
}

type tmplField struct {
	id, length uint16
	pen        uint32
}

// nfReader decodes NetFlow v9 or IPFIX packets, keeping templates and the
// sampling rate from options data between packets, as a collector does.
type nfReader struct {
	t         testing.TB
	ipfix     bool
	templates map[uint16][]tmplField
	scopes    map[uint16]int // options templates: scope field count
	sampling  uint32
}

func newNFReader(t testing.TB, ipfix bool) *nfReader {
	return &nfReader{t: t, ipfix: ipfix, templates: map[uint16][]tmplField{}, scopes: map[uint16]int{}}
}

type nfPacket struct {
	count                 int // v9 header count
	length                int // IPFIX header length
	uptime, secs, seq, id uint32
	setIDs                []uint16
	templateIDs           []uint16
	records               int // data records, options data included
	flows                 []Flow
}

func (r *nfReader) read(pkt []byte) nfPacket {
	t := r.t
	t.Helper()
	what := "netflow v9"
	if r.ipfix {
		what = "ipfix"
	}
	c := &cursor{t: t, what: what, b: pkt}
	var p nfPacket
	version := c.u16()
	if r.ipfix {
		p.length = int(c.u16())
		p.secs, p.seq, p.id = c.u32(), c.u32(), c.u32()
		if version != 10 || p.length != len(pkt) {
			t.Fatalf("ipfix: version %d, length %d for %d bytes", version, p.length, len(pkt))
		}
	} else {
		p.count = int(c.u16())
		p.uptime, p.secs, p.seq, p.id = c.u32(), c.u32(), c.u32(), c.u32()
		if version != 9 {
			t.Fatalf("netflow v9: version %d", version)
		}
	}
	bootMs := int64(p.secs)*1000 - int64(p.uptime)
	tmplSet, optSet := uint16(0), uint16(1)
	if r.ipfix {
		tmplSet, optSet = 2, 3
	}
	all := 0 // v9 counts every record, templates included
	for c.left() > 0 {
		id, length := c.u16(), int(c.u16())
		if length < 4 || length%4 != 0 {
			t.Fatalf("%s: set %d length %d", what, id, length)
		}
		s := &cursor{t: t, what: fmt.Sprintf("%s set %d", what, id), b: c.next(length - 4)}
		p.setIDs = append(p.setIDs, id)
		switch {
		case id == tmplSet:
			for s.left() >= 4 {
				tid, n := s.u16(), int(s.u16())
				r.templates[tid] = r.fieldSpecs(s, n)
				p.templateIDs = append(p.templateIDs, tid)
				all++
			}
		case id == optSet:
			tid := s.u16()
			var scope, n int
			if r.ipfix {
				n = int(s.u16())
				scope = int(s.u16())
			} else {
				scopeLen, optLen := int(s.u16()), int(s.u16())
				scope, n = scopeLen/4, scopeLen/4+optLen/4
			}
			r.templates[tid], r.scopes[tid] = r.fieldSpecs(s, n), scope
			p.templateIDs = append(p.templateIDs, tid)
			all++
		case id >= 256:
			fs, ok := r.templates[id]
			if !ok {
				t.Fatalf("%s: data set %d before its template", what, id)
			}
			minLen := 0
			for _, f := range fs {
				if f.length == 0xffff {
					minLen++
				} else {
					minLen += int(f.length)
				}
			}
			for s.left() >= minLen && s.left() >= 4 {
				if _, isOptions := r.scopes[id]; isOptions {
					r.readOptions(s, fs)
				} else {
					p.flows = append(p.flows, r.readRecord(s, fs, bootMs))
				}
				p.records++
				all++
			}
		default:
			t.Fatalf("%s: unexpected set ID %d", what, id)
		}
		s.zeros()
	}
	if !r.ipfix && p.count != all {
		t.Fatalf("netflow v9: header count %d, %d records", p.count, all)
	}
	return p
}

func (r *nfReader) fieldSpecs(s *cursor, n int) []tmplField {
	fs := make([]tmplField, n)
	for i := range fs {
		fs[i] = tmplField{id: s.u16(), length: s.u16()}
		if r.ipfix && fs[i].id&0x8000 != 0 {
			fs[i].id &^= 0x8000
			fs[i].pen = s.u32()
		}
		if !r.ipfix && fs[i].length == 0xffff {
			r.t.Fatal("netflow v9: variable-length field")
		}
	}
	return fs
}

func (r *nfReader) readOptions(s *cursor, fs []tmplField) {
	var interval, space uint32
	for _, f := range fs {
		v := uint32(s.uint(int(f.length)))
		switch f.id {
		case 34:
			r.sampling = v
		case 305:
			interval = v
		case 306:
			space = v
		}
	}
	if r.ipfix && interval > 0 && (interval+space)/interval != r.sampling {
		r.t.Fatalf("ipfix: samplingInterval %d but packet interval %d and space %d", r.sampling, interval, space)
	}
}

func (r *nfReader) readRecord(s *cursor, fs []tmplField, bootMs int64) Flow {
	t := r.t
	var f Flow
	var ifName string
	for _, fd := range fs {
		n := int(fd.length)
		if fd.pen != 0 {
			s.next(n) // unknown enterprise element: skip
			continue
		}
		switch fd.id {
		case 1:
			f.Bytes = s.uint(n)
		case 2:
			f.Packets = s.uint(n)
		case 4:
			f.Proto = uint8(s.uint(n))
		case 5:
			f.TOS = uint8(s.uint(n))
		case 6:
			f.TCPFlags = uint8(s.uint(n))
		case 7:
			f.SrcPort = uint16(s.uint(n))
		case 11:
			f.DstPort = uint16(s.uint(n))
		case 8, 27:
			f.SrcAddr = s.addr(n)
		case 12, 28:
			f.DstAddr = s.addr(n)
		case 15, 62:
			f.NextHop = s.addr(n)
		case 9, 29:
			f.SrcMask = uint8(s.uint(n))
		case 13, 30:
			f.DstMask = uint8(s.uint(n))
		case 10:
			f.InIf = uint32(s.uint(n))
		case 14:
			f.OutIf = uint32(s.uint(n))
		case 16:
			f.SrcAS = uint32(s.uint(n))
		case 17:
			f.DstAS = uint32(s.uint(n))
		case 31:
			f.FlowLabel = uint32(s.uint(n))
		case 22:
			f.Start = time.UnixMilli(bootMs + int64(s.uint(n))).UTC()
		case 21:
			f.End = time.UnixMilli(bootMs + int64(s.uint(n))).UTC()
		case 152:
			f.Start = time.UnixMilli(int64(s.uint(n))).UTC()
		case 153:
			f.End = time.UnixMilli(int64(s.uint(n))).UTC()
		case 56:
			f.SrcMAC = s.mac()
		case 80:
			f.DstMAC = s.mac()
		case 58:
			f.VLAN = uint16(s.uint(n))
		case 82:
			if n != 0xffff {
				t.Fatalf("interfaceName length %d", n)
			}
			l := int(s.u8())
			if l == 255 {
				l = int(s.u16())
			}
			ifName = string(s.next(l))
		default:
			t.Fatalf("unexpected element %d", fd.id)
		}
	}
	if ifName != "" && ifName != "ge-0/0/"+strconv.Itoa(int(f.InIf)) {
		t.Fatalf("interfaceName %q for ifIndex %d", ifName, f.InIf)
	}
	f.SamplingRate = r.sampling
	return f
}

type sflowDatagram struct {
	agent                 netip.Addr
	subAgent, seq, uptime uint32
	flowSeqs, counterSeqs []uint32
	formats               []uint32
	flows                 []Flow
}

// readSFlow decodes an sFlow v5 datagram; exported is its export time,
// which flows report as start and end.
func readSFlow(t testing.TB, pkt []byte, exported time.Time) sflowDatagram {
	t.Helper()
	c := &cursor{t: t, what: "sflow", b: pkt}
	var d sflowDatagram
	if v := c.u32(); v != 5 {
		t.Fatalf("sflow: version %d", v)
	}
	d.agent = readSFlowAddr(c)
	d.subAgent, d.seq, d.uptime = c.u32(), c.u32(), c.u32()
	n := int(c.u32())
	for range n {
		format, length := c.u32(), int(c.u32())
		if length%4 != 0 {
			t.Fatalf("sflow: sample length %d", length)
		}
		s := &cursor{t: t, what: fmt.Sprintf("sflow sample %d", format), b: c.next(length)}
		d.formats = append(d.formats, format)
		switch format {
		case 1, 3:
			f, seq := readFlowSample(s, format == 3)
			f.Start, f.End = exported.Truncate(time.Millisecond), exported.Truncate(time.Millisecond)
			d.flows = append(d.flows, f)
			d.flowSeqs = append(d.flowSeqs, seq)
		case 2:
			d.counterSeqs = append(d.counterSeqs, s.u32())
			s.u32() // source ID
			for range s.u32() {
				rf, rl := s.u32(), int(s.u32())
				if rf != 1 || rl != 88 {
					t.Fatalf("sflow: counter record %d of length %d", rf, rl)
				}
				s.next(rl)
			}
		default:
			t.Fatalf("sflow: unexpected sample format %d", format)
		}
		if s.left() != 0 {
			t.Fatalf("sflow: %d bytes left in sample %d", s.left(), format)
		}
	}
	if c.left() != 0 {
		t.Fatalf("sflow: %d bytes after %d samples", c.left(), n)
	}
	return d
}

func readSFlowAddr(c *cursor) netip.Addr {
	switch typ := c.u32(); typ {
	case 1:
		return c.addr(4)
	case 2:
		return c.addr(16)
	default:
		c.t.Fatalf("sflow: address type %d", typ)
	}
	return netip.Addr{}
}

func readFlowSample(s *cursor, expanded bool) (Flow, uint32) {
	t := s.t
	var f Flow
	seq := s.u32()
	if expanded {
		if s.u32() != 0 {
			t.Fatal("sflow: source ID type")
		}
		s.u32()
	} else {
		s.u32()
	}
	f.SamplingRate = s.u32()
	s.u32() // pool
	s.u32() // drops
	if expanded {
		if s.u32() != 0 {
			t.Fatal("sflow: input format")
		}
		f.InIf = s.u32()
		if s.u32() != 0 {
			t.Fatal("sflow: output format")
		}
		f.OutIf = s.u32()
	} else {
		f.InIf, f.OutIf = s.u32(), s.u32()
	}
	headerVLAN := -1
	for range s.u32() {
		format, length := s.u32(), int(s.u32())
		r := &cursor{t: t, what: fmt.Sprintf("sflow record %d", format), b: s.next(length)}
		switch format {
		case 1:
			if p := r.u32(); p != 1 {
				t.Fatalf("sflow: header protocol %d", p)
			}
			frameLen, stripped, hdrLen := int(r.u32()), int(r.u32()), int(r.u32())
			if stripped != 4 || hdrLen > frameLen-stripped {
				t.Fatalf("sflow: frame %d, stripped %d, header %d", frameLen, stripped, hdrLen)
			}
			f.Bytes, f.Packets = uint64(frameLen), 1
			headerVLAN = readFrame(&cursor{t: t, what: "sampled frame", b: r.next(hdrLen)}, &f, frameLen-stripped)
			r.zeros()
		case 1001:
			f.VLAN = uint16(r.u32())
			r.u32()
			if v := uint16(r.u32()); v != f.VLAN {
				t.Fatalf("sflow: src vlan %d, dst vlan %d", f.VLAN, v)
			}
			r.u32()
		case 1002:
			f.NextHop = readSFlowAddr(r)
			f.SrcMask, f.DstMask = uint8(r.u32()), uint8(r.u32())
		case 1003:
			readSFlowAddr(r)
			r.u32() // router AS
			f.SrcAS = r.u32()
			r.u32() // peer AS
			for range r.u32() {
				r.u32() // segment type
				for range r.u32() {
					f.ASPath = append(f.ASPath, r.u32())
				}
			}
			if len(f.ASPath) > 0 {
				f.DstAS = f.ASPath[len(f.ASPath)-1]
			}
			for range r.u32() {
				f.Communities = append(f.Communities, r.u32())
			}
			r.u32() // local preference
		default:
			t.Fatalf("sflow: unexpected record %d", format)
		}
		if r.left() != 0 {
			t.Fatalf("sflow: %d bytes left in record %d", r.left(), format)
		}
	}
	if headerVLAN != int(f.VLAN) {
		t.Fatalf("sflow: header VLAN %d, extended switch VLAN %d", headerVLAN, f.VLAN)
	}
	return f, seq
}

// readFrame decodes the sampled Ethernet frame, frameLen bytes long
// before truncation, and returns its VLAN (0 if untagged).
func readFrame(c *cursor, f *Flow, frameLen int) int {
	t := c.t
	f.DstMAC, f.SrcMAC = c.mac(), c.mac()
	etype, vlan := c.u16(), 0
	if etype == 0x8100 {
		vlan = int(c.u16() & 0xfff)
		etype = c.u16()
	}
	l3 := frameLen - c.off
	switch etype {
	case 0x0800:
		ip := c.next(20)
		if ip[0] != 0x45 || int(binary.BigEndian.Uint16(ip[2:])) != l3 {
			t.Fatalf("ipv4 header % x for %d bytes", ip, l3)
		}
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		if sum != 0xffff {
			t.Fatalf("ipv4 header checksum % x", ip)
		}
		f.TOS, f.Proto = ip[1], ip[9]
		f.SrcAddr, _ = netip.AddrFromSlice(ip[12:16])
		f.DstAddr, _ = netip.AddrFromSlice(ip[16:20])
		l3 -= 20
	case 0x86dd:
		w := c.u32()
		if w>>28 != 6 || int(c.u16()) != l3-40 {
			t.Fatal("ipv6 header")
		}
		f.TOS, f.FlowLabel = uint8(w>>20), w&0xfffff
		f.Proto = c.u8()
		c.u8()
		f.SrcAddr, f.DstAddr = c.addr(16), c.addr(16)
		l3 -= 40
	default:
		t.Fatalf("ethertype %#x", etype)
	}
	switch f.Proto {
	case 6:
		f.SrcPort, f.DstPort = c.u16(), c.u16()
		c.next(9)
		f.TCPFlags = c.u8()
		c.next(6)
	case 17:
		f.SrcPort, f.DstPort = c.u16(), c.u16()
		if int(c.u16()) != l3 {
			t.Fatal("udp length")
		}
		c.u16()
	case 1, 58:
		f.DstPort = c.u16()
		c.next(6)
	default:
		t.Fatalf("protocol %d", f.Proto)
	}
	return vlan
}
