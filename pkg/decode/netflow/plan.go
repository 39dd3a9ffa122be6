package netflow

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/flowpipe/flowpipe/pkg/decode/flowbin"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

// A plan writes the data records of a flow template straight into the bin
// stream (AppendRecords): one step per output field, in field-number
// order, each reading its value where the record holds it. It is compiled
// once per template, with the program, and gives the bytes that decoding
// the record into a FlowMessage (record, finish) and encoding that would:
// the values come from the same elements, last one wins, and what needs
// the whole record (counters' fallbacks, times, sampling rate, MPLS
// labels) goes through record's own functions.
//
// Templates with a packet section or RFC 5103 reverse elements, and
// options templates, have no plan: their records take the FlowMessage
// path.
type plan struct {
	steps   []step
	fast    []fop           // fixed-length templates: the steps as appendFast runs them
	segs    []fastSeg       // runs of fast: fops, then a slow step
	static  []flowbin.Const // constant fields of the template (fStatic)
	cands   []cand          // several elements for one field, in template order
	aux     []uint16        // ops that fill the record state (setAux), in template order
	mapped  []mappedOp
	offs    []int32 // fixed-length templates: where each op's value starts, and its length
	lens    []int32
	dynRate bool // the sampling rate may differ between records: an sRate step
	prefix  int  // ops before the first variable-length one: their offsets are fixed
	version uint16
	// the sStart and sEnd steps, -1 when absent
	startStep, endStep int
}

type stepKind uint8

const (
	sHead    stepKind = iota // type; sampling rate and sequence number unless dynRate
	sRate                    // the record's sampling rate
	sSeq                     // sequence number, after sRate
	sUint                    // an integer field from one element
	sUintAny                 // from several: the last non-empty one
	sAddr                    // an address field, and src/dst for sEtype
	sBytes                   // bytes and packets with their fallbacks
	sPackets
	sSampler // sampler address
	sEtype
	sMPLS
	sDomain // observation domain
	sRecv   // time received
	sStart  // flow start and end with relative and event times
	sEnd
)

// Output fields whose value an sAddr step keeps for sEtype.
const (
	keepNone uint8 = iota
	keepSrc
	keepDst
)

// step writes one field.
type step struct {
	kind       stepKind
	keyLen     uint8  // 1 or 2
	key        uint16 // the field's key bytes, first in the low bits
	xf         xform  // sUint: how the element's bytes become the value
	keep       uint8  // sAddr: keepSrc, keepDst
	op         uint16 // sUint: the element's op
	first, end uint16 // the field's elements in cands
}

// cand is one element that sets a field.
type cand struct {
	op uint16
	xf xform // integer fields: the conversion; addresses: the length rule
}

type xform uint8

const (
	xU64      xform = iota // the element's big-endian value
	xU32                   // truncated to 32 bits (the message's uint32 fields)
	xFlags                 // fragmentFlags: the top 3 bits of a byte
	xICMPType              // icmpTypeCodeIPv4/6: the high byte
	xICMPCode              // the low byte
	xSec                   // seconds, milliseconds, NTP: to Unix ns
	xMs
	xNTP
	// address rules
	xAddr4     // 4 bytes
	xAddr6     // 16 bytes
	xAddr4or16 // next hops: either
)

type mappedOp struct {
	op    uint16
	entry *mapping.Entry
}

// Output fields a plan knows, in field-number order.
type outField uint8

const (
	oSrcAddr outField = iota
	oDstAddr
	oBytes
	oPackets
	oNextHop
	oSrcAs
	oDstAs
	oSrcNet
	oDstNet
	oInIf
	oOutIf
	oProto
	oSrcPort
	oDstPort
	oTos
	oFwdStatus
	oTTL
	oTCPFlags
	oSrcMac
	oDstMac
	oVlan
	oIcmpType
	oIcmpCode
	oSrcVlan
	oDstVlan
	oFragID
	oFragOff
	oFlowLabel
	oIPFlags
	oObsPoint
	oBGPNextHop
	oStart
	oEnd
	oPostNATSrc
	oPostNATDst
	oPostNAPTSrcPort
	oPostNAPTDstPort
	oNATEvent
	oPortRangeStart
	oPortRangeEnd
	oNATInstance
	oNATPool
	nOutFields
)

// sources lists, for a target, the fields it sets and how.
func sources(t target) []struct {
	f  outField
	xf xform
} {
	type fx = struct {
		f  outField
		xf xform
	}
	one := func(f outField, xf xform) []fx { return []fx{{f, xf}} }
	switch t {
	case tBytes:
		return one(oBytes, xU64)
	case tPackets:
		return one(oPackets, xU64)
	case tProto:
		return one(oProto, xU32)
	case tTOS:
		return one(oTos, xU32)
	case tTCPFlags:
		return one(oTCPFlags, xU32)
	case tSrcPort:
		return one(oSrcPort, xU32)
	case tDstPort:
		return one(oDstPort, xU32)
	case tSrcAddr4:
		return one(oSrcAddr, xAddr4)
	case tSrcAddr6:
		return one(oSrcAddr, xAddr6)
	case tDstAddr4:
		return one(oDstAddr, xAddr4)
	case tDstAddr6:
		return one(oDstAddr, xAddr6)
	case tSrcMask:
		return one(oSrcNet, xU32)
	case tDstMask:
		return one(oDstNet, xU32)
	case tInIf:
		return one(oInIf, xU32)
	case tOutIf:
		return one(oOutIf, xU32)
	case tNextHop:
		return one(oNextHop, xAddr4or16)
	case tBGPNextHop:
		return one(oBGPNextHop, xAddr4or16)
	case tSrcAS:
		return one(oSrcAs, xU32)
	case tDstAS:
		return one(oDstAs, xU32)
	case tSrcMAC:
		return one(oSrcMac, xU64)
	case tDstMAC:
		return one(oDstMac, xU64)
	case tSrcVLAN:
		return []fx{{oSrcVlan, xU32}, {oVlan, xU32}}
	case tDstVLAN:
		return one(oDstVlan, xU32)
	case tVLAN:
		return one(oVlan, xU32)
	case tForwardingStatus:
		return one(oFwdStatus, xU32)
	case tICMPTypeCode:
		return []fx{{oIcmpType, xICMPType}, {oIcmpCode, xICMPCode}}
	case tICMPType:
		return one(oIcmpType, xU32)
	case tICMPCode:
		return one(oIcmpCode, xU32)
	case tFlowLabel:
		return one(oFlowLabel, xU32)
	case tFragmentID:
		return one(oFragID, xU32)
	case tFragmentOffset:
		return one(oFragOff, xU32)
	case tFragmentFlags:
		return one(oIPFlags, xFlags)
	case tTTL:
		return one(oTTL, xU32)
	case tObservationPointID:
		return one(oObsPoint, xU32)
	case tStartSec:
		return one(oStart, xSec)
	case tStartMs:
		return one(oStart, xMs)
	case tStartNTP:
		return one(oStart, xNTP)
	case tEndSec:
		return one(oEnd, xSec)
	case tEndMs:
		return one(oEnd, xMs)
	case tEndNTP:
		return one(oEnd, xNTP)
	case tPostNATSrc4:
		return one(oPostNATSrc, xAddr4)
	case tPostNATSrc6:
		return one(oPostNATSrc, xAddr6)
	case tPostNATDst4:
		return one(oPostNATDst, xAddr4)
	case tPostNATDst6:
		return one(oPostNATDst, xAddr6)
	case tPostNAPTSrcPort:
		return one(oPostNAPTSrcPort, xU32)
	case tPostNAPTDstPort:
		return one(oPostNAPTDstPort, xU32)
	case tNATEvent:
		return one(oNATEvent, xU32)
	case tNATPoolID:
		return one(oNATPool, xU32)
	case tNATInstanceID:
		return one(oNATInstance, xU32)
	case tPortRangeStart:
		return one(oPortRangeStart, xU32)
	case tPortRangeEnd:
		return one(oPortRangeEnd, xU32)
	}
	return nil
}

// outKeys are the fields' keys.
var outKeys = [nOutFields]uint16{
	oSrcAddr: uint16(flowbin.KeySrcAddr), oDstAddr: uint16(flowbin.KeyDstAddr),
	oBytes: uint16(flowbin.KeyBytes), oPackets: uint16(flowbin.KeyPackets), oNextHop: uint16(flowbin.KeyNextHop),
	oSrcAs: uint16(flowbin.KeySrcAs), oDstAs: uint16(flowbin.KeyDstAs), oSrcNet: flowbin.KeySrcNet, oDstNet: flowbin.KeyDstNet,
	oInIf: flowbin.KeyInIf, oOutIf: flowbin.KeyOutIf, oProto: flowbin.KeyProto, oSrcPort: flowbin.KeySrcPort,
	oDstPort: flowbin.KeyDstPort, oTos: flowbin.KeyIpTos, oFwdStatus: flowbin.KeyForwardingStatus, oTTL: flowbin.KeyIpTtl,
	oTCPFlags: flowbin.KeyTcpFlags, oSrcMac: flowbin.KeySrcMac, oDstMac: flowbin.KeyDstMac, oVlan: flowbin.KeyVlanId,
	oIcmpType: flowbin.KeyIcmpType, oIcmpCode: flowbin.KeyIcmpCode, oSrcVlan: flowbin.KeySrcVlan, oDstVlan: flowbin.KeyDstVlan,
	oFragID: flowbin.KeyFragmentId, oFragOff: flowbin.KeyFragmentOffset, oFlowLabel: flowbin.KeyIpv6FlowLabel,
	oIPFlags: flowbin.KeyIpFlags, oObsPoint: flowbin.KeyObservationPointId, oBGPNextHop: flowbin.KeyBgpNextHop,
	oStart: flowbin.KeyTimeFlowStartNs, oEnd: flowbin.KeyTimeFlowEndNs,
	oPostNATSrc: flowbin.KeyPostNatSrcAddr, oPostNATDst: flowbin.KeyPostNatDstAddr,
	oPostNAPTSrcPort: flowbin.KeyPostNaptSrcPort, oPostNAPTDstPort: flowbin.KeyPostNaptDstPort,
	oNATEvent: flowbin.KeyNatEvent, oPortRangeStart: flowbin.KeyNatPortRangeStart,
	oPortRangeEnd: flowbin.KeyNatPortRangeEnd, oNATInstance: flowbin.KeyNatInstanceId, oNATPool: flowbin.KeyNatPoolId,
}

// isAux says whether a target fills the record state rather than a field.
func isAux(t target) bool {
	switch t {
	case tTotalBytes, tTotalPackets, tIPVersion, tMPLS, tStartDeltaUs, tEndDeltaUs, tStartUptime, tEndUptime,
		tSystemInitMs, tFrameSize, tObsSec, tObsMs, tObsNTP:
		return true
	}
	return isOptionTarget(t)
}

// newPlan compiles the plan of a flow program; nil when its records take
// the FlowMessage path.
func newPlan(p *program, version uint16, m *mapping.Mapping) *plan {
	if p.options || p.section.op != noOp || p.hasReverse {
		return nil
	}
	pl := &plan{dynRate: p.hasRate, version: version}
	var byField [nOutFields][]cand
	hasMPLS := false
	for i, o := range p.ops {
		if o.mapIdx >= 0 {
			e := m.Entry(version, int(o.mapIdx))
			if e.Standard {
				return nil // a mapping into flow.proto's fields: the FlowMessage path applies it
			}
			pl.mapped = append(pl.mapped, mappedOp{op: uint16(i), entry: e})
		}
		if o.length == 0 || o.target == tSkip {
			continue // a zero-length element sets nothing
		}
		if isAux(o.target) {
			pl.aux = append(pl.aux, uint16(i))
			hasMPLS = hasMPLS || o.target == tMPLS
			pl.dynRate = pl.dynRate || o.target == tSamplerID
			continue
		}
		for _, s := range sources(o.target) {
			if ok, fixed := addrFits(s.xf, o.length); !ok && fixed {
				continue // never the right length: never sets the field
			}
			byField[s.f] = append(byField[s.f], cand{op: uint16(i), xf: s.xf})
		}
	}

	add := func(s step) { pl.steps = append(pl.steps, s) }
	field := func(f outField, kind stepKind, keep uint8) {
		cs := byField[f]
		s := step{kind: kind, keep: keep}
		s.key, s.keyLen = outKeys[f], 1
		if s.key > 0xff {
			s.keyLen = 2
		}
		if kind == sUint {
			switch len(cs) {
			case 0:
				return
			case 1:
				s.op, s.xf = cs[0].op, cs[0].xf
			default:
				s.kind = sUintAny
			}
		}
		s.first = uint16(len(pl.cands))
		pl.cands = append(pl.cands, cs...)
		s.end = uint16(len(pl.cands))
		add(s)
	}
	add(step{kind: sHead})
	if pl.dynRate {
		add(step{kind: sRate})
		add(step{kind: sSeq})
	}
	field(oSrcAddr, sAddr, keepSrc)
	field(oDstAddr, sAddr, keepDst)
	field(oBytes, sBytes, keepNone)
	field(oPackets, sPackets, keepNone)
	add(step{kind: sSampler})
	field(oNextHop, sAddr, keepNone)
	for f := oSrcAs; f <= oDstMac; f++ {
		field(f, sUint, keepNone)
	}
	field(oVlan, sUint, keepNone)
	add(step{kind: sEtype})
	for f := oIcmpType; f <= oIPFlags; f++ {
		field(f, sUint, keepNone)
	}
	add(step{kind: sDomain})
	field(oObsPoint, sUint, keepNone)
	if hasMPLS {
		add(step{kind: sMPLS})
	}
	field(oBGPNextHop, sAddr, keepNone)
	add(step{kind: sRecv})
	field(oStart, sStart, keepNone)
	field(oEnd, sEnd, keepNone)
	field(oPostNATSrc, sAddr, keepNone)
	field(oPostNATDst, sAddr, keepNone)
	for f := oPostNAPTSrcPort; f <= oNATPool; f++ {
		field(f, sUint, keepNone)
	}
	// Drop the steps with nothing to write: address fields and time fields
	// without elements (times always run: relative and event times are aux).
	out := pl.steps[:0]
	for _, s := range pl.steps {
		if s.kind == sAddr && s.first == s.end {
			continue
		}
		if (s.kind == sStart || s.kind == sEnd) && s.first == s.end && !p.hasTimes {
			continue
		}
		out = append(out, s)
	}
	pl.steps = out
	pl.startStep, pl.endStep = -1, -1
	for i, s := range pl.steps {
		switch s.kind {
		case sStart:
			pl.startStep = i
		case sEnd:
			pl.endStep = i
		}
	}
	// Where the ops before the first variable-length one lie: fixed. The
	// fast form reads those by fixed offset, the others by step.
	pl.prefix = len(p.ops)
	offs, lens := make([]int32, len(p.ops)), make([]int32, len(p.ops))
	off := 0
	for i, o := range p.ops {
		if o.length == template.VariableLength {
			pl.prefix = i
			break
		}
		off += int(o.skip)
		offs[i], lens[i] = int32(off), int32(o.length)
		off += int(o.length)
	}
	if pl.prefix == len(p.ops) {
		pl.offs, pl.lens = offs, lens // records are located once for all
	}
	if off <= 0xffff { // a longer record never fits in a set
		pl.compileFast(p, offs[:pl.prefix])
	}
	return pl
}

// addrFits says whether an address rule accepts an element of a length,
// and whether that is known now (fixed length).
func addrFits(xf xform, length uint16) (ok, fixed bool) {
	if length == template.VariableLength {
		return true, false
	}
	switch xf {
	case xAddr4:
		return length == 4, true
	case xAddr6:
		return length == 16, true
	case xAddr4or16:
		return length == 4 || length == 16, true
	}
	return true, true
}

// planConsts are the bytes every record of a data set shares: type,
// sampling rate and sequence number, sampler address, observation domain,
// time received.
type planConsts struct {
	chunks   [nChunks]flowbin.Const
	baseNs   uint64 // export time, for sysUptime-relative times
	uptimeMs uint32
}

func (k *planConsts) set(c *pktCtx, pl *plan, samp *samplingState) {
	var buf [flowbin.ConstLen]byte
	b := append(buf[:0], flowbin.KeyType, byte(c.ftype))
	if !pl.dynRate {
		b = flowbin.Uint1(b, flowbin.KeySamplingRate, samp.rate)
		b = flowbin.Uint1(b, flowbin.KeySequenceNum, uint64(c.seq))
	}
	k.chunks[cHead] = flowbin.NewConst(b)
	k.chunks[cSeq] = flowbin.NewConst(flowbin.Uint1(buf[:0], flowbin.KeySequenceNum, uint64(c.seq)))
	k.chunks[cSampler] = flowbin.NewConst(append(append(buf[:0], flowbin.KeySamplerAddress, c.samplerLen), c.sampler[:c.samplerLen]...))
	k.chunks[cDomain] = flowbin.NewConst(flowbin.Uint2(buf[:0], flowbin.KeyObservationDomainId, uint64(c.domain)))
	k.chunks[cRecv] = flowbin.NewConst(flowbin.Uint2(buf[:0], flowbin.KeyTimeReceivedNs, c.receivedNs))
	k.baseNs, k.uptimeMs = uint64(c.exportSecs)*1e9, c.uptimeMs
}

// setV5 sets the constants of a v5 packet's records (v5Plan).
func (k *planConsts) setV5(h *v5Header, exporter netip.Addr, receivedNs uint64) {
	var buf [flowbin.ConstLen]byte
	b := append(buf[:0], flowbin.KeyType, byte(flowpb.FlowMessage_NETFLOW_V5))
	b = flowbin.Uint1(b, flowbin.KeySamplingRate, h.rate)
	k.chunks[cHead] = flowbin.NewConst(flowbin.Uint1(b, flowbin.KeySequenceNum, uint64(h.seq)))
	if exporter.Is4() {
		a := exporter.As4()
		k.chunks[cSampler] = flowbin.NewConst(append(buf[:0], flowbin.KeySamplerAddress, 4, a[0], a[1], a[2], a[3]))
	} else {
		a := exporter.As16()
		k.chunks[cSampler] = flowbin.NewConst(append(append(buf[:0], flowbin.KeySamplerAddress, 16), a[:]...))
	}
	k.chunks[cRecv] = flowbin.NewConst(flowbin.Uint2(buf[:0], flowbin.KeyTimeReceivedNs, receivedNs))
	k.baseNs, k.uptimeMs = h.base, h.uptime
}

// planState is what the steps of one record share.
type planState struct {
	p          *program
	c          *pktCtx
	samp       *samplingState
	rec        []byte
	offs, lens []int32
	r          *record
	src, dst   int // the lengths of the address fields written, for sEtype
	start, end uint64
	timesDone  bool
}

func (st *planState) val(op uint16) []byte {
	return st.rec[st.offs[op] : st.offs[op]+st.lens[op]]
}

// appendPlanned writes the record at the start of rec with p's plan and
// returns its length; ok is false when a variable-length element runs
// past rec (nothing is written then).
func (d *Decoder) appendPlanned(b []byte, c *pktCtx, p *program, samp *samplingState, rec []byte) ([]byte, int, bool) {
	pl := p.plan
	st := &planState{p: p, c: c, samp: samp, rec: rec, offs: pl.offs, lens: pl.lens, r: &zeroRecord}
	used := p.fixedLen
	if st.offs == nil {
		var ok bool
		if used, ok = d.locateAll(p, rec); !ok {
			return b, 0, false
		}
		st.offs, st.lens = d.offs, d.lens
	}
	if len(pl.aux) > 0 {
		d.rec = record{}
		st.r = &d.rec
		for _, op := range pl.aux {
			if v := st.val(op); len(v) > 0 {
				o := &p.ops[op]
				st.r.setAux(o.target, o.arg, v)
			}
		}
	}
	b, frame := flowbin.Open(b, d.wide)
	if pl.fast != nil {
		b = d.appendFast(b, pl, st, rec[:used])
	} else {
		for i := range pl.steps {
			b = d.step(b, &pl.steps[i], st)
		}
	}
	for _, mo := range pl.mapped {
		if v := st.val(mo.op); len(v) > 0 {
			b = mo.entry.Append(b, v)
		}
	}
	b, d.wide = flowbin.Close(b, frame, d.wide)
	return b, used, true
}

// step writes one field.
func (d *Decoder) step(b []byte, s *step, st *planState) []byte {
	pl := st.p.plan
	k := &d.consts
	switch s.kind {
	case sUint:
		if v := xfUint(s.xf, st.val(s.op)); v != 0 {
			b = flowbin.Varint(appendKey(b, s), v)
		}
	case sUintAny:
		if v, _ := lastUint(pl.cands[s.first:s.end], st); v != 0 {
			b = flowbin.Varint(appendKey(b, s), v)
		}
	case sHead:
		b = append(b, k.chunks[cHead].Bytes()...)
	case sRate:
		b = flowbin.Uint1(b, flowbin.KeySamplingRate, st.r.samplingRate(st.p, st.samp))
	case sSeq:
		b = append(b, k.chunks[cSeq].Bytes()...)
	case sSampler:
		b = append(b, k.chunks[cSampler].Bytes()...)
	case sDomain:
		b = append(b, k.chunks[cDomain].Bytes()...)
	case sRecv:
		b = append(b, k.chunks[cRecv].Bytes()...)
	case sAddr:
		var a []byte
		for _, c := range pl.cands[s.first:s.end] {
			v := st.val(c.op)
			if valueFits(c.xf, v) && (len(a) == 0 || !allZero(v)) {
				a = v
			}
		}
		if len(a) > 0 {
			b = append(append(appendKey(b, s), byte(len(a))), a...)
		}
		switch s.keep {
		case keepSrc:
			st.src = len(a)
		case keepDst:
			st.dst = len(a)
		}
	case sBytes:
		v, _ := lastUint(pl.cands[s.first:s.end], st)
		v, _ = st.r.counters(v, 1)
		b = flowbin.Uint1(b, flowbin.KeyBytes, v)
	case sPackets:
		v, _ := lastUint(pl.cands[s.first:s.end], st)
		_, v = st.r.counters(1, v)
		b = flowbin.Uint1(b, flowbin.KeyPackets, v)
	case sEtype:
		b = flowbin.Uint2(b, flowbin.KeyEtype, uint64(etypeOf(st.r.ipVersion, st.src, st.dst, 0)))
	case sMPLS:
		b = flowbin.Packed2(b, flowbin.KeyMplsLabel, st.r.labels())
	case sStart, sEnd:
		if !st.timesDone {
			st.start, st.end = planTimes(st)
			st.timesDone = true
		}
		if s.kind == sStart {
			b = flowbin.Uint2(b, flowbin.KeyTimeFlowStartNs, st.start)
		} else {
			b = flowbin.Uint2(b, flowbin.KeyTimeFlowEndNs, st.end)
		}
	}
	return b
}

// zeroRecord is the record state of a plan without aux elements.
var zeroRecord record

// planTimes are the record's flow start and end: its absolute times, then
// its relative and event times (flowTimes).
func planTimes(st *planState) (start, end uint64) {
	pl := st.p.plan
	if pl.startStep >= 0 {
		s := &pl.steps[pl.startStep]
		start, _ = lastUint(pl.cands[s.first:s.end], st)
	}
	if pl.endStep >= 0 {
		s := &pl.steps[pl.endStep]
		end, _ = lastUint(pl.cands[s.first:s.end], st)
	}
	if st.p.hasTimes {
		start, end = flowTimes(st.c, st.samp, st.r, start, end)
	}
	return start, end
}

// lastUint is the value of the last non-empty element of cs.
func lastUint(cs []cand, st *planState) (uint64, bool) {
	for i := len(cs) - 1; i >= 0; i-- {
		if v := st.val(cs[i].op); len(v) > 0 {
			return xfUint(cs[i].xf, v), true
		}
	}
	return 0, false
}

func xfUint(xf xform, v []byte) uint64 {
	switch xf {
	case xU64:
		return be(v)
	case xU32:
		return uint64(uint32(be(v)))
	case xFlags:
		return uint64(uint32(be(v)) >> 5)
	case xICMPType:
		return uint64(uint32(be(v)>>8) & 0xff)
	case xICMPCode:
		return uint64(uint32(be(v)) & 0xff)
	case xSec:
		return be(v) * 1e9
	case xMs:
		return be(v) * 1e6
	case xNTP:
		return ntpTime(v)
	}
	return 0
}

func valueFits(xf xform, v []byte) bool {
	switch xf {
	case xAddr4:
		return len(v) == 4
	case xAddr6:
		return len(v) == 16
	}
	return len(v) == 4 || len(v) == 16
}

// appendKey writes the step's field key.
func appendKey(b []byte, s *step) []byte {
	b = append(b, byte(s.key), byte(s.key>>8))
	return b[:len(b)-2+int(s.keyLen)]
}

// locateAll finds where each op's value lies in a record of a template
// with variable-length elements, into d.offs and d.lens, and returns the
// record's length; false when an element runs past rec.
func (d *Decoder) locateAll(p *program, rec []byte) (int, bool) {
	if cap(d.offs) < len(p.ops) {
		d.offs, d.lens = make([]int32, len(p.ops)), make([]int32, len(p.ops))
	}
	offs, lens := d.offs[:len(p.ops)], d.lens[:len(p.ops)]
	off := 0
	for i := range p.ops {
		o := &p.ops[i]
		off += int(o.skip)
		l := int(o.length)
		if o.length == template.VariableLength {
			if off >= len(rec) {
				return 0, false
			}
			l = int(rec[off])
			off++
			if l == 255 {
				if off+2 > len(rec) {
					return 0, false
				}
				l = int(binary.BigEndian.Uint16(rec[off:]))
				off += 2
			}
		}
		if off+l > len(rec) {
			return 0, false
		}
		offs[i], lens[i] = int32(off), int32(l)
		off += l
	}
	d.offs, d.lens = offs, lens
	return off, true
}

// The fast form of a plan, for fixed-length templates: each field is one
// fop, and the fields that a template gives the plain way (an integer of
// 1, 2, 4, 6 or 8 bytes, an address, an absolute time, a constant) are
// written by appendFast's loop itself; the others (fSlow) go through step.
type fopKind uint8

const (
	fU8 fopKind = iota
	fU16
	fU32
	fU48
	fU64
	fSec4  // flowStartSeconds and the like: 4 bytes
	fMs8   // flowStartMilliseconds and the like: 8 bytes
	fUp4   // v5 First/Last, v9 FIRST/LAST_SWITCHED: 4 bytes of sysUptime ms
	fAddr  // an address of n bytes, always written
	fConst // chunk n of the data set's constants
	fStatic
	fSlow
)

type fop struct {
	kind  fopKind
	short uint8 // 2 - the key's length
	key   [2]byte
	n     uint8  // fAddr: the length; fConst: the chunk; fStatic: pl.static's
	off   uint16 // where the value starts in the record
}

// fastSeg is a run of fops without a slow one, then the slow step that
// follows it (-1: none).
type fastSeg struct {
	first, end uint16
	slow       int
}

// Chunks of planConsts.
const (
	cHead = iota
	cSeq
	cSampler
	cDomain
	cRecv
	nChunks
)

// compileFast builds pl.fast for a fixed-length template.
func (pl *plan) compileFast(p *program, offs []int32) {
	// etype is a constant when no element gives the IP version and each
	// address field has at most one element, of a fixed length.
	etypeStatic := true
	for _, op := range pl.aux {
		if p.ops[op].target == tIPVersion {
			etypeStatic = false
		}
	}
	srcLen, dstLen := 0, 0
	for _, s := range pl.steps {
		if s.kind != sAddr || s.keep == keepNone {
			continue
		}
		if s.end-s.first != 1 {
			etypeStatic = false
			continue
		}
		l := int(p.ops[pl.cands[s.first].op].length)
		if s.keep == keepSrc {
			srcLen = l
		} else {
			dstLen = l
		}
	}
	// v9 times from FIRST/LAST_SWITCHED alone: uptimeTime on 4 bytes,
	// without the record state.
	upOps := map[target]uint16{}
	upOnly := pl.version == 9
	for _, op := range pl.aux {
		o := p.ops[op]
		switch o.target {
		case tStartUptime, tEndUptime:
			if _, dup := upOps[o.target]; dup || o.length != 4 || int(op) >= len(offs) {
				upOnly = false
			}
			upOps[o.target] = op
		case tStartDeltaUs, tEndDeltaUs, tObsSec, tObsMs, tObsNTP:
			upOnly = false
		}
	}
	for _, i := range []int{pl.startStep, pl.endStep} {
		if i >= 0 && pl.steps[i].first != pl.steps[i].end {
			upOnly = false // absolute times too
		}
	}
	if upOnly && len(upOps) > 0 {
		aux := pl.aux[:0]
		for _, op := range pl.aux {
			if t := p.ops[op].target; t != tStartUptime && t != tEndUptime {
				aux = append(aux, op)
			}
		}
		pl.aux = aux
	} else {
		upOps = nil
	}
	fopKey := func(s *step) fop {
		return fop{key: [2]byte{byte(s.key), byte(s.key >> 8)}, short: 2 - s.keyLen}
	}
	uintKind := func(xf xform, length uint16) (fopKind, bool) {
		if xf != xU64 && !(xf == xU32 && length <= 4) {
			return 0, false
		}
		switch length {
		case 1:
			return fU8, true
		case 2:
			return fU16, true
		case 4:
			return fU32, true
		case 6:
			return fU48, true
		case 8:
			return fU64, true
		}
		return 0, false
	}
	fixed := func(op uint16) bool { return int(op) < len(offs) } // before any variable-length element
	pl.fast, pl.segs = pl.fast[:0], pl.segs[:0]
	first := uint16(0)
	for i := range pl.steps {
		s := &pl.steps[i]
		f := fopKey(s)
		f.kind = fSlow
		cs := pl.cands[s.first:s.end]
		switch s.kind {
		case sHead, sSeq, sSampler, sDomain, sRecv:
			f.kind = fConst
			f.n = map[stepKind]uint8{sHead: cHead, sSeq: cSeq, sSampler: cSampler, sDomain: cDomain, sRecv: cRecv}[s.kind]
		case sUint:
			o := p.ops[s.op]
			if k, ok := uintKind(s.xf, o.length); ok && fixed(s.op) {
				f.kind, f.off = k, uint16(offs[s.op])
			}
		case sBytes, sPackets:
			if len(pl.aux) > 0 || len(cs) > 1 || (len(cs) == 1 && !fixed(cs[0].op)) {
				break
			}
			if len(cs) == 0 {
				continue // nothing to write
			}
			key := flowbin.KeyBytes
			if s.kind == sPackets {
				key = flowbin.KeyPackets
			}
			f.key, f.short = [2]byte{key, 0}, 1
			if k, ok := uintKind(cs[0].xf, p.ops[cs[0].op].length); ok {
				f.kind, f.off = k, uint16(offs[cs[0].op])
			}
		case sAddr:
			if len(cs) != 1 || !fixed(cs[0].op) || (s.keep != keepNone && !etypeStatic) {
				break
			}
			l := p.ops[cs[0].op].length
			if ok, fixed := addrFits(cs[0].xf, l); ok && fixed {
				f.kind, f.off, f.n = fAddr, uint16(offs[cs[0].op]), uint8(l)
			}
		case sEtype:
			if !etypeStatic {
				break
			}
			e := flowbin.Uint2(nil, flowbin.KeyEtype, uint64(etypeOf(0, srcLen, dstLen, 0)))
			if len(e) == 0 {
				continue
			}
			f.kind, f.n = fStatic, uint8(len(pl.static))
			pl.static = append(pl.static, flowbin.NewConst(e))
		case sStart, sEnd:
			if upOps != nil {
				t := tStartUptime
				if s.kind == sEnd {
					t = tEndUptime
				}
				op, ok := upOps[t]
				if !ok {
					continue // nothing sets it
				}
				f.kind, f.off = fUp4, uint16(offs[op])
				break
			}
			if p.hasTimes || len(cs) > 1 {
				break
			}
			if len(cs) == 0 {
				continue
			}
			if !fixed(cs[0].op) {
				break
			}
			switch l := p.ops[cs[0].op].length; {
			case cs[0].xf == xSec && l == 4:
				f.kind = fSec4
			case cs[0].xf == xMs && l == 8:
				f.kind = fMs8
			}
			f.off = uint16(offs[cs[0].op])
		}
		if f.kind == fSlow {
			pl.segs = append(pl.segs, fastSeg{first: first, end: uint16(len(pl.fast)), slow: i})
			first = uint16(len(pl.fast))
			continue
		}
		pl.fast = append(pl.fast, f)
	}
	pl.segs = append(pl.segs, fastSeg{first: first, end: uint16(len(pl.fast)), slow: -1})
}

// fopMax bounds what one fop writes: a two-byte key and a ten-byte
// varint, an address, or a constant, which is copied whole and then cut
// to its length.
const fopMax = flowbin.ConstLen

// appendFast writes the fields of a fixed-length record (rec is exactly
// the record). Between slow steps, the output has room reserved for every
// fop, so that the loop writes by index and calls nothing: the compiler
// then keeps its state in registers.
func (d *Decoder) appendFast(b []byte, pl *plan, st *planState, rec []byte) []byte {
	consts := &d.consts
	chunks := &consts.chunks
	for _, seg := range pl.segs {
		// Room for the fops up to the slow step that ends the run.
		run := pl.fast[seg.first:seg.end]
		if free := cap(b) - len(b); free < len(run)*fopMax {
			b = slices.Grow(b, len(run)*fopMax)
		}
		buf := b[:cap(b)]
		n := len(b)
		for i := range run {
			f := &run[i]
			off := int(f.off)
			var x uint64
			switch f.kind {
			case fU8:
				x = uint64(rec[off])
			case fU16:
				x = uint64(binary.BigEndian.Uint16(rec[off : off+2 : off+2]))
			case fU32:
				x = uint64(binary.BigEndian.Uint32(rec[off : off+4 : off+4]))
			case fU48:
				v := rec[off : off+6 : off+6]
				x = uint64(binary.BigEndian.Uint16(v))<<32 | uint64(binary.BigEndian.Uint32(v[2:]))
			case fU64:
				x = binary.BigEndian.Uint64(rec[off : off+8 : off+8])
			case fSec4:
				x = uint64(binary.BigEndian.Uint32(rec[off:off+4:off+4])) * 1e9
			case fMs8:
				x = binary.BigEndian.Uint64(rec[off:off+8:off+8]) * 1e6
			case fUp4:
				x = uptimeTime(consts.baseNs, consts.uptimeMs, binary.BigEndian.Uint32(rec[off:off+4:off+4]))
			case fAddr:
				w := buf[n : n+19 : n+19]
				w[0], w[1] = f.key[0], f.key[1]
				k := 2 - int(f.short)
				w[k] = f.n
				if f.n == 4 {
					*(*[4]byte)(w[k+1 : k+5]) = [4]byte(rec[off : off+4])
				} else {
					*(*[16]byte)(w[k+1 : k+17]) = [16]byte(rec[off : off+16])
				}
				n += k + 1 + int(f.n)
				continue
			case fConst:
				n += chunks[f.n].Put(buf[n:])
				continue
			case fStatic:
				n += pl.static[f.n].Put(buf[n:])
				continue
			}
			if x == 0 {
				continue
			}
			w := buf[n : n+12 : n+12]
			w[0], w[1] = f.key[0], f.key[1]
			k := 2 - int(f.short)
			switch {
			case x < 1<<7:
				w[k] = byte(x)
				n += k + 1
			case x < 1<<14:
				w[k], w[k+1] = byte(x)|0x80, byte(x>>7)
				n += k + 2
			case x < 1<<56:
				// Eight 7-bit groups at once (flowbin.PutVarint, inlined).
				l := (bits.Len64(x) + 6) / 7
				binary.LittleEndian.PutUint64(w[k:k+8], flowbin.Spread(x)|0x8080808080808080&(1<<(8*(l-1))-1))
				n += k + l
			default: // nanosecond times
				binary.LittleEndian.PutUint64(w[k:k+8], flowbin.Spread(x)|0x8080808080808080)
				x >>= 56
				if x < 1<<7 {
					w[k+8] = byte(x)
					n += k + 9
				} else {
					w[k+8], w[k+9] = byte(x)|0x80, byte(x>>7)
					n += k + 10
				}
			}
		}
		b = buf[:n]
		if seg.slow >= 0 {
			b = d.step(b, &pl.steps[seg.slow], st)
		}
	}
	return b
}
