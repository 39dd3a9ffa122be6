package netflow

import (
	"fmt"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/mapping"
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
	// options data
	tSamplingInterval
	tSamplerRandomInterval
	tSamplingPacketInterval
	tSamplingPacketSpace
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
	case 305:
		return tSamplingPacketInterval, 0
	case 306:
		return tSamplingPacketSpace, 0
	}
	return tSkip, 0
}

// op decodes one field of a record.
type op struct {
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
		p := &program{ops: make([]op, len(s.Fields)), options: s.Options, minLen: s.MinRecordLength()}
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
			if i < s.ScopeFields {
				o.target = tSkip // scope fields identify, they carry no flow data
			}
			if s.Options != isOptionTarget(o.target) && o.target != tSkip && o.target != tSystemInitMs {
				// An options record only feeds sampling; a flow record's own
				// sampler id picks the rate.
				if !(o.target == tSamplerID && !s.Options) {
					o.target = tSkip
				}
			}
			p.ops[i] = o
		}
		return p, nil
	}
}

func isOptionTarget(t target) bool {
	return t >= tSamplingInterval
}
