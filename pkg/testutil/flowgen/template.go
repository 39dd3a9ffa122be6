package flowgen

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Information element (v9 field type) numbers. v9 types below 128 and
// IPFIX elements share their numbers.
const (
	ieOctets                 = 1
	iePackets                = 2
	ieProto                  = 4
	ieTOS                    = 5
	ieTCPFlags               = 6
	ieSrcPort                = 7
	ieSrcAddr4               = 8
	ieSrcMask                = 9
	ieInIf                   = 10
	ieDstPort                = 11
	ieDstAddr4               = 12
	ieDstMask                = 13
	ieOutIf                  = 14
	ieNextHop4               = 15
	ieSrcAS                  = 16
	ieDstAS                  = 17
	ieLastSwitched           = 21
	ieFirstSwitched          = 22
	ieSrcAddr6               = 27
	ieDstAddr6               = 28
	ieSrcMask6               = 29
	ieDstMask6               = 30
	ieFlowLabel6             = 31
	ieSamplingInterval       = 34
	ieSamplingAlgorithm      = 35
	ieSrcMAC                 = 56
	ieVLAN                   = 58
	ieNextHop6               = 62
	ieDstMAC                 = 80
	ieInterfaceName          = 82
	ieObservationDomainID    = 149
	ieFlowStartMilliseconds  = 152
	ieFlowEndMilliseconds    = 153
	ieSamplingPacketInterval = 305
	ieSamplingPacketSpace    = 306

	// ieEnterprise is an element of enterprise enterprisePEN that no decoder
	// knows, so that decoders prove they skip what they do not know.
	ieEnterprise  = 100
	enterprisePEN = 29305

	varLength    = 0xffff // IPFIX template length of a variable-length element
	maxIfNameLen = len("ge-0/0/65535")
)

// field is one template field specifier.
type field struct {
	id, length uint16
	pen        uint32 // IPFIX enterprise number, 0 for IANA elements
}

// v9Fields returns the v9 data template for one address family.
func v9Fields(v6 bool) []field {
	if v6 {
		return []field{{ieSrcAddr6, 16, 0}, {ieDstAddr6, 16, 0}, {ieOctets, 4, 0}, {iePackets, 4, 0},
			{ieProto, 1, 0}, {ieSrcPort, 2, 0}, {ieDstPort, 2, 0}, {ieInIf, 2, 0}, {ieOutIf, 2, 0},
			{ieTCPFlags, 1, 0}, {ieTOS, 1, 0}, {ieNextHop6, 16, 0}, {ieSrcAS, 4, 0}, {ieDstAS, 4, 0},
			{ieSrcMask6, 1, 0}, {ieDstMask6, 1, 0}, {ieFlowLabel6, 3, 0}, {ieLastSwitched, 4, 0},
			{ieFirstSwitched, 4, 0}, {ieSrcMAC, 6, 0}, {ieDstMAC, 6, 0}, {ieVLAN, 2, 0}}
	}
	return []field{{ieSrcAddr4, 4, 0}, {ieDstAddr4, 4, 0}, {ieOctets, 4, 0}, {iePackets, 4, 0},
		{ieProto, 1, 0}, {ieSrcPort, 2, 0}, {ieDstPort, 2, 0}, {ieInIf, 2, 0}, {ieOutIf, 2, 0},
		{ieTCPFlags, 1, 0}, {ieTOS, 1, 0}, {ieNextHop4, 4, 0}, {ieSrcAS, 4, 0}, {ieDstAS, 4, 0},
		{ieSrcMask, 1, 0}, {ieDstMask, 1, 0}, {ieLastSwitched, 4, 0}, {ieFirstSwitched, 4, 0},
		{ieSrcMAC, 6, 0}, {ieDstMAC, 6, 0}, {ieVLAN, 2, 0}}
}

// ipfixFields returns the IPFIX data template for one address family.
// packetDeltaCount uses reduced-size encoding (4 bytes) on purpose.
func ipfixFields(v6, varLen, enterprise bool) []field {
	var fs []field
	if v6 {
		fs = []field{{ieSrcAddr6, 16, 0}, {ieDstAddr6, 16, 0}}
	} else {
		fs = []field{{ieSrcAddr4, 4, 0}, {ieDstAddr4, 4, 0}}
	}
	fs = append(fs, field{ieOctets, 8, 0}, field{iePackets, 4, 0}, field{ieProto, 1, 0},
		field{ieSrcPort, 2, 0}, field{ieDstPort, 2, 0}, field{ieInIf, 4, 0}, field{ieOutIf, 4, 0},
		field{ieTCPFlags, 2, 0}, field{ieTOS, 1, 0}, field{ieSrcAS, 4, 0}, field{ieDstAS, 4, 0})
	if v6 {
		fs = append(fs, field{ieSrcMask6, 1, 0}, field{ieDstMask6, 1, 0}, field{ieNextHop6, 16, 0}, field{ieFlowLabel6, 4, 0})
	} else {
		fs = append(fs, field{ieSrcMask, 1, 0}, field{ieDstMask, 1, 0}, field{ieNextHop4, 4, 0})
	}
	fs = append(fs, field{ieFlowStartMilliseconds, 8, 0}, field{ieFlowEndMilliseconds, 8, 0},
		field{ieSrcMAC, 6, 0}, field{ieDstMAC, 6, 0}, field{ieVLAN, 2, 0})
	if varLen {
		fs = append(fs, field{ieInterfaceName, varLength, 0})
	}
	if enterprise {
		fs = append(fs, field{ieEnterprise, 4, enterprisePEN})
	}
	return fs
}

// recordLen is the length of a data record, variable-length fields aside.
func recordLen(fs []field) int {
	n := 0
	for _, f := range fs {
		if f.length != varLength {
			n += int(f.length)
		}
	}
	return n
}

// appendTemplateRecord appends a template record: ID, field count, fields.
func appendTemplateRecord(b []byte, id uint16, fs []field) []byte {
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(fs)))
	return appendFieldSpecs(b, fs)
}

func appendFieldSpecs(b []byte, fs []field) []byte {
	for _, f := range fs {
		if f.pen != 0 {
			b = binary.BigEndian.AppendUint16(b, 0x8000|f.id)
			b = binary.BigEndian.AppendUint16(b, f.length)
			b = binary.BigEndian.AppendUint32(b, f.pen)
			continue
		}
		b = binary.BigEndian.AppendUint16(b, f.id)
		b = binary.BigEndian.AppendUint16(b, f.length)
	}
	return b
}

// appendInterfaceName appends the variable-length interfaceName of ifIndex,
// with the 3-byte length prefix (0xFF, then 16 bits) when long is set and the
// 1-byte one otherwise: RFC 7011 allows both for short values.
func appendInterfaceName(b []byte, ifIndex uint32, long bool) []byte {
	var name [maxIfNameLen]byte
	s := strconv.AppendUint(append(name[:0], "ge-0/0/"...), uint64(ifIndex), 10)
	if long {
		b = append(b, 0xff)
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	} else {
		b = append(b, byte(len(s)))
	}
	return append(b, s...)
}

// appendAddr appends the 4 or 16 bytes of a.
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		a4 := a.As4()
		return append(b, a4[:]...)
	}
	a16 := a.As16()
	return append(b, a16[:]...)
}

// putUint16 overwrites a length field once what it measures is written.
func putUint16(b []byte, at, v int) { binary.BigEndian.PutUint16(b[at:], uint16(v)) }

// pad4 pads what was appended since start to a multiple of 4 bytes.
func pad4(b []byte, start int) []byte {
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
