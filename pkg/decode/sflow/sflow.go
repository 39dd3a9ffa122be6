// Package sflow decodes sFlow v5 datagrams (sflow.org/sflow_version_5.txt)
// into flow records.
//
// Flow samples and expanded flow samples become one FlowMessage each,
// filled as goflow2 v2.2.6's producer fills them (type SFLOW_5,
// sampler_address = agent address, sequence_num = datagram sequence,
// bytes = frame length, packets = 1, the sampled header parsed through its
// layers, the extended switch/router/gateway records). Counter samples are
// parsed, counted and optionally handed to Config.OnCounters; they never
// become flows.
//
// Where goflow2 v2.2.6 is wrong this package is not (each is a test case):
//   - ICMP and ICMPv6 type/code are set (goflow2 never sets them for sFlow);
//   - vlan_id is the 12-bit VLAN ID, without the priority bits, and 802.1ad
//     (0x88a8) and 0x9100 outer tags are walked like 802.1Q;
//   - the IPv4 header length comes from IHL (options are skipped), GRE
//     optional fields are skipped, IPv6 hop-by-hop and destination options
//     are walked (their bytes are added to the previous layer's layer_size),
//     and proto is the upper-layer protocol after IPv6 extension headers;
//   - ports and flags are not read from non-first fragments;
//   - TCP's layer_size is its header length (goflow2 reads the flags byte);
//   - raw IPv4 (11) and IPv6 (12) header protocols are parsed, sampled
//     IPv4/IPv6 records set tcp_flags, sampled Ethernet records set MACs and
//     etype;
//   - interface format bits are decoded: out_if format 1 (discarded) sets
//     forwarding_status 128 ("dropped", RFC 7270) and out_if 0, format 2
//     (several interfaces) sets out_if 0;
//   - an AS path of several segments is read whole;
//   - Ethernet over MPLS (with or without a control word) and VXLAN are
//     walked (goflow2 stops after the label stack and at UDP).
//
// Sampled headers are read by package packet, the parser NetFlow v9 and
// IPFIX packet sections use too. layer_stack and layer_size otherwise
// follow goflow2, including its habit of adding a 0 to layer_size, and
// nothing to layer_stack, for a layer too short to parse.
package sflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// Default limits. sFlow agents send a few samples of a few records each;
// these leave room for any real agent while bounding what a lying datagram
// can make the decoder do.
const (
	DefaultMaxSamples     = 1024
	DefaultMaxRecords     = 64
	DefaultMaxASPath      = 256
	DefaultMaxCommunities = 256
	DefaultMaxLabels      = 16
	DefaultMaxHeaderBytes = 1024
)

// maxErrors bounds the errors kept for one datagram: past that many bad
// samples the rest of the datagram is not worth decoding.
const maxErrors = 8

// maxAgents bounds the sequence-tracking table; when full it is cleared.
const maxAgents = 1 << 14

// Config tunes a Decoder. The zero value is usable: zero limits mean the
// defaults above.
type Config struct {
	// MaxSamples is the largest number of samples decoded per datagram;
	// the samples past it are dropped with an ErrLimit error.
	MaxSamples int
	// MaxRecords is the largest record count a sample may declare; a
	// sample declaring more is dropped with an ErrLimit error.
	MaxRecords int
	// MaxASPath and MaxCommunities bound an extended gateway record; a
	// record over either drops its sample with an ErrLimit error.
	MaxASPath      int
	MaxCommunities int
	// MaxLabels bounds the MPLS label stack read from a sampled header;
	// deeper labels end the header parse (the flow is still emitted).
	MaxLabels int
	// MaxHeaderBytes bounds how much of a sampled header is parsed; the
	// rest is ignored (the flow is still emitted).
	MaxHeaderBytes int

	// Packet extends the walk of sampled headers: port parsers and a
	// visitor mapping layer bits into fields (mapping.PacketOptions). Nil:
	// none. Not shared between decoders.
	Packet *packet.Options

	// Observer receives datagram sequence gaps and resets, per agent
	// address and sub-agent. Nil means decode.NopObserver.
	Observer decode.Observer

	// OnCounters, when set, receives each counter sample (compact or
	// expanded). The record and what it points to belong to the decoder
	// and are reused: copy what you keep before returning.
	OnCounters func(*CounterRecord)
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxSamples, DefaultMaxSamples)
	def(&c.MaxRecords, DefaultMaxRecords)
	def(&c.MaxASPath, DefaultMaxASPath)
	def(&c.MaxCommunities, DefaultMaxCommunities)
	def(&c.MaxLabels, DefaultMaxLabels)
	def(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	if c.Observer == nil {
		c.Observer = decode.NopObserver{}
	}
	return c
}

// Stats are a decoder's running totals. The collector reads them at
// scrape time from another goroutine: Decoder.Stats is safe for that.
type Stats struct {
	Datagrams              uint64 // datagrams whose header decoded
	FlowSamples            uint64 // compact flow samples seen (format 1)
	ExpandedFlowSamples    uint64 // expanded flow samples seen (format 3)
	CounterSamples         uint64 // compact counter samples seen (format 2)
	ExpandedCounterSamples uint64 // expanded counter samples seen (format 4)
	OtherSamples           uint64 // other formats or enterprises, skipped
	BadSamples             uint64 // samples dropped as malformed or over a limit
	Flows                  uint64 // flows emitted
}

type stats struct {
	datagrams, flow, expFlow, counter, expCounter, other, bad, flows atomic.Uint64
}

// Decoder decodes sFlow v5 datagrams. It is not safe for concurrent use
// (Stats excepted): run one per worker.
type Decoder struct {
	cfg Config
	msg flowpb.FlowMessage
	// AppendRecords' output: flows go into out instead of to an Emit.
	out      []byte
	outN     int
	appendTo bool
	wide     bool // the last frame's length took two bytes
	consts   sampleConsts
	cr       CounterRecord
	ifc      IfCounters
	ethc     EthernetCounters
	seqs     map[seqKey]uint32
	stats    stats
}

type seqKey struct {
	agent netip.Addr
	sub   uint32
}

// NewDecoder returns a decoder with cfg's limits (zero fields take the
// defaults).
func NewDecoder(cfg Config) *Decoder {
	d := &Decoder{cfg: cfg.withDefaults(), seqs: make(map[seqKey]uint32)}
	d.consts.custom = cfg.Packet != nil && cfg.Packet.Visitor != nil
	return d
}

// Stats returns the running totals.
func (d *Decoder) Stats() Stats {
	s := &d.stats
	return Stats{
		Datagrams:              s.datagrams.Load(),
		FlowSamples:            s.flow.Load(),
		ExpandedFlowSamples:    s.expFlow.Load(),
		CounterSamples:         s.counter.Load(),
		ExpandedCounterSamples: s.expCounter.Load(),
		OtherSamples:           s.other.Load(),
		BadSamples:             s.bad.Load(),
		Flows:                  s.flows.Load(),
	}
}

// Sample formats (enterprise 0).
const (
	formatFlow            = 1
	formatCounter         = 2
	formatExpandedFlow    = 3
	formatExpandedCounter = 4
)

// datagram is what every flow of one datagram shares.
type datagram struct {
	agent      [16]byte
	agentLen   int
	sub        uint32
	seq        uint32
	receivedNs uint64
}

// counts are accumulated per datagram and added to the atomics once.
type counts struct {
	flow, expFlow, counter, expCounter, other, bad, flows uint64
}

// Decode emits one flow per flow sample of p. A bad sample is skipped and
// decoding goes on with the next one (a sample's length frames it); a
// sample whose length runs past the datagram ends the datagram. The error
// joins what was skipped, each a *decode.Error whose Domain is the
// sub-agent ID.
func (d *Decoder) Decode(p decode.Packet, emit decode.Emit) error {
	b := p.Data
	fail := func(sub uint32, err error) error {
		return &decode.Error{Protocol: decode.SFlowV5, Exporter: p.Exporter, Domain: sub, Err: err}
	}
	if len(b) < 8 {
		return fail(0, fmt.Errorf("datagram of %d bytes: %w", len(b), decode.ErrTruncated))
	}
	if v := be32(b); v != 5 {
		return fail(0, fmt.Errorf("version %d: %w", v, decode.ErrVersion))
	}
	var dg datagram
	dg.receivedNs = p.ReceivedNs
	d.consts.ready = false
	var agent netip.Addr
	off := 8
	switch t := be32(b[4:]); t {
	case 1:
		dg.agentLen = 4
	case 2:
		dg.agentLen = 16
	default:
		return fail(0, fmt.Errorf("agent address type %d: %w", t, decode.ErrMalformed))
	}
	if len(b) < off+dg.agentLen+16 {
		return fail(0, fmt.Errorf("datagram header of %d bytes: %w", len(b), decode.ErrTruncated))
	}
	copy(dg.agent[:], b[off:off+dg.agentLen])
	if dg.agentLen == 4 {
		agent = netip.AddrFrom4([4]byte(dg.agent[:4]))
	} else {
		agent = netip.AddrFrom16(dg.agent)
	}
	off += dg.agentLen
	dg.sub = be32(b[off:])
	dg.seq = be32(b[off+4:])
	// b[off+8:] is the agent's uptime, unused.
	nSamples := be32(b[off+12:])
	off += 16

	d.stats.datagrams.Add(1)
	d.sequence(agent, dg.sub, dg.seq)

	var c counts
	var errs []error
	n := int(min(nSamples, uint32(d.cfg.MaxSamples)))
	done := true
	for i := 0; i < n; i++ {
		done = false
		if len(b)-off < 8 {
			errs = append(errs, fail(dg.sub, fmt.Errorf("sample %d of %d: datagram ends: %w", i, nSamples, decode.ErrTruncated)))
			break
		}
		format, length := be32(b[off:]), be32(b[off+4:])
		off += 8
		if uint64(length) > uint64(len(b)-off) {
			errs = append(errs, fail(dg.sub, fmt.Errorf("sample %d length %d > %d bytes left: %w", i, length, len(b)-off, decode.ErrTruncated)))
			break
		}
		sample := b[off : off+int(length)]
		off += int(length)
		if err := d.sample(&dg, format, sample, emit, &c); err != nil {
			c.bad++
			errs = append(errs, fail(dg.sub, fmt.Errorf("sample %d (format %d): %w", i, format, err)))
			if len(errs) >= maxErrors {
				break
			}
		}
		done = true
	}
	if done && uint64(nSamples) > uint64(n) {
		errs = append(errs, fail(dg.sub, fmt.Errorf("%d samples, only %d decoded: %w", nSamples, n, decode.ErrLimit)))
	}
	d.flush(&c)
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

func (d *Decoder) flush(c *counts) {
	s := &d.stats
	add := func(a *atomic.Uint64, v uint64) {
		if v != 0 {
			a.Add(v)
		}
	}
	add(&s.flow, c.flow)
	add(&s.expFlow, c.expFlow)
	add(&s.counter, c.counter)
	add(&s.expCounter, c.expCounter)
	add(&s.other, c.other)
	add(&s.bad, c.bad)
	add(&s.flows, c.flows)
}

// sequence reports gaps in an agent's datagram sequence numbers.
func (d *Decoder) sequence(agent netip.Addr, sub, seq uint32) {
	k := seqKey{agent, sub}
	last, ok := d.seqs[k]
	if !ok && len(d.seqs) >= maxAgents {
		clear(d.seqs)
	}
	d.seqs[k] = seq
	if !ok {
		return
	}
	switch diff := seq - last; {
	case diff == 1:
	case diff != 0 && diff < 1<<31:
		d.cfg.Observer.SequenceGap(decode.SFlowV5, agent, sub, uint64(diff-1))
	default: // backwards or repeated: the agent restarted
		d.cfg.Observer.SequenceReset(decode.SFlowV5, agent, sub)
	}
}

// sample decodes one sample's body.
func (d *Decoder) sample(dg *datagram, format uint32, b []byte, emit decode.Emit, c *counts) error {
	if format>>12 != 0 {
		c.other++
		return nil
	}
	switch format {
	case formatFlow:
		c.flow++
		if len(b) < 32 {
			return fmt.Errorf("flow sample of %d bytes: %w", len(b), decode.ErrTruncated)
		}
		out := be32(b[24:])
		in := be32(b[20:])
		return d.flowSample(dg, be32(b[8:]), in>>30, in&0x3fffffff, out>>30, out&0x3fffffff, be32(b[28:]), b[32:], emit, c)
	case formatExpandedFlow:
		c.expFlow++
		if len(b) < 44 {
			return fmt.Errorf("expanded flow sample of %d bytes: %w", len(b), decode.ErrTruncated)
		}
		return d.flowSample(dg, be32(b[12:]), be32(b[24:]), be32(b[28:]), be32(b[32:]), be32(b[36:]), be32(b[40:]), b[44:], emit, c)
	case formatCounter:
		c.counter++
		if len(b) < 12 {
			return fmt.Errorf("counter sample of %d bytes: %w", len(b), decode.ErrTruncated)
		}
		src := be32(b[4:])
		return d.counterSample(dg, be32(b), src>>24, src&0xffffff, be32(b[8:]), b[12:])
	case formatExpandedCounter:
		c.expCounter++
		if len(b) < 16 {
			return fmt.Errorf("expanded counter sample of %d bytes: %w", len(b), decode.ErrTruncated)
		}
		return d.counterSample(dg, be32(b), be32(b[4:]), be32(b[8:]), be32(b[12:]), b[16:])
	}
	c.other++
	return nil
}

// Flow record formats (enterprise 0).
const (
	recSampledHeader   = 1
	recSampledEthernet = 2
	recSampledIPv4     = 3
	recSampledIPv6     = 4
	recExtSwitch       = 1001
	recExtRouter       = 1002
	recExtGateway      = 1003
)

// Sampled header protocols.
const (
	headerEthernet = 1
	headerIPv4     = 11
	headerIPv6     = 12
)

// flowSample fills the message from a flow sample's records and emits it;
// a bad record drops the whole sample.
func (d *Decoder) flowSample(dg *datagram, rate, inFmt, in, outFmt, out, nRecords uint32, b []byte, emit decode.Emit, c *counts) error {
	if nRecords > uint32(d.cfg.MaxRecords) {
		return fmt.Errorf("%d records: %w", nRecords, decode.ErrLimit)
	}
	if uint64(nRecords)*8 > uint64(len(b)) {
		return fmt.Errorf("%d records in %d bytes: %w", nRecords, len(b), decode.ErrMalformed)
	}
	m := &d.msg
	resetSample(m)
	m.Type = flowpb.FlowMessage_SFLOW_5
	m.SamplerAddress = append(m.SamplerAddress, dg.agent[:dg.agentLen]...)
	m.SequenceNum = dg.seq
	m.SamplingRate = uint64(rate)
	m.TimeReceivedNs = dg.receivedNs
	m.TimeFlowStartNs = dg.receivedNs
	m.TimeFlowEndNs = dg.receivedNs
	m.Packets = 1
	if inFmt == 0 {
		m.InIf = in
	}
	switch outFmt {
	case 0:
		m.OutIf = out
	case 1:
		m.ForwardingStatus = 128
	}

	off := 0
	for i := uint32(0); i < nRecords; i++ {
		if len(b)-off < 8 {
			return fmt.Errorf("record %d: %w", i, decode.ErrTruncated)
		}
		format, length := be32(b[off:]), be32(b[off+4:])
		off += 8
		if uint64(length) > uint64(len(b)-off) {
			return fmt.Errorf("record %d (format %d) length %d > %d bytes left: %w", i, format, length, len(b)-off, decode.ErrMalformed)
		}
		r := b[off : off+int(length)]
		off += int(length)
		if err := d.flowRecord(m, format, r); err != nil {
			return fmt.Errorf("record %d (format %d): %w", i, format, err)
		}
	}
	c.flows++
	if d.appendTo {
		if !d.consts.ready {
			d.consts.fill(dg)
		}
		d.out, d.wide = appendSample(d.out, m, &d.consts, d.wide)
		d.outN++
		return nil
	}
	emit(m)
	return nil
}

func (d *Decoder) flowRecord(m *flowpb.FlowMessage, format uint32, r []byte) error {
	switch format {
	case recSampledHeader:
		if len(r) < 16 {
			return fmt.Errorf("sampled header of %d bytes: %w", len(r), decode.ErrTruncated)
		}
		proto, frameLen, hdrLen := be32(r), be32(r[4:]), be32(r[12:])
		if uint64(hdrLen) > uint64(len(r)-16) {
			return fmt.Errorf("header length %d > %d bytes in record: %w", hdrLen, len(r)-16, decode.ErrMalformed)
		}
		m.Bytes = uint64(frameLen)
		h := r[16 : 16+int(min(hdrLen, uint32(d.cfg.MaxHeaderBytes)))]
		switch proto {
		case headerEthernet:
			packet.ParseWith(m, h, packet.Ethernet, d.cfg.MaxLabels, d.cfg.Packet)
		case headerIPv4:
			packet.ParseWith(m, h, packet.IPv4, d.cfg.MaxLabels, d.cfg.Packet)
		case headerIPv6:
			packet.ParseWith(m, h, packet.IPv6, d.cfg.MaxLabels, d.cfg.Packet)
		}
	case recSampledEthernet:
		// length, src and dst MAC (each padded to 8 bytes), type
		if len(r) < 24 {
			return fmt.Errorf("sampled ethernet of %d bytes: %w", len(r), decode.ErrTruncated)
		}
		m.Bytes = uint64(be32(r))
		m.SrcMac = packet.MAC(r[4:])
		m.DstMac = packet.MAC(r[12:])
		m.Etype = be32(r[20:])
	case recSampledIPv4:
		if len(r) < 32 {
			return fmt.Errorf("sampled IPv4 of %d bytes: %w", len(r), decode.ErrTruncated)
		}
		m.Bytes = uint64(be32(r))
		m.Proto = be32(r[4:])
		m.SrcAddr = append(m.SrcAddr[:0], r[8:12]...)
		m.DstAddr = append(m.DstAddr[:0], r[12:16]...)
		m.SrcPort = be32(r[16:])
		m.DstPort = be32(r[20:])
		m.TcpFlags = be32(r[24:])
		m.IpTos = be32(r[28:])
		m.Etype = 0x800
	case recSampledIPv6:
		if len(r) < 56 {
			return fmt.Errorf("sampled IPv6 of %d bytes: %w", len(r), decode.ErrTruncated)
		}
		m.Bytes = uint64(be32(r))
		m.Proto = be32(r[4:])
		m.SrcAddr = append(m.SrcAddr[:0], r[8:24]...)
		m.DstAddr = append(m.DstAddr[:0], r[24:40]...)
		m.SrcPort = be32(r[40:])
		m.DstPort = be32(r[44:])
		m.TcpFlags = be32(r[48:])
		m.IpTos = be32(r[52:])
		m.Etype = 0x86dd
	case recExtSwitch:
		if len(r) < 16 {
			return fmt.Errorf("extended switch of %d bytes: %w", len(r), decode.ErrTruncated)
		}
		m.SrcVlan = be32(r)
		m.DstVlan = be32(r[8:])
	case recExtRouter:
		nh, rest, err := address(r)
		if err != nil {
			return fmt.Errorf("extended router: %w", err)
		}
		if len(rest) < 8 {
			return fmt.Errorf("extended router: %w", decode.ErrTruncated)
		}
		m.NextHop = append(m.NextHop[:0], nh...)
		m.SrcNet = be32(rest)
		m.DstNet = be32(rest[4:])
	case recExtGateway:
		return d.gateway(m, r)
	}
	// Other records (user, URL, MPLS, NAT, ...) carry nothing the message
	// has a field for: their length frames them, so they are skipped.
	return nil
}

// gateway reads an extended gateway record: next hop, own AS, source AS,
// source peer AS, AS path segments, communities, local pref.
func (d *Decoder) gateway(m *flowpb.FlowMessage, r []byte) error {
	nh, r, err := address(r)
	if err != nil {
		return fmt.Errorf("extended gateway: %w", err)
	}
	if len(r) < 16 {
		return fmt.Errorf("extended gateway: %w", decode.ErrTruncated)
	}
	as, srcAS := be32(r), be32(r[4:])
	nSegs := be32(r[12:])
	r = r[16:]
	// Each segment is at least its type and length.
	if uint64(nSegs)*8 > uint64(len(r)) {
		return fmt.Errorf("extended gateway: %d AS path segments in %d bytes: %w", nSegs, len(r), decode.ErrMalformed)
	}
	path := m.AsPath[:0]
	for i := uint32(0); i < nSegs; i++ {
		if len(r) < 8 {
			return fmt.Errorf("extended gateway: %w", decode.ErrTruncated)
		}
		n := be32(r[4:])
		r = r[8:]
		if uint64(len(path))+uint64(n) > uint64(d.cfg.MaxASPath) {
			return fmt.Errorf("extended gateway: AS path over %d: %w", d.cfg.MaxASPath, decode.ErrLimit)
		}
		if uint64(n)*4 > uint64(len(r)) {
			return fmt.Errorf("extended gateway: AS path segment of %d in %d bytes: %w", n, len(r), decode.ErrMalformed)
		}
		for j := 0; j < int(n); j++ {
			path = append(path, be32(r[4*j:]))
		}
		r = r[4*n:]
	}
	if len(r) < 4 {
		return fmt.Errorf("extended gateway: %w", decode.ErrTruncated)
	}
	nComm := be32(r)
	r = r[4:]
	if nComm > uint32(d.cfg.MaxCommunities) {
		return fmt.Errorf("extended gateway: %d communities: %w", nComm, decode.ErrLimit)
	}
	if uint64(nComm)*4 > uint64(len(r)) {
		return fmt.Errorf("extended gateway: %d communities in %d bytes: %w", nComm, len(r), decode.ErrMalformed)
	}
	comm := m.BgpCommunities[:0]
	for j := 0; j < int(nComm); j++ {
		comm = append(comm, be32(r[4*j:]))
	}
	// local_pref follows; nothing to fill with it.
	m.BgpNextHop = append(m.BgpNextHop[:0], nh...)
	m.AsPath = path
	m.BgpCommunities = comm
	if len(path) > 0 {
		m.DstAs = path[len(path)-1]
		m.NextHopAs = path[0]
	} else {
		m.DstAs = as
	}
	if srcAS > 0 {
		m.SrcAs = srcAS
	} else {
		m.SrcAs = as
	}
	return nil
}

// address reads an sFlow address (type, then 4 or 16 bytes) and returns
// it and what follows.
func address(b []byte) ([]byte, []byte, error) {
	if len(b) < 4 {
		return nil, nil, decode.ErrTruncated
	}
	var n int
	switch t := be32(b); t {
	case 1:
		n = 4
	case 2:
		n = 16
	case 0: // unknown: no address bytes follow
	default:
		return nil, nil, fmt.Errorf("address type %d: %w", t, decode.ErrMalformed)
	}
	if len(b) < 4+n {
		return nil, nil, decode.ErrTruncated
	}
	return b[4 : 4+n], b[4+n:], nil
}

func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
