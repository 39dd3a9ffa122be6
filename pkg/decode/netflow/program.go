package netflow

import (
	"encoding/binary"
	"fmt"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
	"github.com/flowpipe/flowpipe/pkg/decode/packet"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
)

// target is what a field of a record is decoded into.
type target uint8

const (
	tSkip target = iota
	tBytes
	tPackets
	tTotalBytes
	tTotalPackets
	tRevBytes
	tRevPackets
	tRevTCPFlags
	tProto
	tTOS
	tTCPFlags
	tSrcPort
	tDstPort
	tSrcAddr4
	tDstAddr4
	tSrcAddr6
	tDstAddr6
	tSrcMask
	tDstMask
	tInIf
	tOutIf
	tNextHop
	tBGPNextHop
	tSrcAS
	tDstAS
	tSrcMAC
	tDstMAC
	tSrcVLAN
	tDstVLAN
	tVLAN
	tForwardingStatus
	tICMPTypeCode
	tICMPType
	tICMPCode
	tFlowLabel
	tFragmentID
	tFragmentOffset
	tFragmentFlags
	tTTL
	tIPVersion
	tMPLS
	tObservationPointID
	tStartSec
	tEndSec
	tStartMs
	tEndMs
	tStartNTP // dateTimeMicroseconds / dateTimeNanoseconds: NTP format
	tEndNTP
	tStartDeltaUs
	tEndDeltaUs
	tStartUptime // v9 FIRST_SWITCHED, IPFIX flowStartSysUpTime
	tEndUptime
	tSystemInitMs
	tObsSec // observationTime*: one instant (NAT events), flow start and end when no flow time says otherwise
	tObsMs
	tObsNTP
	tFrameSize // dataLinkFrameSize: bytes when the record has no octet counter
	// NAT (RFC 8158, RFC 7659)
	tPostNATSrc4
	tPostNATDst4
	tPostNATSrc6
	tPostNATDst6
	tPostNAPTSrcPort
	tPostNAPTDstPort
	tNATEvent
	tNATPoolID
	tNATInstanceID
	tPortRangeStart
	tPortRangeEnd
	// sampling: options data, or the data record itself
	tSamplingInterval
	tSamplerRandomInterval
	tSamplingPacketInterval
	tSamplingPacketSpace
	tSamplingSize
	tSamplingPopulation
	tSamplingProbability
	tSamplerID
)

// reversePEN is RFC 5103's enterprise number for biflow reverse elements.
const reversePEN = 29305

// ianaTarget maps an IANA information element (also NetFlow v9 field
// types, which share the numbers) to its target; arg is the MPLS stack
// position.
func ianaTarget(id uint16) (t target, arg uint8) {
	switch id {
	case 1:
		return tBytes, 0
	case 2:
		return tPackets, 0
	case 4:
		return tProto, 0
	case 5:
		return tTOS, 0
	case 6:
		return tTCPFlags, 0
	case 7:
		return tSrcPort, 0
	case 8:
		return tSrcAddr4, 0
	case 9, 29:
		return tSrcMask, 0
	case 10:
		return tInIf, 0
	case 11:
		return tDstPort, 0
	case 12:
		return tDstAddr4, 0
	case 13, 30:
		return tDstMask, 0
	case 14:
		return tOutIf, 0
	case 15, 62:
		return tNextHop, 0
	case 16:
		return tSrcAS, 0
	case 17:
		return tDstAS, 0
	case 18, 63:
		return tBGPNextHop, 0
	case 21:
		return tEndUptime, 0
	case 22:
		return tStartUptime, 0
	case 23:
		return tBytes, 0 // OUT_BYTES: goflow2 reads it as the byte count too
	case 24:
		return tPackets, 0
	case 27:
		return tSrcAddr6, 0
	case 28:
		return tDstAddr6, 0
	case 31:
		return tFlowLabel, 0
	case 32, 139:
		return tICMPTypeCode, 0
	case 34:
		return tSamplingInterval, 0
	case 48, 302:
		return tSamplerID, 0
	case 50:
		return tSamplerRandomInterval, 0
	case 52, 192:
		return tTTL, 0
	case 54:
		return tFragmentID, 0
	case 56, 81:
		return tSrcMAC, 0
	case 57, 80:
		return tDstMAC, 0
	case 58:
		return tSrcVLAN, 0
	case 59, 254:
		return tDstVLAN, 0
	case 243:
		return tVLAN, 0
	case 60:
		return tIPVersion, 0
	case 70, 71, 72, 73, 74, 75, 76, 77, 78, 79:
		return tMPLS, uint8(id - 70)
	case 85:
		return tTotalBytes, 0
	case 86:
		return tTotalPackets, 0
	case 88:
		return tFragmentOffset, 0
	case 89:
		return tForwardingStatus, 0
	case 138:
		return tObservationPointID, 0
	case 150:
		return tStartSec, 0
	case 151:
		return tEndSec, 0
	case 152:
		return tStartMs, 0
	case 153:
		return tEndMs, 0
	case 154, 156:
		return tStartNTP, 0
	case 155, 157:
		return tEndNTP, 0
	case 158:
		return tStartDeltaUs, 0
	case 159:
		return tEndDeltaUs, 0
	case 160:
		return tSystemInitMs, 0
	case 176, 178:
		return tICMPType, 0
	case 177, 179:
		return tICMPCode, 0
	case 197:
		return tFragmentFlags, 0
	case 225:
		return tPostNATSrc4, 0
	case 226:
		return tPostNATDst4, 0
	case 227:
		return tPostNAPTSrcPort, 0
	case 228:
		return tPostNAPTDstPort, 0
	case 230:
		return tNATEvent, 0
	case 281:
		return tPostNATSrc6, 0
	case 282:
		return tPostNATDst6, 0
	case 283:
		return tNATPoolID, 0
	case 305:
		return tSamplingPacketInterval, 0
	case 306:
		return tSamplingPacketSpace, 0
	case 309:
		return tSamplingSize, 0
	case 310:
		return tSamplingPopulation, 0
	case 311:
		return tSamplingProbability, 0
	case 312:
		return tFrameSize, 0
	case 322:
		return tObsSec, 0
	case 323:
		return tObsMs, 0
	case 324, 325:
		return tObsNTP, 0
	case 361:
		return tPortRangeStart, 0
	case 362:
		return tPortRangeEnd, 0
	case 463:
		return tNATInstanceID, 0
	}
	return tSkip, 0
}

// Packet sections: elements carrying the first bytes of the sampled packet,
// decoded with package packet before the record's other fields (which then
// take precedence over what the section says).
const (
	ieL2SectionOffset   = 102 // layer2packetSectionOffset
	ieL2SectionData     = 104 // layer2packetSectionData (Cisco): an Ethernet frame
	ieIPHeaderSection   = 313 // ipHeaderPacketSection: from the IP header
	ieFrameSection      = 315 // dataLinkFrameSection (RFC 7133)
	ieMPLSLabelSection  = 316 // mplsLabelStackSection: from the label stack
	ieDataLinkFrameType = 408 // dataLinkFrameType: 1 is IEEE 802.3 Ethernet
	dataLinkEthernet    = 1
	sectionMaxLabels    = 16 // as sFlow's default
	noOp                = -1
)

// sectionPriority orders the section elements when a template has several:
// the one that starts lowest in the packet says the most.
func sectionPriority(id uint16) int {
	switch id {
	case ieFrameSection:
		return 4
	case ieL2SectionData:
		return 3
	case ieMPLSLabelSection:
		return 2
	case ieIPHeaderSection:
		return 1
	}
	return 0
}

// sectionSpec says where a template's records carry a packet section.
type sectionSpec struct {
	op        int          // the section's op; noOp: none
	first     packet.Layer // packet.None: IPv4 or IPv6 by the version nibble
	frameType int          // dataLinkFrameType's op (frame sections), or noOp
	offset    int          // layer2packetSectionOffset's op (Cisco), or noOp
	priority  int
	// offsets[i] is where op i starts in every record, for the ops up to
	// and including the first variable-length one.
	offsets []int
}

// op decodes one field of a record.
type op struct {
	skip   uint16 // bytes of unused fixed-length fields before this one
	length uint16 // template.VariableLength: read the length prefix
	target target
	arg    uint8
	mapIdx int16 // mapping entry, -1 when unmapped
}

// program is a compiled template: the record is decoded by walking ops.
type program struct {
	ops        []op
	minLen     int // least bytes a record occupies (> 0)
	fixedLen   int // the record length when no field is variable, else 0
	options    bool
	hasReverse bool
	hasMapped  bool
	hasRate    bool // a flow template with sampling elements of its own
	hasNAT     bool // post-NAT addresses
	hasTimes   bool // relative or event times to turn into flow times
	section    sectionSpec
	plan       *plan // AppendRecords' direct path; nil: the FlowMessage path
}

// locate returns the value of op i in record b, or nil when b ends first.
func (p *program) locate(b []byte, i int) []byte {
	offs := p.section.offsets
	start := min(i, len(offs)-1)
	off := offs[start] // past the op's skip already
	for j := start; j <= i; j++ {
		if j > start {
			off += int(p.ops[j].skip)
		}
		l := int(p.ops[j].length)
		if p.ops[j].length == template.VariableLength {
			if off >= len(b) {
				return nil
			}
			l = int(b[off])
			off++
			if l == 255 {
				if off+2 > len(b) {
					return nil
				}
				l = int(binary.BigEndian.Uint16(b[off:]))
				off += 2
			}
		}
		if off+l > len(b) {
			return nil
		}
		if j == i {
			return b[off : off+l]
		}
		off += l
	}
	return nil
}

// maxFields bounds a template (a 64 KiB set holds at most 16383 four-byte
// field specifiers).
const maxFields = 16383

// compile turns a template into a program. A template whose records would
// be empty is refused: nothing could be decoded from it, and walking its
// records would not advance.
func compile(m *mapping.Mapping) func(template.Key, *template.Spec) (*program, error) {
	return func(k template.Key, s *template.Spec) (*program, error) {
		if len(s.Fields) == 0 || len(s.Fields) > maxFields {
			return nil, fmt.Errorf("netflow: %s: %d fields: %w", k, len(s.Fields), decode.ErrMalformed)
		}
		p := &program{ops: make([]op, len(s.Fields)), options: s.Options, minLen: s.MinRecordLength(),
			section: sectionSpec{op: noOp, frameType: noOp, offset: noOp}}
		if p.minLen == 0 {
			return nil, fmt.Errorf("netflow: %s: every field has length 0: %w", k, decode.ErrMalformed)
		}
		p.fixedLen = p.minLen
		for i, f := range s.Fields {
			o := op{length: f.Length, mapIdx: -1}
			if f.Length == template.VariableLength {
				if k.Version != 10 {
					return nil, fmt.Errorf("netflow: %s: variable-length field in NetFlow v9: %w", k, decode.ErrMalformed)
				}
				p.fixedLen = 0
			}
			if idx := m.Lookup(k.Version, f.PEN, f.ID); idx >= 0 {
				o.mapIdx = int16(idx)
				p.hasMapped = true
			}
			switch {
			case f.PEN == 0:
				o.target, o.arg = ianaTarget(f.ID)
			case f.PEN == reversePEN && !s.Options:
				switch f.ID {
				case 1, 23, 85:
					o.target = tRevBytes
				case 2, 24, 86:
					o.target = tRevPackets
				case 6:
					o.target = tRevTCPFlags
				}
				if o.target != tSkip {
					p.hasReverse = true
				}
			}
			if i < s.ScopeFields && o.target != tSamplerID {
				// Scope fields identify, they carry no flow data; a sampler
				// or selector id (RFC 5476's selector reports scope on
				// selectorId) says whose rate the record gives.
				o.target = tSkip
			}
			if s.Options && !isOptionTarget(o.target) && o.target != tSystemInitMs {
				// An options record only feeds sampling. A flow record keeps
				// its sampling elements: its own rate comes first, its
				// sampler id picks a sampler's rate.
				o.target = tSkip
			}
			if f.PEN == 0 && !s.Options {
				p.section.note(i, f.ID)
			}
			p.ops[i] = o
		}
		for _, o := range p.ops {
			switch {
			case !s.Options && isOptionTarget(o.target) && o.target != tSamplerID:
				p.hasRate = true
			case o.target >= tPostNATSrc4 && o.target <= tPostNATDst6:
				p.hasNAT = true
			case o.target >= tStartDeltaUs && o.target <= tObsNTP:
				p.hasTimes = true
			}
		}
		p.mergeSkips()
		if p.section.op != noOp {
			p.section.offsets = p.fixedOffsets()
		}
		p.plan = newPlan(p, k.Version, m)
		return p, nil
	}
}

// mergeSkips folds the fixed-length fields that decode into nothing
// (elements flowpipe does not use, e.g. a vendor's) into the skip of the
// op after them, so that a record walks only the fields it uses.
// Section-related ops stay addressable.
func (p *program) mergeSkips() {
	s := &p.section
	keep := func(i int) bool { return i == s.op || i == s.frameType || i == s.offset }
	out := make([]op, 0, len(p.ops))
	remap := make([]int, len(p.ops))
	pending := 0
	for i, o := range p.ops {
		if o.target == tSkip && o.mapIdx < 0 && o.length != template.VariableLength && !keep(i) {
			pending += int(o.length)
			remap[i] = -1
			continue
		}
		if pending >= template.VariableLength { // a run too long to fold: its own op
			out = append(out, op{length: uint16(min(pending, template.VariableLength-1)), mapIdx: -1})
			pending -= int(out[len(out)-1].length)
			for pending >= template.VariableLength {
				out = append(out, op{length: template.VariableLength - 1, mapIdx: -1})
				pending -= template.VariableLength - 1
			}
		}
		o.skip = uint16(pending)
		pending = 0
		remap[i] = len(out)
		out = append(out, o)
	}
	for pending > 0 { // trailing unused fields
		n := min(pending, template.VariableLength-1)
		out = append(out, op{length: uint16(n), mapIdx: -1})
		pending -= n
	}
	p.ops = out
	for _, idx := range []*int{&s.op, &s.frameType, &s.offset} {
		if *idx != noOp {
			*idx = remap[*idx]
		}
	}
}

// fixedOffsets returns where each op's bytes start (after its skip), up to
// and including the first variable-length one (the offsets after it vary
// by record).
func (p *program) fixedOffsets() []int {
	offs := make([]int, 0, len(p.ops))
	off := 0
	for _, o := range p.ops {
		off += int(o.skip)
		offs = append(offs, off)
		if o.length == template.VariableLength {
			break
		}
		off += int(o.length)
	}
	return offs
}

// note records op i if it is a packet section or one of its companions.
func (s *sectionSpec) note(i int, id uint16) {
	switch id {
	case ieDataLinkFrameType:
		s.frameType = i
	case ieL2SectionOffset:
		s.offset = i
	}
	pr := sectionPriority(id)
	if pr == 0 || (s.op != noOp && pr <= s.priority) {
		return
	}
	s.op, s.priority = i, pr
	switch id {
	case ieFrameSection, ieL2SectionData:
		s.first = packet.Ethernet
	case ieMPLSLabelSection:
		s.first = packet.MPLS
	case ieIPHeaderSection:
		s.first = packet.None
	}
}

func isOptionTarget(t target) bool {
	return t >= tSamplingInterval
}
