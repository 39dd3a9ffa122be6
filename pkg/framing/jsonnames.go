package framing

// goflow2's renderings of etype and proto, which are numbers in the
// record and names in its JSON; the names of enums come from flow.proto
// (fields.pb.go).

// protoNames are IANA's protocol keywords for 0-145, the table goflow2
// v2.2 renders "proto" with.
var protoNames = [...]string{
	"HOPOPT", "ICMP", "IGMP", "GGP", "IPv4", "ST", "TCP", "CBT",
	"EGP", "IGP", "BBN-RCC-MON", "NVP-II", "PUP", "ARGUS", "EMCON", "XNET",
	"CHAOS", "UDP", "MUX", "DCN-MEAS", "HMP", "PRM", "XNS-IDP", "TRUNK-1",
	"TRUNK-2", "LEAF-1", "LEAF-2", "RDP", "IRTP", "ISO-TP4", "NETBLT", "MFE-NSP",
	"MERIT-INP", "DCCP", "3PC", "IDPR", "XTP", "DDP", "IDPR-CMTP", "TP++",
	"IL", "IPv6", "SDRP", "IPv6-Route", "IPv6-Frag", "IDRP", "RSVP", "GRE",
	"DSR", "BNA", "ESP", "AH", "I-NLSP", "SWIPE", "NARP", "Min-IPv4",
	"TLSP", "SKIP", "IPv6-ICMP", "IPv6-NoNxt", "IPv6-Opts", "any-host-internal-protocol", "CFTP", "any-local-network",
	"SAT-EXPAK", "KRYPTOLAN", "RVD", "IPPC", "any-distributed-file-system", "SAT-MON", "VISA", "IPCV",
	"CPNX", "CPHB", "WSN", "PVP", "BR-SAT-MON", "SUN-ND", "WB-MON", "WB-EXPAK",
	"ISO-IP", "VMTP", "SECURE-VMTP", "VINES", "IPTM", "NSFNET-IGP", "DGP", "TCF",
	"EIGRP", "OSPFIGP", "Sprite-RPC", "LARP", "MTP", "AX.25", "IPIP", "MICP",
	"SCC-SP", "ETHERIP", "ENCAP", "any-private-encryption-scheme", "GMTP", "IFMP", "PNNI", "PIM",
	"ARIS", "SCPS", "QNX", "A/N", "IPComp", "SNP", "Compaq-Peer", "IPX-in-IP",
	"VRRP", "PGM", "any-0-hop-protocol", "L2TP", "DDX", "IATP", "STP", "SRP",
	"UTI", "SMP", "SM", "PTP", "ISIS over IPv4", "FIRE", "CRTP", "CRUDP",
	"SSCOPMCE", "IPLT", "SPS", "PIPE", "SCTP", "FC", "RSVP-E2E-IGNORE", "Mobility Header",
	"UDPLite", "MPLS-in-IP", "manet", "HIP", "Shim6", "WESP", "ROHC", "Ethernet",
	"AGGFRAG", "NSH"}

// protoName renders an IP protocol number as goflow2 v2.2's ProtoName.
func protoName(p uint32) string {
	switch {
	case p < uint32(len(protoNames)):
		return protoNames[p]
	case p <= 252:
		return "unassigned"
	case p <= 254:
		return "experimental"
	case p == 255:
		return "reserved"
	}
	return "unknown"
}

// protoNumber reverses protoName. The range names map to the first number
// of their range so that they render back to the same name; "ICMPv6" is
// goflow2 v2.0's name for 58 and "" its rendering of unnamed numbers.
func protoNumber(name []byte) (uint32, bool) {
	switch string(name) {
	case "TCP":
		return 6, true
	case "UDP":
		return 17, true
	case "ICMP":
		return 1, true
	case "IPv6-ICMP", "ICMPv6":
		return 58, true
	case "unassigned":
		return 146, true
	case "experimental":
		return 253, true
	case "reserved":
		return 255, true
	case "unknown":
		return 256, true
	case "":
		return 0, true
	}
	for i, n := range protoNames {
		if n == string(name) {
			return uint32(i), true
		}
	}
	return 0, false
}

// etypeName is goflow2's EtypeRenderer: a map lookup, "" when missing.
func etypeName(e uint32) string {
	switch e {
	case 0x800:
		return "IPv4"
	case 0x86dd:
		return "IPv6"
	case 0x806:
		return "ARP"
	}
	return ""
}

func etypeNumber(name []byte) (uint32, bool) {
	switch string(name) {
	case "IPv4":
		return 0x800, true
	case "IPv6":
		return 0x86dd, true
	case "ARP":
		return 0x806, true
	case "":
		return 0, true
	}
	return 0, false
}
