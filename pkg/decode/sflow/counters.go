package sflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/flowpipe/flowpipe/pkg/decode"
)

// CounterRecord is one counter sample (compact or expanded) with the
// records this package reads: generic interface counters and Ethernet
// counters. It marshals to JSON as it is.
type CounterRecord struct {
	Agent          netip.Addr `json:"agent"`
	SubAgentID     uint32     `json:"sub_agent_id"`
	SequenceNum    uint32     `json:"sequence_num"`    // datagram sequence
	SampleSequence uint32     `json:"sample_sequence"` // this source's counter sample sequence
	SourceIDType   uint32     `json:"source_id_type"`  // 0 ifIndex, 1 smonVlanDataSource, 2 entPhysicalEntry
	SourceIDIndex  uint32     `json:"source_id_index"`
	TimeReceivedNs uint64     `json:"time_received_ns"`

	Interface *IfCounters       `json:"interface,omitempty"` // record 1, nil when absent
	Ethernet  *EthernetCounters `json:"ethernet,omitempty"`  // record 2, nil when absent
	// OtherRecords counts records of other formats, skipped.
	OtherRecords int `json:"other_records,omitempty"`
}

// IfCounters is the generic interface counters record (format 1).
type IfCounters struct {
	IfIndex            uint32 `json:"if_index"`
	IfType             uint32 `json:"if_type"`
	IfSpeed            uint64 `json:"if_speed"`
	IfDirection        uint32 `json:"if_direction"`
	IfStatus           uint32 `json:"if_status"`
	IfInOctets         uint64 `json:"if_in_octets"`
	IfInUcastPkts      uint32 `json:"if_in_ucast_pkts"`
	IfInMulticastPkts  uint32 `json:"if_in_multicast_pkts"`
	IfInBroadcastPkts  uint32 `json:"if_in_broadcast_pkts"`
	IfInDiscards       uint32 `json:"if_in_discards"`
	IfInErrors         uint32 `json:"if_in_errors"`
	IfInUnknownProtos  uint32 `json:"if_in_unknown_protos"`
	IfOutOctets        uint64 `json:"if_out_octets"`
	IfOutUcastPkts     uint32 `json:"if_out_ucast_pkts"`
	IfOutMulticastPkts uint32 `json:"if_out_multicast_pkts"`
	IfOutBroadcastPkts uint32 `json:"if_out_broadcast_pkts"`
	IfOutDiscards      uint32 `json:"if_out_discards"`
	IfOutErrors        uint32 `json:"if_out_errors"`
	IfPromiscuousMode  uint32 `json:"if_promiscuous_mode"`
}

const ifCountersLen = 88

// EthernetCounters is the Ethernet interface counters record (format 2).
type EthernetCounters struct {
	AlignmentErrors           uint32 `json:"dot3_stats_alignment_errors"`
	FCSErrors                 uint32 `json:"dot3_stats_fcs_errors"`
	SingleCollisionFrames     uint32 `json:"dot3_stats_single_collision_frames"`
	MultipleCollisionFrames   uint32 `json:"dot3_stats_multiple_collision_frames"`
	SQETestErrors             uint32 `json:"dot3_stats_sqe_test_errors"`
	DeferredTransmissions     uint32 `json:"dot3_stats_deferred_transmissions"`
	LateCollisions            uint32 `json:"dot3_stats_late_collisions"`
	ExcessiveCollisions       uint32 `json:"dot3_stats_excessive_collisions"`
	InternalMacTransmitErrors uint32 `json:"dot3_stats_internal_mac_transmit_errors"`
	CarrierSenseErrors        uint32 `json:"dot3_stats_carrier_sense_errors"`
	FrameTooLongs             uint32 `json:"dot3_stats_frame_too_longs"`
	InternalMacReceiveErrors  uint32 `json:"dot3_stats_internal_mac_receive_errors"`
	SymbolErrors              uint32 `json:"dot3_stats_symbol_errors"`
}

const ethCountersLen = 52

// counterSample checks a counter sample's records and hands it to
// OnCounters when set. A bad record drops the sample.
func (d *Decoder) counterSample(dg *datagram, seq, srcType, srcIndex, nRecords uint32, b []byte) error {
	if nRecords > uint32(d.cfg.MaxRecords) {
		return fmt.Errorf("%d counter records: %w", nRecords, decode.ErrLimit)
	}
	if uint64(nRecords)*8 > uint64(len(b)) {
		return fmt.Errorf("%d counter records in %d bytes: %w", nRecords, len(b), decode.ErrMalformed)
	}
	cr := &d.cr
	*cr = CounterRecord{
		SubAgentID:     dg.sub,
		SequenceNum:    dg.seq,
		SampleSequence: seq,
		SourceIDType:   srcType,
		SourceIDIndex:  srcIndex,
		TimeReceivedNs: dg.receivedNs,
	}
	if dg.agentLen == 4 {
		cr.Agent = netip.AddrFrom4([4]byte(dg.agent[:4]))
	} else {
		cr.Agent = netip.AddrFrom16(dg.agent)
	}
	off := 0
	for i := uint32(0); i < nRecords; i++ {
		if len(b)-off < 8 {
			return fmt.Errorf("counter record %d: %w", i, decode.ErrTruncated)
		}
		format, length := be32(b[off:]), be32(b[off+4:])
		off += 8
		if uint64(length) > uint64(len(b)-off) {
			return fmt.Errorf("counter record %d (format %d) length %d > %d bytes left: %w", i, format, length, len(b)-off, decode.ErrMalformed)
		}
		r := b[off : off+int(length)]
		off += int(length)
		switch format {
		case 1:
			if len(r) < ifCountersLen {
				return fmt.Errorf("counter record %d: interface counters of %d bytes: %w", i, len(r), decode.ErrTruncated)
			}
			d.ifc = parseIfCounters(r)
			cr.Interface = &d.ifc
		case 2:
			if len(r) < ethCountersLen {
				return fmt.Errorf("counter record %d: ethernet counters of %d bytes: %w", i, len(r), decode.ErrTruncated)
			}
			d.ethc = parseEthCounters(r)
			cr.Ethernet = &d.ethc
		default:
			cr.OtherRecords++
		}
	}
	if d.cfg.OnCounters != nil {
		d.cfg.OnCounters(cr)
	}
	return nil
}

func parseIfCounters(r []byte) IfCounters {
	be64 := binary.BigEndian.Uint64
	return IfCounters{
		IfIndex:            be32(r[0:]),
		IfType:             be32(r[4:]),
		IfSpeed:            be64(r[8:]),
		IfDirection:        be32(r[16:]),
		IfStatus:           be32(r[20:]),
		IfInOctets:         be64(r[24:]),
		IfInUcastPkts:      be32(r[32:]),
		IfInMulticastPkts:  be32(r[36:]),
		IfInBroadcastPkts:  be32(r[40:]),
		IfInDiscards:       be32(r[44:]),
		IfInErrors:         be32(r[48:]),
		IfInUnknownProtos:  be32(r[52:]),
		IfOutOctets:        be64(r[56:]),
		IfOutUcastPkts:     be32(r[64:]),
		IfOutMulticastPkts: be32(r[68:]),
		IfOutBroadcastPkts: be32(r[72:]),
		IfOutDiscards:      be32(r[76:]),
		IfOutErrors:        be32(r[80:]),
		IfPromiscuousMode:  be32(r[84:]),
	}
}

func parseEthCounters(r []byte) EthernetCounters {
	var v [13]uint32
	for i := range v {
		v[i] = be32(r[4*i:])
	}
	return EthernetCounters{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]}
}
