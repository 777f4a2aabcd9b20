package directory

// The LDIF reader and search as they were before searches streamed, kept as the oracle for
// TestStreamingMatchesReference.

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"
)

// refParseLDIF is the parser as it was before searches streamed (kept verbatim, renamed), the
// oracle the streaming scanner is compared with.
func refParseLDIF(data []byte) ([]Record, error) {
	p := refParser{src: string(data), names: map[string]string{}}
	return p.parse()
}

type refParser struct {
	src   string
	pos   int
	line  int               // number of the line last returned by nextLine
	names map[string]string // attribute name → lower-case base name (interned)
	order []int             // scratch for refBuildRecord
}

type refPair struct{ name, lower, value string }

// nextLine returns the next physical line without its line ending, and false at EOF.
func (p *refParser) nextLine() (string, bool) {
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
func (p *refParser) peekContinuation() bool {
	return p.pos < len(p.src) && p.src[p.pos] == ' '
}

// logicalLine returns the next logical line (folded lines joined), the line it started on,
// and false at EOF.
func (p *refParser) logicalLine() (string, int, bool) {
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

func (p *refParser) parse() ([]Record, error) {
	var (
		recs   []Record
		pairs  []refPair
		dn     string
		dnLine int
		inRec  bool
		first  = true
	)
	flush := func() {
		if inRec {
			recs = append(recs, refBuildRecord(dn, dnLine, pairs, &p.order))
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
		pairs = append(pairs, refPair{name, lower, value})
	}
	flush()
	return recs, nil
}

// splitLine splits "name: value", "name:: base64" or refuses "name:< url".
func (p *refParser) splitLine(l string, n int) (name, value string, err error) {
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

// refBuildRecord groups pairs by attribute (first-seen order), sharing one backing array
// for all values of the record.
func refBuildRecord(dn string, line int, pairs []refPair, scratch *[]int) Record {
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

// refSearch is the LDIF search as it was before it streamed, over records from refParseLDIF.
func refSearch(ctx context.Context, recs []Record, baseDN string, req Request, fn func(Entry) error) error {
	d := struct {
		baseDN string
		recs   []Record
		norm   []string
	}{baseDN, recs, make([]string, len(recs))}
	for i := range recs {
		d.norm[i] = normalizeDN(recs[i].DN)
	}
	base := searchBase(req.SearchDN, d.baseDN)
	nbase := normalizeDN(base)
	filter, disabled, err := compileFilters(req, base)
	if err != nil {
		return err
	}
	key := baseName(req.KeyAttribute)
	type proj struct{ name, lower string }
	var projs []proj
	all := req.Attributes == nil
	for _, a := range req.Attributes {
		if a == "*" {
			all = true
			continue
		}
		projs = append(projs, proj{a, baseName(a)})
	}
	for i := range d.recs {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%w: ldif search under %q: %w", ErrFailClosed, base, err)
			}
		}
		n := d.norm[i]
		if !underBase(n, nbase) {
			continue
		}
		r := &d.recs[i]
		if !filter.Match(r) {
			continue
		}
		e := Entry{DN: r.DN, Key: r.DN}
		if key != "" {
			v := r.values(key)
			if len(v) == 0 {
				return fmt.Errorf("%w: ldif line %d: entry %q has no key attribute %q", ErrFailClosed, r.Line, r.DN, req.KeyAttribute)
			}
			e.Key = v[0]
		}
		if disabled != nil {
			e.Disabled = disabled.Match(r)
		}
		if all {
			e.Attrs = make(map[string][]string, len(r.Attrs)+len(projs))
			for _, a := range r.Attrs {
				e.Attrs[a.Name] = a.Values
			}
		} else {
			e.Attrs = make(map[string][]string, len(projs))
		}
		for _, p := range projs {
			if v := r.values(p.lower); v != nil {
				e.Attrs[p.name] = v
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
