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
// Variables may be arguments of format (positional or keyword) and the
// default value of default: they are read at render time, like the value
// the expression starts with. A constant format string of only %s and %%
// is split at compile time, so "%s.%s"|format(givenName, sn) renders by
// concatenation; any other format string goes through pyFormat, the format
// filter's own implementation.
//
// Whatever the fast path does not model exactly goes to pongo2, decided at
// compile time (tags, comments, whitespace control, operators, attribute
// access, variables as arguments of other filters, other filters, a
// non-string default, default after pex_strlen, format with positional and
// keyword arguments) or at render time (a value that is not a string, a
// x_list value of directory attributes, and any error, including an output
// over the limit: pongo2 then renders again and reports the error exactly
// as it always has).

// fastProg is a compiled fast-path template.
type fastProg struct {
	parts []fastPart
	lits  int // bytes of literal text
}

// fastPart is literal text or one {{ expr }}.
type fastPart struct {
	expr bool
	text string // literal text, or the string literal an expr starts with
	v    varRef // the variable an expr starts with (none for a string literal)
	ops  []fastOp
}

// varRef is a variable read at render time.
type varRef struct {
	name   string // "" for none
	listOf string // name without "_list", when name ends with "_list"
}

// refOf reads a variable token; ok is false for other tokens and for names
// that are not plain variables.
func refOf(t tok) (varRef, bool) {
	if t.kind != tkIdent || notFastNames[t.val] || strings.HasPrefix(t.val, "__pex") {
		return varRef{}, false
	}
	r := varRef{name: t.val}
	if base, ok := strings.CutSuffix(t.val, "_list"); ok {
		r.listOf = base
	}
	return r, true
}

type opKind uint8

const (
	opText    opKind = iota // a textFilter
	opDefault               // default / d with a string default value
	opStrlen                // pex_strlen
	opPin                   // pex_random_pin(n)
	opUUID4                 // pex_uuid4
	opFormat                // format(args…)
)

type fastOp struct {
	kind opKind
	fn   func(string) (string, error) // opText
	def  string                       // opDefault with a constant default
	args []fastArg                    // opDefault: a variable default; opFormat: the arguments
	lits []string                     // opFormat of a split format: the text around the %s
	n    int                          // opPin
}

// fastArg is a filter argument: a constant, or a variable read at render
// time (val nil).
type fastArg struct {
	kw   string        // keyword, "" for a positional argument
	val  *pongo2.Value // the constant
	text string        // the constant as %s prints it
	v    varRef        // the variable
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
	if toks[0].kind == tkString {
		part.text = toks[0].val
	} else if v, ok := refOf(toks[0]); ok {
		part.v = v
	} else {
		return part, false
	}
	isInt := false // the value is pex_strlen's integer
	for k := 1; k < len(toks); {
		if !isSym(toks[k], "|") || k+1 >= len(toks) || toks[k+1].kind != tkIdent {
			return part, false
		}
		nt := toks[k+1]
		k += 2
		var args []fastArg
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
				arg, ok := fastArgOf(toks[k])
				if !ok {
					return part, false
				}
				arg.kw = name
				args = append(args, arg)
				k++
				if k < len(toks) && isSym(toks[k], ",") {
					k++
				} else if k >= len(toks) || !isSym(toks[k], ")") {
					return part, false
				}
			}
		}
		// a format string known at compile time: the literal the expression
		// starts with, when format is its first filter
		litFormat := part.v.name == "" && len(part.ops) == 0
		op, ok := fastFilter(nt.val, args, isInt, litFormat, part.text)
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

// fastArgOf reads one argument token: a constant, or a variable.
func fastArgOf(t tok) (fastArg, bool) {
	if v, ok := refOf(t); ok {
		return fastArg{v: v}, true
	}
	c, ok := constArg(t)
	if !ok {
		return fastArg{}, false
	}
	return fastArg{val: c, text: pyStr(c.Interface())}, true
}

// constPack packs the constant arguments as pongo2 would pass them, with
// variables among them stood in for by the empty string; vars counts the
// variables.
func constPack(args []fastArg) (a *argPack, vars int) {
	a = &argPack{}
	for _, arg := range args {
		v := arg.val
		if v == nil {
			v = pongo2.AsValue("")
			vars++
		}
		a.add(arg.kw, v)
	}
	return a, vars
}

// fastFilter compiles filter name with arguments args. Arguments the filter
// refuses leave the template to pongo2, which reports the error when it
// renders. litFormat says the input is the constant text lit (for format).
func fastFilter(name string, args []fastArg, afterInt, litFormat bool, lit string) (fastOp, bool) {
	a, vars := constPack(args)
	switch name {
	case "default", "d":
		def, _, err := defaultArgs(a)
		if err != nil || afterInt || !def.IsString() {
			return fastOp{}, false
		}
		if vars == 1 && args[0].val == nil && args[0].kw == "" {
			return fastOp{kind: opDefault, args: args[:1]}, true // default(variable[, boolean])
		}
		if vars > 0 {
			return fastOp{}, false
		}
		return fastOp{kind: opDefault, def: def.String()}, true
	case "format":
		if len(a.pos) > 0 && len(a.kw) > 0 {
			return fastOp{}, false // an error: pongo2 reports it
		}
		op := fastOp{kind: opFormat, args: args}
		if litFormat && len(a.kw) == 0 {
			op.lits = splitFormat(lit, len(args))
		}
		return op, true
	}
	if vars > 0 {
		return fastOp{}, false
	}
	if tf := textFilters[name]; tf != nil {
		fn, err := tf(a)
		return fastOp{kind: opText, fn: fn}, err == nil
	}
	switch name {
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

// splitFormat splits a format string whose every conversion is a plain %s
// (or %%) and which takes exactly n arguments into the n+1 texts around
// them; nil when it is anything else, which pyFormat then renders.
func splitFormat(f string, n int) []string {
	lits := make([]string, 0, n+1)
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			b.WriteByte(f[i])
			continue
		}
		if i++; i >= len(f) {
			return nil
		}
		switch f[i] {
		case '%':
			b.WriteByte('%')
		case 's':
			lits = append(lits, b.String())
			b.Reset()
		default:
			return nil
		}
	}
	if len(lits) != n {
		return nil
	}
	return append(lits, b.String())
}

// source is where a fast render reads values: Vars, or directory
// attributes with extra values taking precedence.
type source struct {
	vars    Vars
	attrs   map[string][]string
	isAttrs bool
}

// value returns a variable's value as text; found is false when it is
// missing (or nil, which is the same to a template), ok is false when it is
// not a string (pongo2 then prints it as Python would).
func (s *source) value(r varRef) (text string, found, ok bool) {
	v, found := s.vars[r.name]
	if s.isAttrs && !found {
		if r.listOf != "" && len(s.attrs[r.listOf]) > 0 {
			return "", true, false
		}
		if vals := s.attrs[r.name]; len(vals) > 0 {
			return vals[0], true, true
		}
		return "", false, true
	}
	if !found || v == nil {
		return "", false, true
	}
	str, ok := v.(string)
	return str, true, ok
}

// text is value as a template's text: a missing value is "".
func (s *source) text(r varRef) (string, bool) {
	str, _, ok := s.value(r)
	return str, ok
}

// arg is what the format filter receives for an argument: the constant,
// or a variable's text (nil when missing); ok is false when the variable
// is not a string.
func (s *source) arg(a *fastArg) (any, bool) {
	if a.val != nil {
		return a.val.Interface(), true
	}
	str, found, ok := s.value(a.v)
	if !found {
		return nil, ok
	}
	return str, ok
}

// argText is pyStr(s.arg(a)) without boxing the text in an interface.
func (s *source) argText(a *fastArg) (string, bool) {
	if a.val != nil {
		return a.text, true
	}
	str, found, ok := s.value(a.v)
	if !found {
		return pyStr(nil), ok
	}
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
	s, ok := fp.text, true
	if fp.v.name != "" {
		if s, ok = src.text(fp.v); !ok {
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
			// (a missing variable default is nil, which is "" as text)
			if s == "" {
				s = op.def
				if len(op.args) == 1 {
					if s, ok = src.text(op.args[0].v); !ok {
						return "", false
					}
				}
			}
		case opFormat:
			if s, ok = op.format(s, src); !ok {
				return "", false
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

// format is the format filter on format string f; ok is false when an
// argument is not a string or formatting fails (pongo2 then reports it).
func (op *fastOp) format(f string, src *source) (string, bool) {
	if op.lits != nil {
		var buf [256]byte
		b := append(buf[:0], op.lits[0]...)
		for i := range op.args {
			v, ok := src.argText(&op.args[i])
			if !ok {
				return "", false
			}
			b = append(b, v...)
			b = append(b, op.lits[i+1]...)
		}
		return string(b), true
	}
	var pos []any
	kw := map[string]any{}
	for i := range op.args {
		v, ok := src.arg(&op.args[i])
		if !ok {
			return "", false
		}
		if op.args[i].kw != "" {
			kw[op.args[i].kw] = v
		} else {
			pos = append(pos, v)
		}
	}
	out, err := pyFormat(f, pos, kw)
	return out, err == nil
}
