package directory

import (
	"fmt"
	"strconv"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// Matching rules understood by the evaluator.
const (
	ruleBitAnd  = "1.2.840.113556.1.4.803"  // LDAP_MATCHING_RULE_BIT_AND
	ruleBitOr   = "1.2.840.113556.1.4.804"  // LDAP_MATCHING_RULE_BIT_OR
	ruleInChain = "1.2.840.113556.1.4.1941" // LDAP_MATCHING_RULE_IN_CHAIN
)

// Filter is a compiled RFC 4515 filter that can be evaluated against LDIF records.
type Filter struct {
	root  *fnode
	attrs []string // lower-case attribute names the filter references
	// inChain is true when the filter uses LDAP_MATCHING_RULE_IN_CHAIN, which the evaluator
	// approximates by plain equality (exact for LDIF, not for a live AD).
	inChain bool
}

type fop int

const (
	opAnd fop = iota
	opOr
	opNot
	opEq
	opSub
	opGE
	opLE
	opPresent
	opBitAnd
	opBitOr
	opDNEq
)

type fnode struct {
	op       fop
	attr     string // lower-case base name
	value    string // lower-cased for opEq/opGE/opLE
	num      int64  // for bitwise rules and numeric comparisons
	numOK    bool
	initial  string
	any      []string
	final    string
	children []*fnode
}

// CompileFilter parses an RFC 4515 filter ("" means (objectClass=*)). It accepts what
// go-ldap sends to a server, so a filter valid for LDIF is valid for LDAP too.
func CompileFilter(s string) (*Filter, error) {
	if strings.TrimSpace(s) == "" {
		s = "(objectClass=*)"
	}
	pkt, err := ldap.CompileFilter(s)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", s, err)
	}
	f := &Filter{}
	seen := map[string]bool{}
	root, err := f.build(pkt, seen)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", s, err)
	}
	f.root = root
	return f, nil
}

// Attributes returns the lower-case names of the attributes the filter references.
func (f *Filter) Attributes() []string { return f.attrs }

func pktString(p *ber.Packet) string { return string(p.Data.Bytes()) }

func baseName(a string) string {
	a = strings.ToLower(a)
	if i := strings.IndexByte(a, ';'); i >= 0 {
		a = a[:i]
	}
	return a
}

func (f *Filter) addAttr(a string, seen map[string]bool) {
	if !seen[a] {
		seen[a] = true
		f.attrs = append(f.attrs, a)
	}
}

func (f *Filter) build(p *ber.Packet, seen map[string]bool) (*fnode, error) {
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr:
		n := &fnode{op: opAnd}
		if p.Tag == ldap.FilterOr {
			n.op = opOr
		}
		for _, c := range p.Children {
			cn, err := f.build(c, seen)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, cn)
		}
		return n, nil
	case ldap.FilterNot:
		if len(p.Children) != 1 {
			return nil, fmt.Errorf("malformed not filter")
		}
		c, err := f.build(p.Children[0], seen)
		if err != nil {
			return nil, err
		}
		return &fnode{op: opNot, children: []*fnode{c}}, nil
	case ldap.FilterPresent:
		n := &fnode{op: opPresent, attr: baseName(pktString(p))}
		f.addAttr(n.attr, seen)
		return n, nil
	case ldap.FilterEqualityMatch, ldap.FilterApproxMatch, ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual:
		if len(p.Children) != 2 {
			return nil, fmt.Errorf("malformed comparison filter")
		}
		n := &fnode{op: opEq, attr: baseName(pktString(p.Children[0])), value: strings.ToLower(pktString(p.Children[1]))}
		switch p.Tag {
		case ldap.FilterGreaterOrEqual:
			n.op = opGE
		case ldap.FilterLessOrEqual:
			n.op = opLE
		}
		n.num, n.numOK = parseInt(n.value)
		f.addAttr(n.attr, seen)
		return n, nil
	case ldap.FilterSubstrings:
		if len(p.Children) != 2 {
			return nil, fmt.Errorf("malformed substrings filter")
		}
		n := &fnode{op: opSub, attr: baseName(pktString(p.Children[0]))}
		for _, c := range p.Children[1].Children {
			v := strings.ToLower(pktString(c))
			switch c.Tag {
			case ldap.FilterSubstringsInitial:
				n.initial = v
			case ldap.FilterSubstringsAny:
				n.any = append(n.any, v)
			case ldap.FilterSubstringsFinal:
				n.final = v
			}
		}
		f.addAttr(n.attr, seen)
		return n, nil
	case ldap.FilterExtensibleMatch:
		var rule, attr, value string
		dnAttrs := false
		for _, c := range p.Children {
			switch c.Tag {
			case ldap.MatchingRuleAssertionMatchingRule:
				rule = pktString(c)
			case ldap.MatchingRuleAssertionType:
				attr = pktString(c)
			case ldap.MatchingRuleAssertionMatchValue:
				value = pktString(c)
			case ldap.MatchingRuleAssertionDNAttributes:
				dnAttrs, _ = c.Value.(bool)
			}
		}
		if attr == "" {
			return nil, fmt.Errorf("extensible match without an attribute is not supported")
		}
		if dnAttrs {
			return nil, fmt.Errorf("extensible match with :dn is not supported")
		}
		n := &fnode{attr: baseName(attr), value: strings.ToLower(value)}
		f.addAttr(n.attr, seen)
		switch strings.ToLower(rule) {
		case "", "2.5.13.2", "caseignorematch", "2.5.13.0", "objectidentifiermatch":
			n.op = opEq
		case "2.5.13.1", "distinguishednamematch":
			n.op = opDNEq
			n.value = normalizeDN(value)
		case ruleInChain:
			// A live AD resolves nested groups; in an LDIF file there is nothing to follow,
			// so the membership test is plain DN equality.
			n.op = opDNEq
			n.value = normalizeDN(value)
			f.inChain = true
		case ruleBitAnd, ruleBitOr:
			v, ok := parseInt(value)
			if !ok {
				return nil, fmt.Errorf("bitwise matching rule needs an integer, got %q", value)
			}
			n.op, n.num, n.numOK = opBitAnd, v, true
			if rule == ruleBitOr {
				n.op = opBitOr
			}
		default:
			return nil, fmt.Errorf("matching rule %q is not supported", rule)
		}
		return n, nil
	}
	return nil, fmt.Errorf("unsupported filter type %d", p.Tag)
}

func parseInt(s string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		// AD stores some flags (groupType) as unsigned 32-bit values written in decimal.
		u, err2 := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err2 != nil {
			return 0, false
		}
		return int64(u), true
	}
	return v, true
}

// Match reports whether the record matches the filter.
func (f *Filter) Match(r *Record) bool { return f.root.match(r) }

func (n *fnode) match(r *Record) bool {
	switch n.op {
	case opAnd:
		for _, c := range n.children {
			if !c.match(r) {
				return false
			}
		}
		return true
	case opOr:
		for _, c := range n.children {
			if c.match(r) {
				return true
			}
		}
		return false
	case opNot:
		return !n.children[0].match(r)
	case opPresent:
		return n.attr == "objectclass" || len(r.values(n.attr)) > 0
	}
	for _, v := range r.values(n.attr) {
		if n.matchValue(v) {
			return true
		}
	}
	return false
}

func (n *fnode) matchValue(v string) bool {
	switch n.op {
	case opEq:
		return strings.EqualFold(v, n.value)
	case opDNEq:
		return strings.EqualFold(v, n.value) || normalizeDN(v) == n.value
	case opGE, opLE:
		if n.numOK {
			if x, ok := parseInt(v); ok {
				if n.op == opGE {
					return x >= n.num
				}
				return x <= n.num
			}
		}
		c := strings.Compare(strings.ToLower(v), n.value)
		if n.op == opGE {
			return c >= 0
		}
		return c <= 0
	case opSub:
		return matchSubstrings(strings.ToLower(v), n.initial, n.any, n.final)
	case opBitAnd, opBitOr:
		x, ok := parseInt(v)
		if !ok {
			return false
		}
		if n.op == opBitAnd {
			return x&n.num == n.num
		}
		return x&n.num != 0
	}
	return false
}

func matchSubstrings(v, initial string, any []string, final string) bool {
	if !strings.HasPrefix(v, initial) {
		return false
	}
	v = v[len(initial):]
	for _, a := range any {
		i := strings.Index(v, a)
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return strings.HasSuffix(v, final)
}

// normalizeDN returns a DN in a canonical form for comparison: RDNs lower-cased, spaces
// around separators removed. It returns s itself when nothing changes (no allocation).
func normalizeDN(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 0x80 {
			clean = false
			break
		}
		if c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ',' || s[i-1] == '=' || s[i-1] == '+' ||
			s[i+1] == ',' || s[i+1] == '=' || s[i+1] == '+') {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	var part strings.Builder
	flush := func(sep byte) {
		b.WriteString(strings.ToLower(strings.TrimSpace(part.String())))
		if sep != 0 {
			b.WriteByte(sep)
		}
		part.Reset()
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			part.WriteByte(c)
			part.WriteByte(s[i+1])
			i++
		case c == ',' || c == '=' || c == '+':
			flush(c)
		default:
			part.WriteByte(c)
		}
	}
	flush(0)
	return b.String()
}
