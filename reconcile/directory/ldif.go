package directory

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Attribute is one attribute of an LDIF record: its description as written (options such as
// ";binary" kept) and its values in file order. Values are raw bytes in a string, so binary
// values (objectGUID) survive unchanged.
type Attribute struct {
	Name   string
	Values []string

	lower string // lower-case base name (options stripped), for case-insensitive lookups
}

// Record is one LDIF content record.
type Record struct {
	DN    string
	Line  int // line number of the record's "dn:" line
	Attrs []Attribute
}

// Values returns the values of the named attribute (case-insensitive, options ignored), or nil.
func (r *Record) Values(name string) []string {
	for i := range r.Attrs {
		if r.Attrs[i].lower == name || strings.EqualFold(r.Attrs[i].lower, name) {
			return r.Attrs[i].Values
		}
	}
	return nil
}

// values looks up an already lower-cased base name.
func (r *Record) values(lower string) []string {
	for i := range r.Attrs {
		if r.Attrs[i].lower == lower {
			return r.Attrs[i].Values
		}
	}
	return nil
}

// LDIFError is a syntax error in an LDIF file, with the 1-based line it was found on.
type LDIFError struct {
	Line int
	Msg  string
}

func (e *LDIFError) Error() string { return fmt.Sprintf("ldif: line %d: %s", e.Line, e.Msg) }

// ParseLDIF parses RFC 2849 content records: comments, folded lines, "attr:: base64" values,
// a "dn::" in base64, multiple values per attribute and an optional "version: 1" line.
// Change records (changetype:, control:) and "attr:< url" values are refused. Errors are
// *LDIFError values carrying the line number. The records keep no reference to data.
func ParseLDIF(data []byte) ([]Record, error) {
	s := newLDIFScanner(string(data), true, nil, true)
	var recs []Record
	for {
		ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return recs, nil
		}
		r := s.record()
		// s.record reuses its buffers: give this record its own.
		attrs := make([]Attribute, len(r.Attrs))
		vals := make([]string, 0, len(s.pairs))
		for i, a := range r.Attrs {
			start := len(vals)
			vals = append(vals, a.Values...)
			attrs[i] = Attribute{Name: a.Name, lower: a.lower, Values: vals[start:len(vals):len(vals)]}
		}
		if len(attrs) == 0 {
			attrs = nil
		}
		recs = append(recs, Record{DN: r.DN, Line: r.Line, Attrs: attrs})
	}
}

// ldifScanner reads LDIF content records one at a time from a string, without copying:
// names, DNs and plain values are substrings of src; base64 values are decoded into an arena.
// Only the attributes it is asked for are kept (see want), and base64 values of the others
// are not decoded unless the scanner validates.
type ldifScanner struct {
	src   string
	pos   int
	line  int  // number of the line last returned by nextLine
	first bool // no non-comment line read yet (a "version:" line is allowed)
	// check validates everything (attribute names, UTF-8, base64 of values not kept). Off for
	// text already validated (NewLDIF validates once; searches then only pick values).
	check   bool
	wantAll bool
	want    map[string]bool // lower-case base names to keep when !wantAll

	names map[string]*nameInfo // attribute description as written → its info
	ids   map[string]int       // lower-case description → group id
	seq   []*nameInfo          // line k of the previous record: records tend to repeat their layout
	b64   []byte               // scratch for validating base64 values that are not kept
	arena []byte               // decoded base64 values are carved from here (never rewritten)

	// The current record (valid until the next call of next).
	dn     string
	dnLine int
	pairs  []pair

	// record's reusable buffers.
	rec   Record
	vals  []string
	slots []slot // by nameInfo.id: group of the current record
	epoch int
	count []int
}

type nameInfo struct {
	name  string // as written
	lower string // lower-case base name (options stripped)
	id    int    // same id for descriptions equal but for case
	kind  nameKind
	valid bool // a valid attribute description
	want  bool // values are kept
}

type nameKind uint8

const (
	kindAttr nameKind = iota
	kindDN
	kindChange // changetype, control
	kindVersion
)

type pair struct {
	info  *nameInfo
	value string
}

type slot struct{ epoch, group int }

// newLDIFScanner returns a scanner over src keeping the attributes in want (lower-case base
// names), or all of them when wantAll.
func newLDIFScanner(src string, check bool, want map[string]bool, wantAll bool) *ldifScanner {
	return &ldifScanner{src: src, first: true, check: check, want: want, wantAll: wantAll,
		names: map[string]*nameInfo{}, ids: map[string]int{}}
}

// nextLine returns the next physical line without its line ending, and false at EOF.
func (s *ldifScanner) nextLine() (string, bool) {
	if s.pos >= len(s.src) {
		return "", false
	}
	rest := s.src[s.pos:]
	i := strings.IndexByte(rest, '\n')
	var l string
	if i < 0 {
		l = rest
		s.pos = len(s.src)
	} else {
		l = rest[:i]
		s.pos += i + 1
	}
	s.line++
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l, true
}

// logicalLine returns the next logical line (folded lines joined), the line it started on,
// and false at EOF.
func (s *ldifScanner) logicalLine() (string, int, bool) {
	l, ok := s.nextLine()
	if !ok {
		return "", 0, false
	}
	start := s.line
	if s.pos >= len(s.src) || s.src[s.pos] != ' ' {
		return l, start, true
	}
	var b strings.Builder
	b.WriteString(l)
	for s.pos < len(s.src) && s.src[s.pos] == ' ' {
		c, _ := s.nextLine()
		b.WriteString(c[1:])
	}
	return b.String(), start, true
}

// lookup returns the info for an attribute description seen on attribute line k of a record.
func (s *ldifScanner) lookup(name string, k int) *nameInfo {
	if k < len(s.seq) {
		if ni := s.seq[k]; ni != nil && ni.name == name {
			return ni
		}
	}
	ni := s.names[name]
	if ni == nil {
		// name is cut from the text: copy it, so the cache does not keep a block of a
		// streamed file alive.
		name = strings.Clone(name)
		full := strings.ToLower(name)
		id, ok := s.ids[full]
		if !ok {
			id = len(s.ids)
			s.ids[full] = id
		}
		ni = &nameInfo{name: name, lower: full, id: id, valid: validAttrDesc(name)}
		if i := strings.IndexByte(full, ';'); i >= 0 {
			ni.lower = full[:i]
		}
		switch full {
		case "dn":
			ni.kind = kindDN
		case "changetype", "control":
			ni.kind = kindChange
		case "version":
			ni.kind = kindVersion
		}
		ni.want = s.wantAll || s.want[ni.lower]
		s.names[name] = ni
	}
	if k < 64 {
		for len(s.seq) <= k {
			s.seq = append(s.seq, nil)
		}
		s.seq[k] = ni
	}
	return ni
}

// decode decodes a base64 value into the arena.
func (s *ldifScanner) decode(enc string) (string, error) {
	need := base64.StdEncoding.DecodedLen(len(enc))
	if need > cap(s.arena)-len(s.arena) {
		s.arena = make([]byte, 0, max(need, 64<<10))
	}
	start := len(s.arena)
	n, err := base64.StdEncoding.Decode(s.arena[start:start+need], []byte(enc))
	if err != nil {
		return "", err
	}
	if n == 0 {
		return "", nil
	}
	s.arena = s.arena[:start+n]
	return unsafe.String(&s.arena[start], n), nil
}

// validateBase64 checks a base64 value without keeping it.
func (s *ldifScanner) validateBase64(enc string) error {
	need := base64.StdEncoding.DecodedLen(len(enc))
	if cap(s.b64) < need {
		s.b64 = make([]byte, need)
	}
	_, err := base64.StdEncoding.Decode(s.b64[:need], []byte(enc))
	return err
}

// next reads the next record into s.dn, s.dnLine and s.pairs (the kept attributes only), and
// returns false at the end of the text.
func (s *ldifScanner) next() (bool, error) {
	s.pairs = s.pairs[:0]
	inRec := false
	k := 0
	for {
		l, n, ok := s.logicalLine()
		if !ok {
			return inRec, nil
		}
		if l == "" {
			if inRec {
				return true, nil
			}
			continue
		}
		if l[0] == '#' {
			continue
		}
		i := strings.IndexByte(l, ':')
		if i <= 0 {
			return false, &LDIFError{n, fmt.Sprintf("expected \"attribute: value\", found %q", truncate(l))}
		}
		name := l[:i]
		info := s.lookup(name, k)
		k++
		if !info.valid {
			return false, &LDIFError{n, fmt.Sprintf("invalid attribute description %q", truncate(name))}
		}
		keep := info.want || !inRec
		rest := l[i+1:]
		var value string
		if rest != "" && rest[0] == ':' {
			enc := strings.Trim(rest[1:], " ")
			var err error
			switch {
			case keep:
				value, err = s.decode(enc)
			case s.check:
				err = s.validateBase64(enc)
			}
			if err != nil {
				return false, &LDIFError{n, fmt.Sprintf("%s: invalid base64 value: %v", name, err)}
			}
		} else if rest != "" && rest[0] == '<' {
			return false, &LDIFError{n, fmt.Sprintf("%s: URL values (\":<\") are not supported", name)}
		} else {
			value = strings.TrimLeft(rest, " ")
			if s.check && !utf8.ValidString(value) {
				return false, &LDIFError{n, fmt.Sprintf("%s: value is not valid UTF-8 (use \"%s::\" with base64)", name, name)}
			}
		}
		if !inRec {
			if s.first && info.kind == kindVersion {
				s.first = false
				if value != "1" {
					return false, &LDIFError{n, fmt.Sprintf("unsupported LDIF version %q", value)}
				}
				k = 0
				continue
			}
			s.first = false
			if info.kind != kindDN {
				return false, &LDIFError{n, fmt.Sprintf("record must start with \"dn:\", found %q", name)}
			}
			s.dn, s.dnLine, inRec = value, n, true
			continue
		}
		switch info.kind {
		case kindDN:
			return false, &LDIFError{n, "second \"dn:\" in one record (missing blank line between records?)"}
		case kindChange:
			return false, &LDIFError{n, fmt.Sprintf("%s: change records are not supported, only content records", name)}
		}
		if info.want {
			s.pairs = append(s.pairs, pair{info, value})
		}
	}
}

// record groups the current record's kept pairs by attribute (descriptions equal but for
// case are one attribute, named as first written), in first-seen order. The Record and its
// slices are reused by the next call.
func (s *ldifScanner) record() *Record {
	r := &s.rec
	r.DN, r.Line, r.Attrs = s.dn, s.dnLine, r.Attrs[:0]
	s.epoch++
	s.count = s.count[:0]
	for _, p := range s.pairs {
		for p.info.id >= len(s.slots) {
			s.slots = append(s.slots, slot{})
		}
		sl := &s.slots[p.info.id]
		if sl.epoch != s.epoch {
			sl.epoch, sl.group = s.epoch, len(r.Attrs)
			r.Attrs = append(r.Attrs, Attribute{Name: p.info.name, lower: p.info.lower})
			s.count = append(s.count, 0)
		}
		s.count[sl.group]++
	}
	if cap(s.vals) < len(s.pairs) {
		s.vals = make([]string, len(s.pairs))
	}
	vals := s.vals[:len(s.pairs)]
	off := 0
	for g := range r.Attrs {
		c := s.count[g]
		r.Attrs[g].Values = vals[off : off : off+c]
		off += c
	}
	for _, p := range s.pairs {
		a := &r.Attrs[s.slots[p.info.id].group]
		a.Values = append(a.Values, p.value)
	}
	return r
}

// validateLDIF checks the syntax of a whole LDIF text read from r, in blocks through one
// reused buffer, keeping nothing. It returns the number of bytes read and their CRC-32C.
func validateLDIF(r io.Reader) (size int64, crc uint32, err error) {
	st := ldifStream{sc: newLDIFScanner("", true, nil, false), br: newBlockReader(r)}
	for {
		ok, err := st.next()
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return st.br.read, st.br.crc, nil
		}
	}
}

func validAttrDesc(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == ';' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// writeLDIFValue writes "name: value" or "name:: base64" when the value is not a SAFE-STRING
// (RFC 2849), folding nothing (lines may be long; readers accept that).
func writeLDIFValue(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	if safeString(value) {
		b.WriteString(": ")
		b.WriteString(value)
	} else {
		b.WriteString(":: ")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(value)))
	}
	b.WriteByte('\n')
}

func safeString(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[0] == ':' || s[0] == '<' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\n' || c == '\r' || c > 127 {
			return false
		}
	}
	return true
}
