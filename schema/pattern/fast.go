package pattern

import (
	"strconv"
	"strings"

	"github.com/flosch/pongo2/v6"
)

// The fast path. Most patterns are literal text and {{ expr }} where expr is
// a variable or a string literal followed by filters with constant
// arguments: "{{cn}} VMR", "{{telephoneNumber|pex_clean_phone_number|pex_tail(7)}}",
// "{{ ''|pex_random_pin(6) }}". Compile turns such a template (after it
// compiled with pongo2, so every compile-time check has run) into a fastProg
// as well, which renders without pongo2, reading values straight from Vars
// or from directory attributes. It calls the same filter implementations as
// the pongo2 filters, with the arguments read once at compile time by the
// same code.
//
// Whatever the fast path does not model exactly goes to pongo2, decided at
// compile time (tags, comments, whitespace control, operators, attribute
// access, variables as arguments, other filters, a non-string default,
// default after pex_strlen) or at render time (a value that is not a string,
// a x_list value of directory attributes, and any error, including an
// output over the limit: pongo2 then renders again and reports the error
// exactly as it always has).

// fastProg is a compiled fast-path template.
type fastProg struct {
	parts []fastPart
	lits  int // bytes of literal text
}

// fastPart is literal text or one {{ expr }}.
type fastPart struct {
	expr   bool
	text   string // literal text, or the string literal an expr starts with
	name   string // variable an expr starts with ("" for a string literal)
	listOf string // name without "_list", when name ends with "_list"
	ops    []fastOp
}

type opKind uint8

const (
	opText    opKind = iota // a textFilter
	opDefault               // default / d with a string default value
	opStrlen                // pex_strlen
	opPin                   // pex_random_pin(n)
	opUUID4                 // pex_uuid4
)

type fastOp struct {
	kind opKind
	fn   func(string) (string, error) // opText
	def  string                       // opDefault
	n    int                          // opPin
}

// notFastNames are identifiers that are not plain variables in pongo2 or in
// the translation.
var notFastNames = map[string]bool{
	"in": true, "and": true, "or": true, "not": true, "true": true, "false": true, "as": true, "export": true,
	"True": true, "False": true, "None": true, "none": true, "is": true,
	"pongo2": true, "range": true, "loop": true, "forloop": true,
}

// compileFast returns the fast program for src (normalised source that
// compiled with pongo2), or nil when src is outside the fast subset.
func compileFast(src string) *fastProg {
	t := &translation{src: src}
	p := &fastProg{}
	i := 0
	for i < len(src) {
		j := indexOpen(src, i)
		if j < 0 {
			p.text(src[i:])
			break
		}
		p.text(src[i:j])
		if src[j+1] != '{' {
			return nil // a tag or a comment
		}
		toks, open, closePos, end, err := t.lexOpened(j, "}}")
		if err != nil || open != "{%" || src[closePos] == '-' {
			return nil // an error, or whitespace control
		}
		part, ok := fastExpr(toks)
		if !ok {
			return nil
		}
		p.parts = append(p.parts, part)
		i = end
	}
	return p
}

func (p *fastProg) text(s string) {
	if s != "" {
		p.parts = append(p.parts, fastPart{text: s})
		p.lits += len(s)
	}
}

// fastExpr compiles the tokens of one {{ }}.
func fastExpr(toks []tok) (fastPart, bool) {
	part := fastPart{expr: true}
	if len(toks) == 0 {
		return part, false
	}
	switch first := toks[0]; {
	case first.kind == tkString:
		part.text = first.val
	case first.kind == tkIdent && !notFastNames[first.val] && !strings.HasPrefix(first.val, "__pex"):
		part.name = first.val
		if base, ok := strings.CutSuffix(first.val, "_list"); ok {
			part.listOf = base
		}
	default:
		return part, false
	}
	isInt := false // the value is pex_strlen's integer
	for k := 1; k < len(toks); {
		if !isSym(toks[k], "|") || k+1 >= len(toks) || toks[k+1].kind != tkIdent {
			return part, false
		}
		nt := toks[k+1]
		k += 2
		a := &argPack{}
		if k < len(toks) && isSym(toks[k], "(") && toks[k].pos == nt.end {
			k++
			for {
				if k >= len(toks) {
					return part, false
				}
				if isSym(toks[k], ")") {
					k++
					break
				}
				name := ""
				if toks[k].kind == tkIdent && k+1 < len(toks) && isSym(toks[k+1], "=") {
					name = toks[k].val
					k += 2
				}
				if k >= len(toks) {
					return part, false
				}
				v, ok := constArg(toks[k])
				if !ok {
					return part, false
				}
				a.add(name, v)
				k++
				if k < len(toks) && isSym(toks[k], ",") {
					k++
				} else if k >= len(toks) || !isSym(toks[k], ")") {
					return part, false
				}
			}
		}
		op, ok := fastFilter(nt.val, a, isInt)
		if !ok {
			return part, false
		}
		part.ops = append(part.ops, op)
		isInt = op.kind == opStrlen
	}
	return part, true
}

func isSym(t tok, s string) bool { return t.kind == tkSymbol && t.val == s }

// constArg is the value pongo2 gives a constant argument as translated: a
// string, an integer or a boolean.
func constArg(t tok) (*pongo2.Value, bool) {
	switch t.kind {
	case tkString:
		return pongo2.AsValue(t.val), true
	case tkNumber:
		if strings.IndexByte(t.val, '.') >= 0 {
			return nil, false
		}
		n, err := strconv.Atoi(t.val)
		if err != nil {
			return nil, false
		}
		return pongo2.AsValue(n), true
	case tkIdent:
		switch t.val {
		case "True", "true":
			return pongo2.AsValue(true), true
		case "False", "false":
			return pongo2.AsValue(false), true
		}
	}
	return nil, false
}

// fastFilter compiles filter name with arguments a. Arguments the filter
// refuses leave the template to pongo2, which reports the error when it
// renders.
func fastFilter(name string, a *argPack, afterInt bool) (fastOp, bool) {
	if tf := textFilters[name]; tf != nil {
		fn, err := tf(a)
		return fastOp{kind: opText, fn: fn}, err == nil
	}
	switch name {
	case "default", "d":
		def, _, err := defaultArgs(a)
		if err != nil || afterInt || !def.IsString() {
			return fastOp{}, false
		}
		return fastOp{kind: opDefault, def: def.String()}, true
	case "pex_strlen":
		return fastOp{kind: opStrlen}, a.check() == nil
	case "pex_random_pin":
		n, err := pinArgs(a)
		return fastOp{kind: opPin, n: n}, err == nil
	case "pex_uuid4":
		return fastOp{kind: opUUID4}, a.check() == nil
	}
	return fastOp{}, false
}

// source is where a fast render reads values: Vars, or directory
// attributes with extra values taking precedence.
type source struct {
	vars    Vars
	attrs   map[string][]string
	isAttrs bool
}

// text returns a variable's value as text; ok is false when it is not a
// string (pongo2 then prints it as Python would).
func (s *source) text(name, listOf string) (string, bool) {
	v, found := s.vars[name]
	if s.isAttrs && !found {
		if listOf != "" && len(s.attrs[listOf]) > 0 {
			return "", false
		}
		if vals := s.attrs[name]; len(vals) > 0 {
			return vals[0], true
		}
		return "", true
	}
	if !found || v == nil {
		return "", true
	}
	str, ok := v.(string)
	return str, ok
}

// exec renders p; ok is false when the template must go to pongo2.
func (p *fastProg) exec(src *source, key []byte, seed Seed, limit int) (string, bool) {
	st := renderState{key: key, seed: seed}
	if len(p.parts) == 1 {
		s, ok := p.parts[0].eval(src, &st)
		return s, ok && len(s) <= limit
	}
	var buf [256]byte
	b := buf[:0]
	for i := range p.parts {
		s, ok := p.parts[i].eval(src, &st)
		if !ok || len(b)+len(s) > limit {
			return "", false
		}
		b = append(b, s...)
	}
	return string(b), true
}

// eval gives the text of one part.
func (fp *fastPart) eval(src *source, st *renderState) (string, bool) {
	s := fp.text
	if fp.name != "" {
		var ok bool
		if s, ok = src.text(fp.name, fp.listOf); !ok {
			return "", false
		}
	}
	var err error
	for i := range fp.ops {
		switch op := &fp.ops[i]; op.kind {
		case opText:
			s, err = op.fn(s)
		case opDefault:
			// defaultApplies for text: the empty string or a missing value
			if s == "" {
				s = op.def
			}
		case opStrlen:
			s = strconv.Itoa(strlen(s))
		case opPin:
			s, err = randomPin(st, op.n)
		case opUUID4:
			s, err = uuid4(st)
		}
		if err != nil || len(s) > maxValueBytes {
			return "", false
		}
	}
	return s, true
}
