package directory

// The bulk reader decodes the responses to a search (RFC 4511 LDAPMessage) straight from a
// buffered reader, for full reads: go-ldap builds a tree of packets with a bytes.Buffer per
// node and copies every value twice, which made its decoding most of the CPU of a full read
// (issue 17). Only the three messages a search returns in bulk are decoded here, in place,
// strictly (definite lengths, short or long form, one-octet tags, OCTET STRING leaves); the
// SearchResultDone, controls and anything unusual go to go-ldap's own decoders, and results
// are what go-ldap's would be (the differential tests and the fuzz target check it).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"unsafe"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// BER identifier octets of what a search response holds.
const (
	tagOctetString    = 0x04
	tagInteger        = 0x02
	tagSequence       = 0x30
	tagSet            = 0x31
	tagControls       = 0xa0 // [0] Controls of an LDAPMessage
	tagEntry          = 0x60 | ldap.ApplicationSearchResultEntry
	tagDone           = 0x60 | ldap.ApplicationSearchResultDone
	tagReference      = 0x60 | ldap.ApplicationSearchResultReference
	tagExtendedResp   = 0x60 | ldap.ApplicationExtendedResponse
	tagIntermediate   = 0x60 | ldap.ApplicationIntermediateResponse
	maxMessageLength  = math.MaxInt32 // as go-asn1-ber's MaxPacketLengthBytes
	maxNesting        = 64            // of constructed elements in a message checked for go-ldap
	maxInternedNames  = 4096          // attribute names kept by attrNames
	readChunk         = 1 << 20       // a message larger than the read buffer grows by this much at a time
	bulkReadBufferLen = 256 << 10
)

var (
	errTruncated = errors.New("truncated BER element")
	// errUnsupported marks encodings that are valid BER but that the bulk reader does not
	// decode; a search that meets one before passing on any entry is read again with go-ldap.
	errUnsupported = errors.New("not supported by the bulk reader")
)

// berElement splits b into its first element: identifier octet, contents and what follows.
// Lengths are definite, short form or long form of up to 8 octets (Active Directory sends
// 0x84 and four); indefinite lengths and multi-octet tags are refused.
func berElement(b []byte) (tag byte, content, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errTruncated
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, fmt.Errorf("multi-octet BER tag: %w", errUnsupported)
	}
	n, size, err := berLength(b[1:])
	if err != nil {
		return 0, nil, nil, err
	}
	b = b[1+size:]
	if n > len(b) {
		return 0, nil, nil, errTruncated
	}
	return tag, b[:n], b[n:], nil
}

// berLength decodes the definite length at the start of b and says how many octets it took.
func berLength(b []byte) (n, size int, err error) {
	if len(b) == 0 {
		return 0, 0, errTruncated
	}
	c := b[0]
	switch {
	case c < 0x80:
		return int(c), 1, nil
	case c == 0x80:
		return 0, 0, fmt.Errorf("indefinite BER length: %w", errUnsupported)
	case c == 0xff:
		return 0, 0, errors.New("invalid BER length octet 0xff")
	}
	k := int(c & 0x7f)
	if k > 8 {
		return 0, 0, errors.New("BER length overflow")
	}
	if len(b) < 1+k {
		return 0, 0, errTruncated
	}
	var v uint64
	for _, o := range b[1 : 1+k] {
		v = v<<8 | uint64(o)
	}
	if v > maxMessageLength {
		return 0, 0, fmt.Errorf("BER length %d greater than maximum %d", v, maxMessageLength)
	}
	return int(v), 1 + k, nil
}

// checkBER walks every element of b (constructed ones recursively) so that only definite,
// well-nested BER goes on to go-asn1-ber, which would accept indefinite lengths.
func checkBER(b []byte, depth int) error {
	if depth > maxNesting {
		return errors.New("BER nesting too deep")
	}
	for len(b) > 0 {
		tag, content, rest, err := berElement(b)
		if err != nil {
			return err
		}
		if tag&0x20 != 0 {
			if err := checkBER(content, depth+1); err != nil {
				return err
			}
		}
		b = rest
	}
	return nil
}

// berInt decodes an INTEGER's contents (two's complement) as go-asn1-ber does.
func berInt(b []byte) (int64, bool) {
	if len(b) > 8 {
		return 0, false
	}
	var v int64
	for _, o := range b {
		v = v<<8 | int64(o)
	}
	if len(b) > 0 {
		s := 64 - 8*uint(len(b))
		v = v << s >> s
	}
	return v, true
}

// view is b as a string without copying: valid only while b's buffer is not reused.
func view(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// bulkReader reads LDAP messages from a buffered reader. A message that fits the buffer is
// decoded where it lies (peeked, discarded when the next is read); a larger one is copied
// into msg, which grows as its bytes arrive rather than by the length the server claims.
type bulkReader struct {
	br      *bufio.Reader
	pending int    // bytes of the previous message still to discard from br
	msg     []byte // reused for messages larger than br's buffer

	names attrNames
	rec   Record   // the current entry: strings point into the message
	vals  []string // backs rec's values
}

func newBulkReader(r io.Reader) *bulkReader {
	return &bulkReader{br: bufio.NewReaderSize(r, bulkReadBufferLen), vals: make([]string, 0, 64)}
}

// next returns the next whole message, identifier and length included. It is valid until
// the following call.
func (r *bulkReader) next() ([]byte, error) {
	if r.pending > 0 {
		if _, err := r.br.Discard(r.pending); err != nil {
			return nil, err
		}
		r.pending = 0
	}
	hdr, err := r.br.Peek(2)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if hdr[0] != tagSequence {
		return nil, fmt.Errorf("LDAP message with identifier 0x%02x, not a SEQUENCE", hdr[0])
	}
	hlen := 2
	if hdr[1] > 0x80 && hdr[1] != 0xff {
		hlen += int(hdr[1] & 0x7f)
	}
	if hdr, err = r.br.Peek(hlen); err != nil {
		return nil, unexpectedEOF(err)
	}
	n, _, err := berLength(hdr[1:])
	if err != nil {
		return nil, err
	}
	total := hlen + n
	if total <= r.br.Size() {
		b, err := r.br.Peek(total)
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		r.pending = total
		return b, nil
	}
	r.msg = r.msg[:0]
	for len(r.msg) < total {
		k := min(total-len(r.msg), readChunk)
		if cap(r.msg)-len(r.msg) < k {
			r.msg = append(r.msg[:cap(r.msg)], make([]byte, k)...)[:len(r.msg)]
		}
		start := len(r.msg)
		r.msg = r.msg[:start+k]
		if _, err := io.ReadFull(r.br, r.msg[start:]); err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return r.msg, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// message is one LDAPMessage split into its parts.
type message struct {
	id       int64
	op       byte   // identifier of the protocolOp
	body     []byte // contents of the protocolOp
	controls bool   // the message carries controls
	whole    []byte // the message, for go-ldap's decoders
}

func splitMessage(b []byte) (message, error) {
	m := message{whole: b}
	_, content, rest, err := berElement(b)
	if err != nil {
		return m, err
	}
	if len(rest) != 0 {
		return m, errors.New("bytes after the LDAP message")
	}
	tag, id, content, err := berElement(content)
	if err != nil {
		return m, err
	}
	var ok bool
	if m.id, ok = berInt(id); tag != tagInteger || !ok {
		return m, errors.New("LDAP message without a valid message id")
	}
	if m.op, m.body, content, err = berElement(content); err != nil {
		return m, err
	}
	if len(content) > 0 {
		tag, _, rest, err := berElement(content)
		if err != nil {
			return m, err
		}
		if tag != tagControls || len(rest) != 0 {
			return m, errors.New("unexpected elements after the protocolOp")
		}
		m.controls = true
	}
	return m, nil
}

// decodeWithGoLDAP decodes a whole message with go-asn1-ber, after checking that its lengths
// are all definite.
func decodeWithGoLDAP(m message) (*ber.Packet, error) {
	if err := checkBER(m.whole, 0); err != nil {
		return nil, err
	}
	return ber.DecodePacketErr(m.whole)
}

// messageControls decodes the controls of a message as go-ldap does; nil when it has none.
func messageControls(p *ber.Packet) ([]ldap.Control, error) {
	if len(p.Children) < 3 {
		return nil, nil
	}
	var out []ldap.Control
	for _, c := range p.Children[2].Children {
		dc, err := ldap.DecodeControl(c)
		if err != nil {
			return nil, fmt.Errorf("failed to decode child control: %w", err)
		}
		out = append(out, dc)
	}
	return out, nil
}

// page reads the responses to the search with message id id up to its SearchResultDone,
// calling entry for each entry (the *Record and its strings are valid only during the call)
// and ref with the first URI of each continuation reference. It returns the controls of the
// SearchResultDone, or the error go-ldap would give for a result code other than success
// (an *ldap.Error). An error returned by entry is returned as is.
func (r *bulkReader) page(id int64, entry func(*Record) error, ref func(string)) ([]ldap.Control, error) {
	for {
		b, err := r.next()
		if err != nil {
			return nil, err
		}
		m, err := splitMessage(b)
		if err != nil {
			return nil, err
		}
		if m.id != id {
			if m.id == 0 && m.op == tagExtendedResp {
				// An unsolicited notification (RFC 4511 4.4): Notice of Disconnection.
				if p, err := decodeWithGoLDAP(m); err == nil {
					if err := ldap.GetLDAPError(p); err != nil {
						// %v: the result code is the notification's, not the search's.
						return nil, fmt.Errorf("unsolicited notification: %v", err)
					}
				}
				return nil, errors.New("unsolicited notification from the server")
			}
			return nil, fmt.Errorf("response to message %d while reading the search of message %d", m.id, id)
		}
		if m.controls && m.op != tagDone {
			// Controls on an entry or reference are unused, but go-ldap refuses bad ones.
			p, err := decodeWithGoLDAP(m)
			if err != nil {
				return nil, err
			}
			if _, err := messageControls(p); err != nil {
				return nil, err
			}
		}
		switch m.op {
		case tagEntry:
			if err := r.decodeEntry(m.body); err != nil {
				return nil, err
			}
			if err := entry(&r.rec); err != nil {
				return nil, err
			}
		case tagReference:
			// SEQUENCE SIZE (1..MAX) OF uri URI; go-ldap reports the first.
			var first []byte
			for b := m.body; len(b) > 0 || first == nil; {
				tag, uri, rest, err := berElement(b)
				if err != nil {
					return nil, err
				}
				if tag != tagOctetString {
					return nil, errors.New("search result reference URI is not an OCTET STRING")
				}
				if first == nil {
					first = uri[:len(uri):len(uri)]
				}
				b = rest
			}
			ref(string(first))
		case tagDone:
			p, err := decodeWithGoLDAP(m)
			if err != nil {
				return nil, err
			}
			if err := ldap.GetLDAPError(p); err != nil {
				return nil, err
			}
			return messageControls(p)
		case tagIntermediate:
			return nil, fmt.Errorf("intermediate response: %w", errUnsupported)
		default:
			return nil, fmt.Errorf("unexpected response 0x%02x in a search", m.op)
		}
	}
}

// decodeEntry decodes a SearchResultEntry's contents into r.rec, whose strings point into
// b: SEQUENCE { objectName, attributes SEQUENCE OF SEQUENCE { type, vals SET OF value } }.
func (r *bulkReader) decodeEntry(b []byte) error {
	tag, dn, b, err := berElement(b)
	if err != nil {
		return err
	}
	if tag != tagOctetString {
		return errors.New("entry DN is not an OCTET STRING")
	}
	tag, attrs, b, err := berElement(b)
	if err != nil {
		return err
	}
	if tag != tagSequence || len(b) != 0 {
		return errors.New("malformed entry: attributes are not a SEQUENCE at its end")
	}
	r.rec.DN = view(dn)
	r.rec.Attrs = r.rec.Attrs[:0]
	r.vals = r.vals[:0]
	for i := 0; len(attrs) > 0; i++ {
		var a, name, set []byte
		if tag, a, attrs, err = berElement(attrs); err != nil {
			return err
		}
		if tag != tagSequence {
			return errors.New("malformed entry: attribute is not a SEQUENCE")
		}
		if tag, name, a, err = berElement(a); err != nil {
			return err
		}
		if tag != tagOctetString {
			return errors.New("malformed entry: attribute type is not an OCTET STRING")
		}
		if tag, set, a, err = berElement(a); err != nil {
			return err
		}
		if tag != tagSet || len(a) != 0 {
			return errors.New("malformed entry: attribute values are not a SET at its end")
		}
		start := len(r.vals)
		for len(set) > 0 {
			var v []byte
			if tag, v, set, err = berElement(set); err != nil {
				return err
			}
			if tag != tagOctetString {
				return errors.New("malformed entry: attribute value is not an OCTET STRING")
			}
			r.vals = append(r.vals, view(v))
		}
		nl := intern(&r.names, i, name)
		r.rec.Attrs = append(r.rec.Attrs, Attribute{Name: nl.name, lower: nl.lower, Values: r.vals[start:len(r.vals):len(r.vals)]})
	}
	return nil
}

// attrNames interns attribute descriptions with their lower-case base names: a server
// returns the same few names in the same order for every entry.
type attrNames struct {
	seq []nameLower // by position in the entry
	m   map[string]nameLower
}

type nameLower struct{ name, lower string }

// intern returns the interned name for n, the i-th attribute of an entry.
func intern[T string | []byte](c *attrNames, i int, n T) nameLower {
	if i < len(c.seq) && c.seq[i].name == string(n) {
		return c.seq[i]
	}
	nl, ok := c.m[string(n)]
	if !ok {
		if c.m == nil {
			c.m = map[string]nameLower{}
		}
		name := string(n)
		nl = nameLower{name, baseName(name)}
		if len(c.m) < maxInternedNames {
			c.m[name] = nl
		}
	}
	if i < 64 {
		for len(c.seq) <= i {
			c.seq = append(c.seq, nameLower{})
		}
		c.seq[i] = nl
	}
	return nl
}
