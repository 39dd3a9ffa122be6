// Package netflow decodes NetFlow v5, NetFlow v9 and IPFIX (RFC 7011)
// export packets into flowpb.FlowMessage records, field for field as
// goflow2 v2 fills them.
//
// One Decoder handles the three versions and dispatches on the version
// field. v9 and IPFIX share the template cache and the field mapping: a
// template is compiled once into a list of (length, target) operations and
// each data record is decoded by walking that list, without allocating.
//
// Behaviour worth knowing:
//   - Templates are keyed by exporter address (not port), version, source
//     id / observation domain and template id (see package template).
//   - Data sets whose template is unknown are held in the cache's bounded
//     buffer and decoded (emitted) when the template arrives.
//   - Sampling rate, per exporter address and observation domain / source
//     id, from the first of: (1) the data record's own sampling elements
//     (Huawei NetStream v9 and others put samplingInterval 34 in every
//     record); (2) the sampler or selector the record names (samplerId 48
//     or selectorId 302) and options data described; (3) the exporter's
//     rate from options data without an id (or, failing that, the last
//     announced). The elements are samplingPacketInterval/Space (305/306:
//     (interval+space)/interval), samplingSize/Population (309/310:
//     population/size), samplingProbability (311: 1/p),
//     samplerRandomInterval (50) and samplingInterval (34), in that order.
//     v5 takes the low 14 bits of the header's sampling interval. What
//     options data said is kept in a Sampling, which can be saved and
//     loaded.
//   - Packet sections: dataLinkFrameSection (315, RFC 7133; not when
//     dataLinkFrameType 408 says other than Ethernet), Cisco's
//     layer2packetSectionData (104, when layer2packetSectionOffset 102 is 0
//     or absent), mplsLabelStackSection (316) and ipHeaderPacketSection
//     (313) are walked by package packet, the parser of sFlow's sampled
//     headers: MACs, VLAN, MPLS labels, addresses, ports, flags, SRv6
//     segments, layer_stack. The record's own elements take precedence over
//     what the section says. Without an octet counter, bytes is
//     dataLinkFrameSize (312), else the packet's length as its IP header
//     gives it (with the bytes before that header), else the section's
//     length; without a packet counter, packets is 1.
//   - NAT (RFC 8158, RFC 7659): postNATSource/DestinationIPv4Address
//     (225/226) and IPv6Address (281/282), postNAPTSource/Destination
//     TransportPort (227/228), natEvent (230), natPoolId (283),
//     natInstanceID (463), portRangeStart/End (361/362) fill the post_nat_
//     and nat_ fields.
//   - Enterprise elements other than RFC 5103's are skipped (a mapping can
//     still name them), so a vendor's elements never spoil a record.
//   - Biflows (RFC 5103): a record with reverse elements (enterprise
//     29305) is emitted as its forward record and, when a reverse counter is
//     non-zero, a second record with addresses, ports, interfaces, MACs, AS,
//     masks and post-NAT addresses and ports swapped, the reverse counters
//     and TCP flags, and biflow_reverse set.
//   - Times: v5 and v9 First/Last relative to sysUptime and the header's
//     Unix time; IPFIX flowStart/End Seconds, Milliseconds, Micro- and
//     Nanoseconds (NTP format), delta microseconds (158/159, relative to the
//     export time) and flowStart/EndSysUpTime (22/21, relative to
//     systemInitTimeMilliseconds (160) from the record or options data).
//   - Mapped elements (package mapping) are appended to the record's
//     unknown fields.
//
// AppendRecords writes the records straight into flowpipe's bin stream
// (package flowbin) instead of handing out FlowMessages: v5 records with
// a fixed layout, v9 and IPFIX records with a plan compiled once per
// template, which reads each field where the record holds it and writes it
// in field-number order. The bytes are those of Decode's messages encoded
// by flowpb, which the tests and fuzz targets hold it to; records with a
// packet section or biflow elements still go through a FlowMessage.
package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/flowbin"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// Templates is the template cache type of this package's decoders.
type Templates = template.Cache[*program]

// NewTemplates returns a template cache for decoders using mapping m (nil:
// none). Share one cache between decoders to Save and Load in one place.
func NewTemplates(cfg template.Config, m *mapping.Mapping) *Templates {
	return template.New(cfg, compile(m))
}

// Config configures a Decoder. The zero value works.
type Config struct {
	// Templates is the template cache; nil: a new one from TemplateConfig
	// and Mapping. A shared cache must have been built with the same
	// Mapping.
	Templates      *Templates
	TemplateConfig template.Config
	Mapping        *mapping.Mapping
	// Packet extends the walk of IPFIX packet sections as the mapping's
	// sflow section asks (mapping.PacketOptions); nil: none. Not shared
	// between decoders.
	Packet *packet.Options
	// Sampling keeps the sampling rates learned from options data, to save
	// and restore them; nil: a new one, expiring as the templates do.
	Sampling *Sampling
	// Observer receives sequence gaps and resets; nil: none.
	Observer decode.Observer
	// MaxRecordsPerSet bounds the records decoded from one set (default
	// 4096); the rest of the set is skipped with decode.ErrLimit.
	MaxRecordsPerSet int
}

// Decoder decodes NetFlow v5, v9 and IPFIX packets. It is not safe for
// concurrent use: give each worker its own (they may share Templates).
// Sequence and sampling state are per Decoder, so an exporter's packets
// must all go to the same Decoder.
type Decoder struct {
	templates *Templates
	mapping   *mapping.Mapping
	observer  decode.Observer
	maxRecs   int

	msg     flowpb.FlowMessage
	unknown []byte
	packet  *packet.Options
	mapped  []mappedValue
	// secUnknown: the custom fields the mapping's sflow section gave the
	// record's packet section
	secUnknown []byte // elements mapped to flow.proto fields, in the record being decoded
	seq        map[seqKey]*seqState
	lastSeq    *seqState // the last exporter's, saving a map lookup per packet
	samplers   map[seqKey]*samplingState
	lastSamp   *samplingState
	sampling   *Sampling
	rec        record
	fieldBuf   []template.Field

	// AppendRecords' output: records go into out instead of to an Emit.
	out      []byte
	outN     int
	appendTo bool
	wide     bool // the last frame's length took two bytes
	consts   planConsts
	offs     []int32 // a record's element offsets and lengths (plans of variable-length templates)
	lens     []int32
}

// NewDecoder returns a Decoder for v5, v9 and IPFIX.
func NewDecoder(cfg Config) *Decoder {
	d := &Decoder{
		templates: cfg.Templates,
		mapping:   cfg.Mapping,
		packet:    cfg.Packet,
		observer:  cfg.Observer,
		maxRecs:   cfg.MaxRecordsPerSet,
		seq:       make(map[seqKey]*seqState),
		samplers:  make(map[seqKey]*samplingState),
		sampling:  cfg.Sampling,
	}
	if d.templates == nil {
		d.templates = NewTemplates(cfg.TemplateConfig, cfg.Mapping)
	}
	if d.sampling == nil {
		d.sampling = NewSampling(d.templates.Config().TTL)
	}
	if d.observer == nil {
		d.observer = decode.NopObserver{}
	}
	if d.maxRecs <= 0 {
		d.maxRecs = 4096
	}
	return d
}

// Templates returns the decoder's template cache.
func (d *Decoder) Templates() *Templates { return d.templates }

// Sampling returns the decoder's sampling-rate store.
func (d *Decoder) Sampling() *Sampling { return d.sampling }

var _ decode.Decoder = (*Decoder)(nil)

// Decode decodes one export packet, emitting each good record.
func (d *Decoder) Decode(p decode.Packet, emit decode.Emit) error {
	if len(p.Data) < 2 {
		return &decode.Error{Protocol: decode.ProtocolUnknown, Exporter: p.Exporter, Err: fmt.Errorf("netflow: %d-byte packet: %w", len(p.Data), decode.ErrTruncated)}
	}
	v := binary.BigEndian.Uint16(p.Data)
	switch v {
	case 5:
		return d.decodeV5(p, emit)
	case 9, 10:
		return d.decodeTemplated(p, v, emit)
	}
	return &decode.Error{Protocol: decode.ProtocolUnknown, Exporter: p.Exporter, Err: fmt.Errorf("netflow: version %d: %w", v, decode.ErrVersion)}
}

// AppendRecords decodes p as Decode does and appends each record Decode
// would emit to dst as a frame of the bin stream (what flowpb's
// AppendDelimited writes for it), returning dst and the number of
// records. Most records are written as they are read, without a
// FlowMessage in between (see flowbin).
func (d *Decoder) AppendRecords(dst []byte, p decode.Packet) ([]byte, int, error) {
	if len(p.Data) >= 2 && binary.BigEndian.Uint16(p.Data) == 5 {
		return d.appendV5(dst, p)
	}
	d.out, d.outN, d.appendTo = dst, 0, true
	err := d.Decode(p, nil)
	out, n := d.out, d.outN
	d.out, d.appendTo = nil, false
	return out, n, err
}

// put hands the message on: to emit, or into AppendRecords' output with
// unknown as its unknown fields.
func (d *Decoder) put(emit decode.Emit, unknown []byte) {
	if !d.appendTo {
		emit(&d.msg)
		return
	}
	d.out, d.wide = flowbin.AppendDecoded(d.out, &d.msg, unknown, d.wide)
	d.outN++
}

func protocolOf(v uint16) decode.Protocol {
	switch v {
	case 5:
		return decode.NetFlowV5
	case 9:
		return decode.NetFlowV9
	case 10:
		return decode.IPFIX
	}
	return decode.ProtocolUnknown
}

type seqKey struct {
	exporter netip.Addr
	version  uint16
	domain   uint32
}

type seqState struct {
	key   seqKey
	next  uint32
	valid bool
}

// sequence checks a packet's sequence number against the expected one and
// sets the next expectation: next = seq + advance (packets for v9, flows
// for v5, data records for IPFIX); advance < 0 means unknown.
func (d *Decoder) sequence(k seqKey, seq uint32, advance int) {
	s := d.lastSeq
	if s == nil || s.key != k {
		if s = d.seq[k]; s == nil {
			if len(d.seq) >= maxSeqStates {
				clear(d.seq) // exporters come and go; a bounded map beats a leak
			}
			s = &seqState{key: k}
			d.seq[k] = s
		}
		d.lastSeq = s
	}
	if s.valid && seq != s.next {
		if diff := int32(seq - s.next); diff > 0 {
			d.observer.SequenceGap(protocolOf(k.version), k.exporter, k.domain, uint64(diff))
		} else {
			d.observer.SequenceReset(protocolOf(k.version), k.exporter, k.domain)
		}
	}
	s.next, s.valid = seq+uint32(advance), advance >= 0
}

const maxSeqStates = 65536

// setCommon fills the fields every record of a packet shares.
func (d *Decoder) setCommon(m *flowpb.FlowMessage, t flowpb.FlowMessage_FlowType, exporter netip.Addr, receivedNs uint64, seq, domain uint32) {
	m.Type = t
	m.TimeReceivedNs = receivedNs
	m.SequenceNum = seq
	m.ObservationDomainId = domain
	if exporter.Is4() {
		a := exporter.As4()
		m.SamplerAddress = append(m.SamplerAddress[:0], a[:]...)
	} else {
		a := exporter.As16()
		m.SamplerAddress = append(m.SamplerAddress[:0], a[:]...)
	}
}

// be reads a big-endian unsigned integer of 1 to 8 bytes (longer values
// keep their low 8 bytes).
func be(v []byte) uint64 {
	switch len(v) {
	case 1:
		return uint64(v[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(v))
	case 4:
		return uint64(binary.BigEndian.Uint32(v))
	case 8:
		return binary.BigEndian.Uint64(v)
	}
	if len(v) > 8 {
		v = v[len(v)-8:]
	}
	var u uint64
	for _, c := range v {
		u = u<<8 | uint64(c)
	}
	return u
}

func allZero(v []byte) bool {
	for _, c := range v {
		if c != 0 {
			return false
		}
	}
	return true
}
