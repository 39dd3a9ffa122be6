package netflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/flowpipe/flowpipe/pkg/decode"
	"github.com/flowpipe/flowpipe/pkg/decode/template"
	"github.com/flowpipe/flowpipe/pkg/flowpb"
)

const (
	v9HeaderLen    = 20
	ipfixHeaderLen = 16
)

// pktCtx is what the records of one packet (or one held set) share.
type pktCtx struct {
	version    uint16
	proto      decode.Protocol
	ftype      flowpb.FlowMessage_FlowType
	exporter   netip.AddrPort
	addr       netip.Addr // unmapped exporter address
	domain     uint32
	exportSecs uint32
	uptimeMs   uint32
	seq        uint32
	receivedNs uint64
	sampler    [16]byte // the exporter address as records carry it
	samplerLen uint8
}

func (c *pktCtx) err(setID uint16, format string, class error, args ...any) error {
	return &decode.Error{Protocol: c.proto, Exporter: c.exporter, Domain: c.domain, SetID: setID,
		Err: fmt.Errorf("netflow: "+format+": %w", append(args, class)...)}
}

func (d *Decoder) decodeTemplated(p decode.Packet, version uint16, emit decode.Emit) error {
	b := p.Data
	c := pktCtx{version: version, exporter: p.Exporter, addr: p.Exporter.Addr().Unmap(), receivedNs: p.ReceivedNs}
	if c.addr.Is4() {
		a := c.addr.As4()
		c.samplerLen = uint8(copy(c.sampler[:], a[:]))
	} else {
		c.sampler, c.samplerLen = c.addr.As16(), 16
	}
	var errs []error
	if version == 9 {
		c.proto, c.ftype = decode.NetFlowV9, flowpb.FlowMessage_NETFLOW_V9
		if len(b) < v9HeaderLen {
			return c.err(0, "v9 header of %d bytes", decode.ErrTruncated, len(b))
		}
		c.uptimeMs = binary.BigEndian.Uint32(b[4:])
		c.exportSecs = binary.BigEndian.Uint32(b[8:])
		c.seq = binary.BigEndian.Uint32(b[12:])
		c.domain = binary.BigEndian.Uint32(b[16:])
		b = b[v9HeaderLen:]
	} else {
		c.proto, c.ftype = decode.IPFIX, flowpb.FlowMessage_IPFIX
		if len(b) < ipfixHeaderLen {
			return c.err(0, "IPFIX header of %d bytes", decode.ErrTruncated, len(b))
		}
		length := int(binary.BigEndian.Uint16(b[2:]))
		c.exportSecs = binary.BigEndian.Uint32(b[4:])
		c.seq = binary.BigEndian.Uint32(b[8:])
		c.domain = binary.BigEndian.Uint32(b[12:])
		switch {
		case length < ipfixHeaderLen:
			return c.err(0, "IPFIX message length %d", decode.ErrMalformed, length)
		case length > len(b):
			errs = append(errs, c.err(0, "IPFIX message length %d, packet has %d bytes", decode.ErrTruncated, length, len(b)))
		default:
			b = b[:length]
		}
		b = b[ipfixHeaderLen:]
	}

	records, unknown := 0, false
	for len(b) >= 4 {
		id := binary.BigEndian.Uint16(b)
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 4 {
			errs = append(errs, c.err(id, "set length %d", decode.ErrMalformed, l))
			unknown = true
			break
		}
		if l > len(b) {
			errs = append(errs, c.err(id, "set length %d, %d bytes left", decode.ErrTruncated, l, len(b)))
			unknown = true
			break
		}
		body := b[4:l]
		b = b[l:]
		switch {
		case version == 9 && (id == 0 || id == 1), version == 10 && (id == 2 || id == 3):
			if err := d.templateSet(&c, id, body, emit); err != nil {
				errs = append(errs, err)
			}
		case id >= 256:
			n, held, err := d.dataSet(&c, id, body, emit)
			records += n
			unknown = unknown || held
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	// What is left is shorter than a set header: padding.

	advance := 1 // v9 counts export packets
	if version == 10 {
		advance = records // IPFIX counts data records
		if unknown {
			advance = -1
		}
	}
	d.sequence(seqKey{c.addr, version, c.domain}, c.seq, advance)
	return errors.Join(errs...)
}

// templateSet stores the templates of a (options) template set; v9 ids 0
// and 1, IPFIX ids 2 and 3.
func (d *Decoder) templateSet(c *pktCtx, setID uint16, b []byte, emit decode.Emit) error {
	options := setID == 1 || setID == 3
	ipfix := c.version == 10
	hdr := 4
	if options {
		hdr = 6
	}
	for len(b) >= 4 {
		tid := binary.BigEndian.Uint16(b)
		count := int(binary.BigEndian.Uint16(b[2:]))
		if ipfix && count == 0 {
			// Withdrawal (RFC 7011 8.1); the set's own id withdraws all.
			if tid == setID {
				d.templates.WithdrawAll(c.addr, c.version, c.domain, options)
			} else if tid >= 256 {
				d.templates.Withdraw(template.Key{Exporter: c.addr, Version: c.version, Domain: c.domain, ID: tid})
			} else {
				return nil // padding
			}
			b = b[4:]
			continue
		}
		if tid < 256 {
			if allZero(b) {
				return nil // padding
			}
			return c.err(setID, "template id %d", decode.ErrMalformed, tid)
		}
		if len(b) < hdr {
			return c.err(setID, "template %d header", decode.ErrTruncated, tid)
		}
		spec := template.Spec{Options: options}
		fieldCount := count
		if options {
			second := int(binary.BigEndian.Uint16(b[4:]))
			if ipfix {
				// field count, then scope field count
				spec.ScopeFields = second
			} else {
				// v9: scope length and option length, in bytes
				if count%4 != 0 || second%4 != 0 {
					return c.err(setID, "options template %d scope/option lengths %d/%d", decode.ErrMalformed, tid, count, second)
				}
				spec.ScopeFields = count / 4
				fieldCount = (count + second) / 4
			}
			if spec.ScopeFields > fieldCount {
				return c.err(setID, "options template %d: %d scope fields of %d", decode.ErrMalformed, tid, spec.ScopeFields, fieldCount)
			}
		}
		b = b[hdr:]
		fields := d.fieldBuf[:0]
		for i := 0; i < fieldCount; i++ {
			if len(b) < 4 {
				return c.err(setID, "template %d field %d of %d", decode.ErrTruncated, tid, i, fieldCount)
			}
			f := template.Field{ID: binary.BigEndian.Uint16(b), Length: binary.BigEndian.Uint16(b[2:])}
			b = b[4:]
			if ipfix && f.ID&0x8000 != 0 {
				if len(b) < 4 {
					return c.err(setID, "template %d field %d enterprise number", decode.ErrTruncated, tid, i)
				}
				f.ID &= 0x7fff
				f.PEN = binary.BigEndian.Uint32(b)
				b = b[4:]
			}
			fields = append(fields, f)
		}
		d.fieldBuf = fields
		spec.Fields = fields
		key := template.Key{Exporter: c.addr, Version: c.version, Domain: c.domain, ID: tid}
		_, changed, err := d.templates.Put(key, spec, c.receivedNs)
		if err != nil {
			var de *decode.Error
			if errors.As(err, &de) {
				return err
			}
			return &decode.Error{Protocol: c.proto, Exporter: c.exporter, Domain: c.domain, SetID: tid, Err: err}
		}
		if changed && d.templates.HasPending() {
			d.releaseHeld(c, key, emit)
		}
		if !ipfix && options {
			return nil // v9 options template flowsets are padded after one template
		}
	}
	return nil
}

// releaseHeld decodes the data sets that waited for key's template.
func (d *Decoder) releaseHeld(c *pktCtx, key template.Key, emit decode.Emit) {
	held := d.templates.Release(key, c.receivedNs)
	for _, h := range held {
		hc := *c
		hc.exporter, hc.receivedNs, hc.exportSecs, hc.uptimeMs, hc.seq = h.Exporter, h.ReceivedNs, h.ExportSecs, h.UptimeMs, h.Sequence
		_, _, _ = d.dataSet(&hc, key.ID, h.Data, emit)
	}
}

// dataSet decodes the records of a data set; held reports a set kept for
// a template still unknown.
func (d *Decoder) dataSet(c *pktCtx, id uint16, b []byte, emit decode.Emit) (n int, held bool, err error) {
	key := template.Key{Exporter: c.addr, Version: c.version, Domain: c.domain, ID: id}
	t := d.templates.Get(key, c.receivedNs)
	if t == nil {
		if len(b) == 0 {
			return 0, false, nil
		}
		herr := d.templates.Hold(template.Held{Key: key, Exporter: c.exporter, Data: b, ReceivedNs: c.receivedNs,
			ExportSecs: c.exportSecs, UptimeMs: c.uptimeMs, Sequence: c.seq}, c.receivedNs)
		if herr != nil {
			return 0, true, c.err(id, "no template, set not held: %v", decode.ErrTemplateMissing, herr)
		}
		return 0, true, c.err(id, "no template yet, set held", decode.ErrTemplateMissing)
	}
	p := t.Compiled
	samp := d.samplingFor(seqKey{c.addr, c.version, c.domain})
	if d.appendTo && p.plan != nil {
		d.consts.set(c, p.plan, samp)
		for len(b) >= p.minLen {
			if n >= d.maxRecs {
				return n, false, c.err(id, "more than %d records in a set", decode.ErrLimit, d.maxRecs)
			}
			var used int
			var ok bool
			if d.out, used, ok = d.appendPlanned(d.out, c, p, samp, b); !ok {
				return n, false, c.err(id, "record %d overruns the set", decode.ErrMalformed, n)
			}
			d.outN++
			b = b[used:]
			n++
		}
		return n, false, nil
	}
	for len(b) >= p.minLen {
		if n >= d.maxRecs {
			return n, false, c.err(id, "more than %d records in a set", decode.ErrLimit, d.maxRecs)
		}
		used, ok := d.record(c, p, samp, b, emit)
		if !ok {
			return n, false, c.err(id, "record %d overruns the set", decode.ErrMalformed, n)
		}
		b = b[used:]
		n++
	}
	// Fewer bytes than a record: padding.
	return n, false, nil
}
