// Package flowgen builds synthetic NetFlow v5, NetFlow v9, IPFIX and sFlow v5
// export packets, byte-exact and deterministic from a seed, together with the
// flows they encode, so that decoders can be checked against ground truth and
// benchmarked on realistic packets.
package flowgen

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Protocol is an export protocol.
type Protocol uint8

// Export protocols.
const (
	NetFlowV5 Protocol = iota + 1
	NetFlowV9
	IPFIX
	SFlow
)

// Template IDs used by NetFlow v9 and IPFIX packets.
const (
	TemplateIPv4    = 256
	TemplateIPv6    = 257
	TemplateOptions = 258
)

// String returns the name ParseProtocol accepts.
func (p Protocol) String() string {
	switch p {
	case NetFlowV5:
		return "netflow5"
	case NetFlowV9:
		return "netflow9"
	case IPFIX:
		return "ipfix"
	case SFlow:
		return "sflow"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// ParseProtocol parses netflow5, netflow9, ipfix or sflow.
func ParseProtocol(s string) (Protocol, error) {
	for p := NetFlowV5; p <= SFlow; p++ {
		if strings.EqualFold(s, p.String()) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("flowgen: unknown protocol %q (want netflow5, netflow9, ipfix or sflow)", s)
}

// Port returns the collector UDP port conventionally used for the protocol.
func (p Protocol) Port() uint16 {
	switch p {
	case IPFIX:
		return 4739
	case SFlow:
		return 6343
	}
	return 2055
}

// Config describes what a Generator produces. The zero value of every field
// but Protocol has a usable default; with Protocol IPFIX and nothing else set,
// every data packet is the benchmark packet: one IPv4 data set of 28 records.
type Config struct {
	Seed     uint64
	Protocol Protocol
	// RecordsPerPacket is the number of flow records per data packet (sFlow:
	// flow samples per datagram). Default: 30 for v5, 28 for v9 and IPFIX,
	// 8 for sFlow. v5 allows at most 30.
	RecordsPerPacket int
	// IPv6Ratio is the share of IPv6 flows, in [0, 1]. v5 requires 0.
	IPv6Ratio float64
	// SamplingRate is the advertised 1-in-N packet sampling rate; 0 means
	// unsampled (sFlow, which always carries a rate, then says 1). v9 and
	// IPFIX send it as options data only when it is above 0.
	SamplingRate uint32
	// Exporter is the sFlow agent address (IPv4 or IPv6), default 192.0.2.1.
	// NetFlow and IPFIX carry no address: collectors use the UDP source.
	Exporter netip.Addr
	// ObservationDomain is the v9 source ID, the IPFIX observation domain ID
	// and the sFlow sub-agent ID; v5 puts its low 16 bits in engine
	// type (high byte) and engine ID (low byte).
	ObservationDomain uint32
	// BaseTime is the export time of the first packet, default
	// 2024-01-01T00:00:00Z. The exporter booted one hour earlier.
	BaseTime time.Time
	// PacketInterval is the export time step between packets, default 1ms.
	PacketInterval time.Duration
	// TemplateInterval is the number of v9/IPFIX data packets between two
	// template packets returned by Next, default 20. Negative: Next never
	// returns templates, call Templates to get them.
	TemplateInterval int
	// VariableLengthIE adds interfaceName (IE 82, variable length) to the
	// IPFIX templates; EnterpriseIE adds an enterprise-specific IE (PEN
	// 29305). Decoders must skip both.
	VariableLengthIE bool
	EnterpriseIE     bool
	// HeaderSize is the most bytes of each sampled frame an sFlow raw packet
	// header record carries, Ethernet header included; default 128, 64-1518.
	HeaderSize int
	// FlowPool, when above 0, is how many data packets (sFlow datagrams)
	// get freshly drawn flows. Later ones reuse those flows in turn, with
	// fresh random bits after the first 8 (IPv4) or 32 (IPv6) of the source
	// and destination addresses, so that the distribution of addresses stays
	// the same, and flow times moved with the export time; sequence numbers,
	// export times and sFlow samples go on as usual. A drawn flow takes some
	// 30 random numbers, a reused one 2 to 4, and NetFlow and IPFIX packets
	// are reused as bytes: a record costs a fifth or less (see
	// BenchmarkSendPackets). Load generators set it to put their CPU into
	// sending. 0 draws every flow.
	FlowPool int
}

const maxDatagram = 65507 // largest UDP payload over IPv4

func (c Config) withDefaults() Config {
	if c.RecordsPerPacket == 0 {
		switch c.Protocol {
		case NetFlowV5:
			c.RecordsPerPacket = 30
		case SFlow:
			c.RecordsPerPacket = 8
		default:
			c.RecordsPerPacket = 28
		}
	}
	if !c.Exporter.IsValid() {
		c.Exporter = netip.AddrFrom4([4]byte{192, 0, 2, 1})
	}
	c.Exporter = c.Exporter.Unmap()
	if c.BaseTime.IsZero() {
		c.BaseTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.PacketInterval == 0 {
		c.PacketInterval = time.Millisecond
	}
	if c.TemplateInterval == 0 {
		c.TemplateInterval = 20
	}
	if c.HeaderSize == 0 {
		c.HeaderSize = 128
	}
	if c.Protocol == SFlow && c.SamplingRate == 0 {
		c.SamplingRate = 1
	}
	return c
}

// Validate reports every problem with c (after defaults are applied).
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Protocol < NetFlowV5 || c.Protocol > SFlow {
		errs = append(errs, fmt.Errorf("flowgen: unknown protocol %d", c.Protocol))
	}
	if c.RecordsPerPacket < 1 {
		errs = append(errs, fmt.Errorf("flowgen: records per packet must be >= 1, got %d", c.RecordsPerPacket))
	}
	if c.Protocol == NetFlowV5 && c.RecordsPerPacket > 30 {
		errs = append(errs, fmt.Errorf("flowgen: netflow v5 carries at most 30 records per packet, got %d", c.RecordsPerPacket))
	}
	if c.Protocol == NetFlowV5 && c.IPv6Ratio != 0 {
		errs = append(errs, errors.New("flowgen: netflow v5 carries IPv4 only, IPv6 ratio must be 0"))
	}
	if c.Protocol == NetFlowV5 && c.SamplingRate > 0x3fff {
		errs = append(errs, fmt.Errorf("flowgen: netflow v5 sampling interval is 14 bits, got %d", c.SamplingRate))
	}
	if !(c.IPv6Ratio >= 0 && c.IPv6Ratio <= 1) {
		errs = append(errs, fmt.Errorf("flowgen: IPv6 ratio must be in [0, 1], got %v", c.IPv6Ratio))
	}
	if c.PacketInterval < 0 {
		errs = append(errs, fmt.Errorf("flowgen: packet interval must be >= 0, got %v", c.PacketInterval))
	}
	if c.FlowPool < 0 {
		errs = append(errs, fmt.Errorf("flowgen: flow pool must be >= 0, got %d", c.FlowPool))
	}
	if c.HeaderSize < 64 || c.HeaderSize > 1518 {
		errs = append(errs, fmt.Errorf("flowgen: sFlow header size must be in [64, 1518], got %d", c.HeaderSize))
	}
	if c.RecordsPerPacket >= 1 && c.Protocol >= NetFlowV5 && c.Protocol <= SFlow {
		if n := c.maxPacketSize(); n > maxDatagram {
			errs = append(errs, fmt.Errorf("flowgen: %d records per packet make %s packets of up to %d bytes, more than a UDP datagram holds (%d)",
				c.RecordsPerPacket, c.Protocol, n, maxDatagram))
		}
		if m := c.maxFlowPool(); c.FlowPool > m {
			errs = append(errs, fmt.Errorf("flowgen: a flow pool of %d packets could take more than %d MiB; at most %d here",
				c.FlowPool, maxPoolBytes>>20, m))
		}
	}
	return errors.Join(errs...)
}

// maxPacketSize bounds the size of a data packet, so that Validate can
// refuse configurations whose packets would not fit in a datagram.
func (c Config) maxPacketSize() int {
	n := c.RecordsPerPacket
	switch c.Protocol {
	case NetFlowV5:
		return v5HeaderLen + n*v5RecordLen
	case NetFlowV9:
		return 20 + 2*8 + n*recordLen(v9Fields(true))
	case IPFIX:
		return 16 + 2*8 + n*(recordLen(ipfixFields(true, c.VariableLengthIE, c.EnterpriseIE))+3+maxIfNameLen)
	}
	return 40 + n*sflowMaxSampleLen(c.HeaderSize) + sflowCounterSampleLen
}

// Generator produces export packets. It is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    rng
	bootMs int64 // exporter boot time, unix milliseconds

	packets        uint64 // packets returned so far, templates included
	templatesDue   bool
	sinceTemplates int

	// seq is the header sequence: v5 flows, v9 packets, IPFIX data records,
	// sFlow datagrams, each counted before the current packet.
	seq        uint32
	sampleSeq  uint32 // sFlow flow samples
	counterSeq uint32 // sFlow counter samples
	samplePool uint32 // sFlow packets seen by the sampler

	v4Fields, v6Fields []field         // v9 or IPFIX data templates
	layouts            [2]recordLayout // IPv4 and IPv6 data records, for pool reuse
	pool               flowPool

	buf   []byte
	flows []Flow
	lists []uint32 // backing array of the sFlow flows' AS paths and communities
	frame [128]byte
}

// New returns a Generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg:          cfg,
		rng:          newRNG(cfg.Seed),
		bootMs:       cfg.BaseTime.Truncate(time.Second).UnixMilli() - time.Hour.Milliseconds(),
		templatesDue: cfg.TemplateInterval > 0,
		flows:        make([]Flow, 0, cfg.RecordsPerPacket),
		buf:          make([]byte, 0, cfg.maxPacketSize()),
		pool:         newFlowPool(cfg),
	}
	switch cfg.Protocol {
	case NetFlowV5:
		g.layouts[0] = recordLayout{src: 0, dst: 4, addrLen: 4, start: 24, end: 28} // appendV5's First and Last
	case NetFlowV9:
		g.v4Fields, g.v6Fields = v9Fields(false), v9Fields(true)
	case IPFIX:
		g.v4Fields = ipfixFields(false, cfg.VariableLengthIE, cfg.EnterpriseIE)
		g.v6Fields = ipfixFields(true, cfg.VariableLengthIE, cfg.EnterpriseIE)
	case SFlow:
		g.seq = 1 // sFlow agents number datagrams and samples from 1
		g.sampleSeq, g.counterSeq = 1, 1
		g.lists = make([]uint32, 0, cfg.RecordsPerPacket*(maxASPath+maxCommunities))
	}
	if g.v4Fields != nil {
		g.layouts = [2]recordLayout{layoutOf(g.v4Fields), layoutOf(g.v6Fields)}
	}
	return g, nil
}

// Config returns the configuration in use, defaults applied.
func (g *Generator) Config() Config { return g.cfg }

// Next returns the next packet and the flows it encodes, in encoding order
// (v9 and IPFIX: the IPv4 data set first, then the IPv6 one). A v9 or IPFIX
// template packet comes first and then every TemplateInterval data packets,
// with no flows. The packet and the flows, with their AS paths and
// communities, share buffers that the next call to Next overwrites: copy
// what must outlive it.
func (g *Generator) Next() (pkt []byte, flows []Flow) {
	g.buf, flows, _ = g.appendNext(g.buf[:0], true)
	return g.buf, flows
}

// appendNext appends the next packet to b and returns its flows (with
// truth; Send only needs their count, which reused packets can give
// without making flows) and its record count: Next, for a buffer of the
// caller's, so that Send encodes straight into the datagram it sends.
func (g *Generator) appendNext(b []byte, truth bool) ([]byte, []Flow, int) {
	now := g.exportTime()
	g.packets++
	if g.cfg.Protocol == NetFlowV9 || g.cfg.Protocol == IPFIX {
		if g.templatesDue {
			g.templatesDue, g.sinceTemplates = false, 0
			return g.appendTemplates(b, now), nil, 0
		}
		if g.sinceTemplates++; g.cfg.TemplateInterval > 0 && g.sinceTemplates >= g.cfg.TemplateInterval {
			g.templatesDue = true
		}
	}
	if g.pool.full() {
		if g.cfg.Protocol == SFlow {
			return g.appendSFlowReused(b, now, truth)
		}
		return g.appendReused(b, now, truth)
	}
	start := len(b)
	var flows []Flow
	switch g.cfg.Protocol {
	case NetFlowV5:
		b, flows = g.appendV5(b, now)
	case NetFlowV9:
		b, flows = g.appendV9Data(b, now)
	case IPFIX:
		b, flows = g.appendIPFIXData(b, now)
	case SFlow:
		b, flows = g.appendSFlow(b, now)
	}
	if g.pool.filling() {
		body, end := start, len(b)
		switch g.cfg.Protocol {
		case NetFlowV5:
			body += v5HeaderLen
		case NetFlowV9:
			body += v9HeaderLen
		case IPFIX:
			body += ipfixHeaderLen
		case SFlow:
			body += sflowHeaderLen(g.cfg.Exporter)
			end -= sflowCounterSampleLen // made anew each time
		}
		g.pool.keep(flows, now, b[body:end], body)
	}
	return b, flows, len(flows)
}

// Templates returns a new packet holding the v9 or IPFIX templates, options
// template and (when sampling) options data, to prime a decoder; nil for v5
// and sFlow. It counts as a sent packet in sequence numbers and restarts the
// schedule of template packets returned by Next.
func (g *Generator) Templates() []byte {
	if g.cfg.Protocol != NetFlowV9 && g.cfg.Protocol != IPFIX {
		return nil
	}
	now := g.exportTime()
	g.packets++
	g.templatesDue, g.sinceTemplates = false, 0
	return g.appendTemplates(nil, now)
}

// Time returns the export time of the packet last returned by Next or
// Templates (the BaseTime before the first).
func (g *Generator) Time() time.Time {
	if g.packets == 0 {
		return g.cfg.BaseTime
	}
	return g.cfg.BaseTime.Add(time.Duration(g.packets-1) * g.cfg.PacketInterval)
}

func (g *Generator) exportTime() time.Time {
	return g.cfg.BaseTime.Add(time.Duration(g.packets) * g.cfg.PacketInterval)
}

func (g *Generator) appendTemplates(b []byte, now time.Time) []byte {
	if g.cfg.Protocol == NetFlowV9 {
		return g.appendV9Templates(b, now)
	}
	return g.appendIPFIXTemplates(b, now)
}

// uptime is the exporter's sysUptime in ms at unix time ms.
func (g *Generator) uptime(ms int64) uint32 { return uint32(ms - g.bootMs) }
