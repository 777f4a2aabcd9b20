package directory

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
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
// *LDIFError values carrying the line number.
func ParseLDIF(data []byte) ([]Record, error) {
	p := ldifParser{src: string(data), names: map[string]string{}}
	return p.parse()
}

type ldifParser struct {
	src   string
	pos   int
	line  int               // number of the line last returned by nextLine
	names map[string]string // attribute name → lower-case base name (interned)
	order []int             // scratch for buildRecord
}

type pair struct{ name, lower, value string }

// nextLine returns the next physical line without its line ending, and false at EOF.
func (p *ldifParser) nextLine() (string, bool) {
	if p.pos >= len(p.src) {
		return "", false
	}
	rest := p.src[p.pos:]
	i := strings.IndexByte(rest, '\n')
	var l string
	if i < 0 {
		l = rest
		p.pos = len(p.src)
	} else {
		l = rest[:i]
		p.pos += i + 1
	}
	p.line++
	return strings.TrimSuffix(l, "\r"), true
}

// peekContinuation reports whether the next physical line is a continuation (starts with one space).
func (p *ldifParser) peekContinuation() bool {
	return p.pos < len(p.src) && p.src[p.pos] == ' '
}

// logicalLine returns the next logical line (folded lines joined), the line it started on,
// and false at EOF.
func (p *ldifParser) logicalLine() (string, int, bool) {
	l, ok := p.nextLine()
	if !ok {
		return "", 0, false
	}
	start := p.line
	if !p.peekContinuation() {
		return l, start, true
	}
	var b strings.Builder
	b.WriteString(l)
	for p.peekContinuation() {
		c, _ := p.nextLine()
		b.WriteString(c[1:])
	}
	return b.String(), start, true
}

func (p *ldifParser) parse() ([]Record, error) {
	var (
		recs   []Record
		pairs  []pair
		dn     string
		dnLine int
		inRec  bool
		first  = true
	)
	flush := func() {
		if inRec {
			recs = append(recs, buildRecord(dn, dnLine, pairs, &p.order))
		}
		pairs = pairs[:0]
		inRec = false
	}
	for {
		l, n, ok := p.logicalLine()
		if !ok {
			break
		}
		if l == "" {
			flush()
			continue
		}
		if l[0] == '#' {
			continue
		}
		name, value, err := p.splitLine(l, n)
		if err != nil {
			return nil, err
		}
		if first && !inRec && strings.EqualFold(name, "version") {
			first = false
			if value != "1" {
				return nil, &LDIFError{n, fmt.Sprintf("unsupported LDIF version %q", value)}
			}
			continue
		}
		first = false
		if !inRec {
			if !strings.EqualFold(name, "dn") {
				return nil, &LDIFError{n, fmt.Sprintf("record must start with \"dn:\", found %q", name)}
			}
			dn, dnLine, inRec = value, n, true
			continue
		}
		switch strings.ToLower(name) {
		case "dn":
			return nil, &LDIFError{n, "second \"dn:\" in one record (missing blank line between records?)"}
		case "changetype", "control":
			return nil, &LDIFError{n, fmt.Sprintf("%s: change records are not supported, only content records", name)}
		}
		lower, ok := p.names[name]
		if !ok {
			lower = strings.ToLower(name)
			if i := strings.IndexByte(lower, ';'); i >= 0 {
				lower = lower[:i]
			}
			p.names[name] = lower
		}
		pairs = append(pairs, pair{name, lower, value})
	}
	flush()
	return recs, nil
}

// splitLine splits "name: value", "name:: base64" or refuses "name:< url".
func (p *ldifParser) splitLine(l string, n int) (name, value string, err error) {
	i := strings.IndexByte(l, ':')
	if i <= 0 {
		return "", "", &LDIFError{n, fmt.Sprintf("expected \"attribute: value\", found %q", truncate(l))}
	}
	name = l[:i]
	if !validAttrDesc(name) {
		return "", "", &LDIFError{n, fmt.Sprintf("invalid attribute description %q", truncate(name))}
	}
	rest := l[i+1:]
	switch {
	case strings.HasPrefix(rest, ":"):
		enc := strings.Trim(rest[1:], " ")
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return "", "", &LDIFError{n, fmt.Sprintf("%s: invalid base64 value: %v", name, err)}
		}
		return name, string(b), nil
	case strings.HasPrefix(rest, "<"):
		return "", "", &LDIFError{n, fmt.Sprintf("%s: URL values (\":<\") are not supported", name)}
	default:
		value = strings.TrimLeft(rest, " ")
		if !utf8.ValidString(value) {
			return "", "", &LDIFError{n, fmt.Sprintf("%s: value is not valid UTF-8 (use \"%s::\" with base64)", name, name)}
		}
		return name, value, nil
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

// buildRecord groups pairs by attribute (first-seen order), sharing one backing array
// for all values of the record.
func buildRecord(dn string, line int, pairs []pair, scratch *[]int) Record {
	r := Record{DN: dn, Line: line}
	if len(pairs) == 0 {
		return r
	}
	vals := make([]string, len(pairs))
	// count distinct attributes; records are small, so quadratic grouping is fine.
	order := (*scratch)[:0] // index of the first pair of each attribute
	defer func() { *scratch = order }()
	for i := range pairs {
		seen := false
		for _, j := range order {
			if pairs[j].name == pairs[i].name || pairs[j].lower == pairs[i].lower && strings.EqualFold(pairs[j].name, pairs[i].name) {
				seen = true
				break
			}
		}
		if !seen {
			order = append(order, i)
		}
	}
	r.Attrs = make([]Attribute, len(order))
	k := 0
	for a, j := range order {
		start := k
		for i := j; i < len(pairs); i++ {
			if pairs[i].name == pairs[j].name || pairs[i].lower == pairs[j].lower && strings.EqualFold(pairs[i].name, pairs[j].name) {
				vals[k] = pairs[i].value
				k++
			}
		}
		r.Attrs[a] = Attribute{Name: pairs[j].name, lower: pairs[j].lower, Values: vals[start:k:k]}
	}
	return r
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
